// PeerAuthentication (security.istio.io) in file config: schema, validation, and istiod's conversion for ztunnel into DENY Authorization policies.
import { stringMatcher } from '../../core/policy/evaluate';
import { CONVERTED_PEER_AUTHENTICATION_PREFIX, policyKey, STATIC_STRICT_POLICY_NAME, type AuthorizationPolicy, type PolicyRule } from '../../core/policy/types';
import { checkWorkloadSelector } from './istio-names';
import type { FieldProblem, FieldSpec } from './schema';

export const PEER_AUTHENTICATION_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;

export { CONVERTED_PEER_AUTHENTICATION_PREFIX, STATIC_STRICT_POLICY_NAME, isConvertedPeerAuthentication } from '../../core/policy/types';

/**
 * UNSET inherits from the parent level (workload → namespace → mesh; a port from its workload);
 * with nothing set anywhere the mode is PERMISSIVE. DISABLE: smesh (like ztunnel) never downgrades
 * mesh traffic to plaintext — meshed clients still use HBONE mTLS — so DISABLE behaves as PERMISSIVE:
 * plaintext is accepted (and counted), nothing is refused.
 */
export type MtlsMode = 'UNSET' | 'STRICT' | 'PERMISSIVE' | 'DISABLE';
const MODES: readonly MtlsMode[] = ['UNSET', 'STRICT', 'PERMISSIVE', 'DISABLE'];

export interface PeerAuthentication {
  readonly name: string;
  readonly namespace: string;
  /** Non-empty `selector.matchLabels`: a workload policy; absent: namespace policy (mesh policy in the root namespace). */
  readonly selector?: Readonly<Record<string, string>>;
  readonly mode: MtlsMode;
  /** portLevelMtls: workload target port → mode (only with a selector). */
  readonly portModes: ReadonlyMap<number, MtlsMode>;
}

const mtls: FieldSpec = { object: { fields: { mode: { oneOf: MODES } } } };

/** The `spec` of a PeerAuthentication. portLevelMtls keys are ports, checked in convert. */
export const PEER_AUTHENTICATION_SPEC: FieldSpec = {
  object: {
    fields: {
      selector: { object: { fields: { matchLabels: 'stringMap' } } },
      mtls,
      portLevelMtls: 'ignored',
    },
  },
};

/**
 * Validates a schema-checked PeerAuthentication as Istio's admission does (port-level modes need a
 * workload selector; ports 1-65535) plus what ambient cannot honour (a selector in the root
 * namespace, which istiod ignores for ztunnel — refused here rather than silently dropped).
 */
export function convertPeerAuthentication(name: string, namespace: string, spec: any, rootNamespace: string): { policy?: PeerAuthentication; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const s = spec ?? {};
  const matchLabels: Record<string, string> | undefined = s.selector?.matchLabels;
  const hasSelector = matchLabels !== undefined && Object.keys(matchLabels).length > 0;
  problems.push(...checkWorkloadSelector(matchLabels, 'spec.selector.matchLabels'));
  if (hasSelector && namespace === rootNamespace) {
    problems.push({ field: 'spec.selector', message: `a PeerAuthentication in the root namespace (${rootNamespace}) is mesh-wide and cannot select workloads; move it to the workloads' namespace` });
  }
  const portModes = new Map<number, MtlsMode>();
  const plm = s.portLevelMtls;
  if (plm !== undefined && plm !== null) {
    if (typeof plm !== 'object' || Array.isArray(plm)) {
      problems.push({ field: 'spec.portLevelMtls', message: 'expected a map of port number → {mode}' });
    } else {
      if (Object.keys(plm).length === 0) problems.push({ field: 'spec.portLevelMtls', message: 'must have at least one port when set (Istio rejects an empty map)' });
      if (!hasSelector && Object.keys(plm).length > 0) {
        problems.push({ field: 'spec.portLevelMtls', message: 'port-level mTLS needs spec.selector.matchLabels (namespace- and mesh-wide policies cannot set it)' });
      }
      for (const [key, value] of Object.entries(plm)) {
        const field = `spec.portLevelMtls[${key}]`;
        if (!/^\d{1,5}$/.test(key) || Number(key) < 1 || Number(key) > 65535) {
          problems.push({ field, message: `expected a port number 1-65535 as the key (a workload target port), got ${JSON.stringify(key)}` });
          continue;
        }
        const v = value as any;
        if (v === null || typeof v !== 'object' || Array.isArray(v)) {
          problems.push({ field, message: 'expected {mode: STRICT|PERMISSIVE|DISABLE|UNSET}' });
          continue;
        }
        for (const k of Object.keys(v)) if (k !== 'mode') problems.push({ field: `${field}.${k}`, message: 'unknown field; expected mode' });
        const mode = v.mode ?? 'UNSET';
        if (!MODES.includes(mode)) {
          problems.push({ field: `${field}.mode`, message: `expected one of ${MODES.join(', ')}, got ${JSON.stringify(v.mode)}` });
          continue;
        }
        portModes.set(Number(key), mode as MtlsMode);
      }
    }
  }
  if (problems.length > 0) return { problems };
  return {
    policy: { name, namespace, ...(hasSelector ? { selector: { ...matchLabels } } : {}), mode: (s.mtls?.mode ?? 'UNSET') as MtlsMode, portModes },
    problems,
  };
}

// ---- conversion for ztunnel-style consumers ----

const DENY_PLAINTEXT = { notPrincipals: [stringMatcher('*')] } as const;

