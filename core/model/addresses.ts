// Every address of a workload: a dual-stack pod has one per family (Istio's Workload.addresses), `ip` is the first.
import { isIPv6 } from 'node:net';
import type { Workload } from './types';

/** The workload's addresses, primary first; capture, strict and IP-lookup maps register every one of them. */
export function workloadAddresses(w: Pick<Workload, 'ip' | 'addresses'>): readonly string[] {
  return w.addresses ?? [w.ip];
}

/**
 * The address to reach `w` by when a client dialled `dialled` (a pod address of `w` itself, or a service VIP): the
 * dialled address when it is one of `w`'s, else `w`'s first address of the same family, else its first address.
 */
export function endpointAddress(w: Pick<Workload, 'ip' | 'addresses'>, dialled: string | undefined): string {
  const all = w.addresses;
  if (!all || dialled === undefined) return w.ip;
  if (all.includes(dialled)) return dialled;
  const v6 = isIPv6(dialled);
  return all.find((ip) => isIPv6(ip) === v6) ?? w.ip;
}
