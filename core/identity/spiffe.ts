// SPIFFE identities: build and parse workload and node ids, and read the URI SAN of a TLS peer certificate.
import type { X509Certificate } from 'node:crypto';
import { SmeshError } from '../errors';

/** A parsed SPIFFE id: either a workload (namespace + service account) or a smesh node agent. */
export type SpiffeId =
  | { readonly kind: 'workload'; readonly trustDomain: string; readonly namespace: string; readonly serviceAccount: string; readonly uri: string }
  | { readonly kind: 'node'; readonly trustDomain: string; readonly nodeName: string; readonly uri: string };

// RFC-ish constraints from the SPIFFE spec: trust domain is lowercase letters, digits, '.', '-', '_';
// path segments are [A-Za-z0-9.-_] and must not be '.' or '..'.
/** A trust domain as smesh accepts it (SPIFFE ids, MeshConfig, workloads): lowercase [a-z0-9._-]+. */
export const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
/** A SPIFFE path segment (namespace, service account, node name): [A-Za-z0-9._-]+, never '.' or '..'. */
export const SPIFFE_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

function checkSegment(what: string, value: string): void {
  if (!SPIFFE_SEGMENT_RE.test(value) || value === '.' || value === '..') {
    throw new SmeshError('SMESH_ERR_IDENTITY', `invalid SPIFFE ${what} ${JSON.stringify(value)}: expected [A-Za-z0-9._-]+`);
  }
}

function checkTrustDomain(td: string): void {
  if (!TRUST_DOMAIN_RE.test(td)) {
    throw new SmeshError('SMESH_ERR_IDENTITY', `invalid trust domain ${JSON.stringify(td)}: expected lowercase [a-z0-9._-]+`);
  }
}

export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  checkTrustDomain(trustDomain);
  checkSegment('namespace', namespace);
  checkSegment('service account', serviceAccount);
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** `spiffe://<td>/smesh/control`: the URI SAN of the control plane's serving certificate. */
export function controlSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/smesh/control`;
}

export function nodeSpiffeId(trustDomain: string, nodeName: string): string {
  checkTrustDomain(trustDomain);
  checkSegment('node name', nodeName);
  return `spiffe://${trustDomain}/smesh/node/${nodeName}`;
}

/** Parses a smesh SPIFFE id; returns undefined for anything else (never throws: peer input). */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  if (typeof uri !== 'string' || !uri.startsWith('spiffe://')) return undefined;
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  if (!TRUST_DOMAIN_RE.test(trustDomain)) return undefined;
  const parts = rest.slice(slash + 1).split('/');
  if (parts.some((p) => !SPIFFE_SEGMENT_RE.test(p) || p === '.' || p === '..')) return undefined;
  if (parts.length === 4 && parts[0] === 'ns' && parts[2] === 'sa') {
    return { kind: 'workload', trustDomain, namespace: parts[1]!, serviceAccount: parts[3]!, uri };
  }
  if (parts.length === 3 && parts[0] === 'smesh' && parts[1] === 'node') {
    return { kind: 'node', trustDomain, nodeName: parts[2]!, uri };
  }
  return undefined;
}

/**
 * Extracts the single spiffe:// URI SAN from a Node `subjectAltName` string
 * (format: `DNS:a, URI:spiffe://td/ns/x/sa/y, IP Address:1.2.3.4`; values containing
 * separators are JSON-quoted by Node). Returns undefined when there is none or more than one
 * (SPIFFE X.509-SVIDs carry exactly one URI SAN).
 */
export function spiffeIdFromSubjectAltName(subjectAltName: string | undefined): string | undefined {
  if (!subjectAltName) return undefined;
  const uris: string[] = [];
  for (const raw of splitSan(subjectAltName)) {
    if (!raw.startsWith('URI:')) continue;
    let value = raw.slice(4);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        return undefined;
      }
    }
    uris.push(value);
  }
  const spiffe = uris.filter((u) => u.startsWith('spiffe://'));
  if (spiffe.length !== 1) return undefined;
  return parseSpiffeId(spiffe[0]!) ? spiffe[0] : undefined;
}

