// Pure derivation of the kernel's policy maps from mesh state: inbound STRICT/PERMISSIVE per local pod port, and connect-time denies per local source workload.
import { applicablePolicies, DEFAULT_ROOT_NAMESPACE, evaluate, matchNeedsL7, ruleNeedsL7, stripL7 } from '../../core/policy/evaluate';
import { isConvertedPeerAuthentication, type AuthorizationPolicy, type PolicyMatch } from '../../core/policy/types';
import type { MeshSnapshot, Service, Workload } from '../../core/model/types';
import { workloadAddresses } from '../../core/model/addresses';

export type InboundMode = 'STRICT' | 'PERMISSIVE' | 'TRUSTED_SOURCE';

export interface InboundModeEntry {
  readonly ip: string;
  /** 0 = every port of the pod; an exact port overrides it. */
  readonly port: number;
  readonly mode: InboundMode;
}

export interface ConnectDenyEntry {
  readonly workloadId: number;
  readonly ip: string;
  /** 0 = every port. */
  readonly port: number;
}

export const inboundKey = (e: { ip: string; port: number }): string => `${e.ip}|${e.port}`;
export const denyKey = (e: { workloadId: number; ip: string; port: number }): string => `${e.workloadId}|${e.ip}|${e.port}`;

function localMeshed(s: MeshSnapshot, nodeName: string): Workload[] {
  return [...s.workloads.values()].filter((w) => w.node === nodeName && w.meshed);
}

function portsMentioned(policies: readonly AuthorizationPolicy[]): Set<number> {
  const ports = new Set<number>();
  for (const p of policies)
    for (const r of p.rules) for (const c of r.clauses) for (const m of c.matches) for (const port of [...(m.destinationPorts ?? []), ...(m.notDestinationPorts ?? [])]) ports.add(port);
  return ports;
}

/** A port no policy names: stands for "every other port" (the port-0 entry). */
function unnamedPort(named: ReadonlySet<number>): number {
  for (let p = 65535; p > 0; p--) if (!named.has(p)) return p;
  return 1;
}

/**
 * Inbound modes for every local meshed pod: STRICT where a plaintext connection (no principal) would
 * be denied by the converted PeerAuthentication policies that apply to it, else PERMISSIVE (plaintext
 * let through and counted). One port-0 entry per pod, plus entries for ports the policies name whose
 * mode differs from it.
 */
export function desiredInboundModes(s: MeshSnapshot, nodeName: string, trustedSources: readonly string[] = []): Map<string, InboundModeEntry> {
  const out = new Map<string, InboundModeEntry>();
  // The node's host addresses (kubelet probes come from them); a workload's own entry below wins.
  for (const ip of trustedSources) out.set(inboundKey({ ip, port: 0 }), { ip, port: 0, mode: 'TRUSTED_SOURCE' });
  const peerAuth = (s.authorizationPolicies ?? []).filter(isConvertedPeerAuthentication);
  const root = s.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  for (const w of localMeshed(s, nodeName)) {
    const policies = applicablePolicies(peerAuth, w, root);
    const named = portsMentioned(policies);
    // Every address of a dual-stack pod: plaintext to either one is the same plaintext to the same pod.
    for (const ip of workloadAddresses(w)) {
      const modeAt = (port: number): InboundMode => (evaluate(policies, { destinationIp: ip, destinationPort: port }).allow ? 'PERMISSIVE' : 'STRICT');
      const base = modeAt(unnamedPort(named));
      out.set(inboundKey({ ip, port: 0 }), { ip, port: 0, mode: base });
      for (const port of named) {
        if (port === 0) continue;
        const mode = modeAt(port);
        if (mode !== base) out.set(inboundKey({ ip, port }), { ip, port, mode });
      }
    }
  }
  return out;
}

/**
 * The policies as far as the kernel may decide them: a deny here must be a deny for every request the
 * inbound could see on that connection, whatever its HTTP attributes. So DENY rules that need L7
 * attributes are dropped (they might not match), ALLOW matches lose their L7 attributes (they might
 * match), AUDIT never decides.
 */
export function l4DecidableView(policies: readonly AuthorizationPolicy[]): AuthorizationPolicy[] {
  const out: AuthorizationPolicy[] = [];
  for (const p of policies) {
    if (p.action === 'AUDIT') continue;
    if (p.action === 'DENY') {
      out.push({ ...p, rules: p.rules.filter((r) => !ruleNeedsL7(r)) });
      continue;
    }
    out.push({
      ...p,
      rules: p.rules.map((r) => ({ clauses: r.clauses.map((c) => ({ matches: c.matches.map((m: PolicyMatch) => (matchNeedsL7(m) ? stripL7(m) : m)) })) })),
    });
  }
  return out;
}

function selectorMatches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

function endpointsOf(s: MeshSnapshot, svc: Service): Workload[] {
  if (svc.endpointUids) return svc.endpointUids.map((uid) => s.workloads.get(uid)).filter((w): w is Workload => w !== undefined);
  return [...s.workloads.values()].filter((w) => w.namespace === svc.namespace && selectorMatches(svc.selector, w.labels));
}

/**
 * Connect-time denies: for each local meshed source workload, each meshed endpoint's (pod ip,
 * targetPort) of every service it backs that the L4-decidable policies deny for that source, and each
 * service (VIP, port) whose every endpoint is denied. Only meshed endpoints count (a non-meshed one has
 * no inbound to enforce anything), so the kernel never refuses what the inbound would accept.
 */
export function desiredConnectDenies(s: MeshSnapshot, nodeName: string, idOf: (uid: string) => number, trustDomainAliases: readonly string[] = []): Map<string, ConnectDenyEntry> {
  const trustDomains = { trustDomain: s.trustDomain, aliases: trustDomainAliases };
  const out = new Map<string, ConnectDenyEntry>();
  const all = s.authorizationPolicies ?? [];
  if (all.length === 0) return out;
  const view = l4DecidableView(all);
  const root = s.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const policiesOf = new Map<string, AuthorizationPolicy[]>();
  const policiesFor = (w: Workload): AuthorizationPolicy[] => {
    let list = policiesOf.get(w.uid);
    if (!list) policiesOf.set(w.uid, (list = applicablePolicies(view, w, root)));
    return list;
  };
  const services = [...s.services.values()].map((svc) => ({ svc, endpoints: endpointsOf(s, svc) }));
  for (const src of localMeshed(s, nodeName)) {
    if (!src.netns) continue; // not enrolled: the kernel does not know its sockets
    const id = idOf(src.uid);
    const denied = (dst: Workload, ip: string, port: number): boolean => {
      if (!dst.meshed) return false;
      const policies = policiesFor(dst);
      if (policies.length === 0) return false;
      return !evaluate(policies, { sourceIdentity: src.identity, sourceIp: src.ip, destinationIp: ip, destinationPort: port }, { trustDomains }).allow;
    };
    for (const { svc, endpoints } of services) {
      for (const p of svc.ports) {
        let every = endpoints.length > 0;
        for (const ep of endpoints) {
          // A dual-stack endpoint is dialled on either address; the service VIP only if every endpoint address is denied.
          for (const ip of workloadAddresses(ep)) {
            if (denied(ep, ip, p.targetPort)) {
              const e = { workloadId: id, ip, port: p.targetPort };
              out.set(denyKey(e), e);
            } else {
              every = false;
            }
          }
        }
        if (every) {
          for (const vip of svc.vips) {
            const e = { workloadId: id, ip: vip, port: p.port };
            out.set(denyKey(e), e);
          }
        }
      }
    }
  }
  return out;
}