function byName(a: PeerAuthentication, b: PeerAuthentication): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** One namespace-level policy per namespace: Istio takes the oldest; files have no age, so the first by name. */
function namespacePolicy(pas: readonly PeerAuthentication[], namespace: string): PeerAuthentication | undefined {
  return pas.filter((p) => p.namespace === namespace && !p.selector).sort(byName)[0];
}

/** The workload policy selecting (namespace, labels), first by name when several do (Istio: the oldest). */
function workloadPolicy(pas: readonly PeerAuthentication[], namespace: string, labels: Readonly<Record<string, string>>): PeerAuthentication | undefined {
  return pas.filter((p) => p.namespace === namespace && p.selector && Object.entries(p.selector).every(([k, v]) => labels[k] === v)).sort(byName)[0];
}

/** The mode a namespace inherits: its namespace policy, else the mesh policy, else PERMISSIVE (UNSET passes through). */
function inheritedMode(pas: readonly PeerAuthentication[], namespace: string, rootNamespace: string): MtlsMode {
  let mode: MtlsMode = 'PERMISSIVE';
  const mesh = namespacePolicy(pas, rootNamespace);
  if (mesh && mesh.mode !== 'UNSET') mode = mesh.mode;
  const ns = namespace === rootNamespace ? undefined : namespacePolicy(pas, namespace);
  if (ns && ns.mode !== 'UNSET') mode = ns.mode;
  return mode;
}

function strict(mode: MtlsMode): boolean {
  return mode === 'STRICT';
}

/** Default (unlisted ports) and per-port strictness of a workload policy, after inheritance. */
function workloadModes(pa: PeerAuthentication, inherited: MtlsMode): { defaultStrict: boolean; strictPorts: number[]; nonStrictPorts: number[] } {
  const workloadMode = pa.mode === 'UNSET' ? inherited : pa.mode;
  const defaultStrict = strict(workloadMode);
  const strictPorts: number[] = [];
  const nonStrictPorts: number[] = [];
  for (const [port, m] of [...pa.portModes].sort((a, b) => a[0] - b[0])) {
    const s = strict(m === 'UNSET' ? workloadMode : m);
    if (s && !defaultStrict) strictPorts.push(port);
    if (!s && defaultStrict) nonStrictPorts.push(port);
  }
  return { defaultStrict, strictPorts, nonStrictPorts };
}

/**
 * The Authorization policies istiod derives from PeerAuthentications for ztunnel: one static DENY of
 * plaintext in the root namespace (sent whenever any PeerAuthentication exists), and for each workload
 * policy whose port-level modes differ from its default a DENY named
 * `converted_peer_authentication_<name>`: default STRICT → deny plaintext unless the port is one of the
 * non-STRICT ports; default not STRICT → deny plaintext to each STRICT port. All are selector-scoped:
 * workloads reference them by key (see peerAuthenticationKeys), which is how precedence
 * workload > namespace > mesh reaches a consumer that only evaluates policies.
 */
export function convertPeerAuthentications(pas: readonly PeerAuthentication[], rootNamespace: string): AuthorizationPolicy[] {
  if (pas.length === 0) return [];
  const out: AuthorizationPolicy[] = [{ name: STATIC_STRICT_POLICY_NAME, namespace: rootNamespace, action: 'DENY', scope: 'workloadSelector', rules: [{ clauses: [{ matches: [DENY_PLAINTEXT] }] }] }];
  for (const pa of pas) {
    if (!pa.selector || pa.namespace === rootNamespace || pa.portModes.size === 0) continue;
    const { defaultStrict, strictPorts, nonStrictPorts } = workloadModes(pa, inheritedMode(pas, pa.namespace, rootNamespace));
    let rules: PolicyRule[] = [];
    if (defaultStrict && nonStrictPorts.length > 0) {
      // One rule, AND of: no principal, and not any of the exempt ports.
      rules = [{ clauses: [{ matches: [DENY_PLAINTEXT] }, ...nonStrictPorts.map((p) => ({ matches: [{ notDestinationPorts: [p] }] }))] }];
    } else if (!defaultStrict && strictPorts.length > 0) {
      rules = strictPorts.map((p) => ({ clauses: [{ matches: [{ ...DENY_PLAINTEXT, destinationPorts: [p] }] }] }));
    }
    if (rules.length === 0) continue;
    out.push({ name: `${CONVERTED_PEER_AUTHENTICATION_PREFIX}${pa.name}`, namespace: pa.namespace, action: 'DENY', scope: 'workloadSelector', rules });
  }
  return out;
}

/** Keys (`<ns>/<name>`) of the converted policies one workload references (Workload.authorization_policies). */
export function peerAuthenticationKeys(
  pas: readonly PeerAuthentication[],
  converted: readonly AuthorizationPolicy[],
  workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
  rootNamespace: string,
): string[] {
  if (pas.length === 0) return [];
  const inherited = inheritedMode(pas, workload.namespace, rootNamespace);
  const staticKey = `${rootNamespace}/${STATIC_STRICT_POLICY_NAME}`;
  const pa = workload.namespace === rootNamespace ? undefined : workloadPolicy(pas, workload.namespace, workload.labels);
  if (!pa) return strict(inherited) ? [staticKey] : [];
  const key = `${pa.namespace}/${CONVERTED_PEER_AUTHENTICATION_PREFIX}${pa.name}`;
  if (converted.some((p) => policyKey(p) === key)) return [key]; // carries the default strictness itself
  return workloadModes(pa, inherited).defaultStrict ? [staticKey] : [];
}