/** Splits on ", " outside of JSON-quoted values. */
function splitSan(san: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < san.length; i++) {
    const c = san[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < san.length) cur += san[++i];
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      cur += c;
    } else if (c === ',' && san[i + 1] === ' ') {
      out.push(cur);
      cur = '';
      i++;
    } else {
      cur += c;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/** Peer SPIFFE id of an established TLS socket, or undefined when absent/invalid. */
export function peerSpiffeId(socket: { getPeerX509Certificate(): X509Certificate | undefined }): string | undefined {
  let cert: X509Certificate | undefined;
  try {
    cert = socket.getPeerX509Certificate();
  } catch {
    return undefined;
  }
  return spiffeIdFromSubjectAltName(cert?.subjectAltName);
}

/** The trust domain named by a SPIFFE id (`spiffe://<td>/…`), or undefined when `uri` is not a smesh SPIFFE id. */
export function trustDomainOf(uri: string): string | undefined {
  return parseSpiffeId(uri)?.trustDomain;
}

/**
 * Trust-domain aliases as configured (Istio's MeshConfig `trustDomainAliases`): other trust domains whose identities
 * this mesh accepts as its own, e.g. the old one during a trust-domain migration. Throws SMESH_ERR_CONFIG naming
 * `field` and the bad entry; duplicates and `meshTrustDomain` itself are dropped.
 */
export function parseTrustDomainAliases(field: string, aliases: readonly string[], meshTrustDomain?: string): string[] {
  const out: string[] = [];
  for (const raw of aliases) {
    const td = raw.trim();
    if (td === '') continue;
    if (!TRUST_DOMAIN_RE.test(td)) {
      throw new SmeshError('SMESH_ERR_CONFIG', `${field}: invalid trust domain ${JSON.stringify(td)}: expected lowercase [a-z0-9._-]+`);
    }
    if (td !== meshTrustDomain && !out.includes(td)) out.push(td);
  }
  return out;
}

/**
 * Where a component reads the trust-domain aliases from: a fixed list, or a function asked on every decision (the
 * agent's combines the flag's aliases with the MeshConfig's, so a MeshConfig change applies without a restart).
 */
export type TrustDomainAliasSource = readonly string[] | (() => readonly string[]);

/** The aliases `source` names right now (none when absent). */
export function currentTrustDomainAliases(source: TrustDomainAliasSource | undefined): readonly string[] {
  if (source === undefined) return [];
  return typeof source === 'function' ? source() : source;
}

/** The union of two alias lists, `a`'s order first; returns `a` itself when `b` adds nothing (no allocation per call). */
export function unionTrustDomainAliases(a: readonly string[], b: readonly string[] | undefined): readonly string[] {
  if (!b || b.length === 0 || b.every((td) => a.includes(td))) return a;
  return [...a, ...b.filter((td, i) => !a.includes(td) && b.indexOf(td) === i)];
}

/**
 * The trust domains a peer's certificate may name: the mesh's own and its aliases. Everything else is foreign, even
 * when the certificate chains to the mesh root (a root shared with another mesh, or a CA that signed what it should not).
 */
export class TrustDomains {
  private readonly accepted: ReadonlySet<string>;

  constructor(
    readonly mesh: string,
    readonly aliases: readonly string[] = [],
  ) {
    this.accepted = new Set([mesh, ...aliases]);
  }

  /** Whether `uri` is a SPIFFE id of the mesh's trust domain or of an alias. */
  accepts(uri: string): boolean {
    const td = trustDomainOf(uri);
    return td !== undefined && this.accepted.has(td);
  }

  /**
   * Whether `got` is the identity `expected` (of the mesh's trust domain), possibly under an alias: the same
   * namespace/service account or node, in an accepted trust domain.
   */
  matches(got: string, expected: string): boolean {
    if (got === expected) return true;
    const g = parseSpiffeId(got);
    const e = parseSpiffeId(expected);
    if (!g || !e || !this.accepted.has(g.trustDomain)) return false;
    return g.uri.slice(`spiffe://${g.trustDomain}`.length) === e.uri.slice(`spiffe://${e.trustDomain}`.length);
  }
}
