// Shared fixtures for the load-balancer tests: a seeded PRNG, endpoint builders, pick counters.
import type { LbEndpoint, Locality } from '../../../agent/lb/endpoint';
import type { PickRequest, Picker } from '../../../agent/lb/picker';
import { seeded } from '../../helpers/prng';
export { seeded };

/** Returns the given values in turn (then repeats the last). */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

export interface TestEndpoint extends LbEndpoint {
  readonly name: string;
}

export function ep(name: string, extra: Partial<TestEndpoint> = {}): TestEndpoint {
  return { key: `${name}:8080`, name, ...extra };
}

export function loc(region: string, zone = '', subzone = ''): Locality {
  return { region, zone, subzone };
}

/** Names of `n` picks. */
export function picks(p: Picker<TestEndpoint>, n: number, request?: (i: number) => PickRequest | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = p.pick(request?.(i));
    out.push(r.kind === 'complete' ? r.endpoint.name : `<${r.kind}>`);
  }
  return out;
}

export function counts(names: readonly string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of names) c[n] = (c[n] ?? 0) + 1;
  return c;
}
