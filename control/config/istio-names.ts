// Istio's validation of names inside resources (label selectors, label maps, subset names, hosts), as its webhook and CRD schemas apply them.
import type { FieldProblem } from './schema';

// Istio's pkg/config/labels: a DNS-1123 label (letters of either case), a Kubernetes qualified name, a label key.
const DNS1123_LABEL = '[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?';
const QUALIFIED_NAME = '(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const LABEL_KEY_RE = new RegExp(`^(${DNS1123_LABEL}(?:\\.${DNS1123_LABEL})*/)?(${QUALIFIED_NAME})$`);
const LABEL_VALUE_RE = new RegExp(`^(?:${QUALIFIED_NAME})?$`);
const DNS1123_LABEL_RE = new RegExp(`^${DNS1123_LABEL}$`);
const WILDCARD_LABEL_RE = new RegExp(`^(\\*|(\\*|\\*-)?${DNS1123_LABEL})$`);

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL_RE.test(s);
}

/**
 * `selector.matchLabels` of AuthorizationPolicy and PeerAuthentication (Istio's CRD rules and
 * validateWorkloadSelector): no empty key, no `*` in a key or a value, values at most 63 characters,
 * at most 4096 entries. Istio does not apply Kubernetes label syntax here, so neither does smesh.
 */
export function checkWorkloadSelector(matchLabels: unknown, field: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (matchLabels === null || typeof matchLabels !== 'object') return problems;
  const entries = Object.entries(matchLabels as Record<string, unknown>);
  if (entries.length > 4096) problems.push({ field, message: `at most 4096 labels, got ${entries.length}` });
  for (const [k, v] of entries) {
    const f = `${field}[${k}]`;
    if (k === '') problems.push({ field: f, message: 'key must not be empty' });
    if (k.includes('*')) problems.push({ field: f, message: `wildcard not allowed in label key match, got ${JSON.stringify(k)}` });
    if (typeof v !== 'string') continue;
    if (v.includes('*')) problems.push({ field: f, message: `wildcard not allowed in label value match, got ${JSON.stringify(v)} (a selector matches label values exactly)` });
    if (v.length > 63) problems.push({ field: f, message: `label value longer than 63 characters (${v.length})` });
  }
  return problems;
}

/** A label map that must be valid Kubernetes labels (Istio's labels.Instance.Validate: DestinationRule subsets). */
export function checkLabels(labels: unknown, field: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (labels === null || typeof labels !== 'object') return problems;
  for (const [k, v] of Object.entries(labels as Record<string, unknown>)) {
    const f = `${field}[${k}]`;
    const m = LABEL_KEY_RE.exec(k);
    if (!m) problems.push({ field: f, message: `invalid label key ${JSON.stringify(k)}: expected [prefix/]name, the name alphanumeric with '-', '_' or '.' inside` });
    else if (m[1] && m[1].length - 1 > 253) problems.push({ field: f, message: `invalid label key ${JSON.stringify(k)}: prefix longer than 253 characters` });
    else if (m[2]!.length > 63) problems.push({ field: f, message: `invalid label key ${JSON.stringify(k)}: name longer than 63 characters` });
    if (typeof v === 'string' && !LABEL_VALUE_RE.test(v)) {
      problems.push({ field: f, message: `invalid label value ${JSON.stringify(v)}: expected empty or alphanumeric with '-', '_' or '.' inside (no wildcards)` });
    }
  }
  return problems;
}

/**
 * A host as Istio's ValidateWildcardDomain accepts it: at most 255 characters, DNS-1123 labels,
 * a wildcard only as (the start of) the first label, a top-level label that is not all digits.
 * Returns the reason when invalid.
 */
export function wildcardDomainProblem(domain: string): string | undefined {
  if (domain.length === 0) return 'empty domain name not allowed';
  if (domain.length > 255) return `domain name too long (${domain.length} > 255)`;
  const dot = domain.indexOf('.');
  const first = dot === -1 ? domain : domain.slice(0, dot);
  if (first.length > 63 || !WILDCARD_LABEL_RE.test(first)) return `domain name ${JSON.stringify(domain)} invalid (label ${JSON.stringify(first)} invalid)`;
  if (dot === -1) return undefined;
  const rest = domain.slice(dot + 1).split('.');
  const tld = rest[rest.length - 1]!;
  if (/^[-+]?\d+$/.test(tld)) return `domain name ${JSON.stringify(domain)} invalid (top level domain ${JSON.stringify(tld)} cannot be all-numeric)`;
  for (let i = 0; i < rest.length; i++) {
    if (i === rest.length - 1 && rest[i] === '') return undefined; // a trailing dot (`istio.io.`)
    if (!isDns1123Label(rest[i]!)) return `domain name ${JSON.stringify(domain)} invalid (label ${JSON.stringify(rest[i])} invalid)`;
  }
  return undefined;
}

const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * `metadata.name` and `metadata.namespace` of an Istio resource as Kubernetes admits a custom
 * resource: the name a lowercase RFC 1123 subdomain (so `_`, which istiod's converted policy names
 * use, can never clash), the namespace a lowercase RFC 1123 label.
 */
export function checkObjectNames(metadata: unknown): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (metadata === null || typeof metadata !== 'object') return problems;
  const { name, namespace } = metadata as { name?: unknown; namespace?: unknown };
  if (typeof name === 'string' && name !== '' && (name.length > 253 || !DNS1123_SUBDOMAIN_RE.test(name))) {
    problems.push({
      field: 'metadata.name',
      message: `expected a lowercase RFC 1123 subdomain (a-z, 0-9, '-' and '.', starting and ending with a letter or digit, at most 253), got ${JSON.stringify(name)}`,
    });
  }
  if (typeof namespace === 'string' && namespace !== '' && (namespace.length > 63 || !NAMESPACE_RE.test(namespace))) {
    problems.push({
      field: 'metadata.namespace',
      message: `expected a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63), got ${JSON.stringify(namespace)}`,
    });
  }
  return problems;
}
