// Reads a directory of Kubernetes-shaped YAML (MeshConfig, Node, Namespace, Pod, Service, AuthorizationPolicy, PeerAuthentication, DestinationRule, VirtualService, TrafficShaping) into a validated mesh snapshot.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { LineCounter, parseAllDocuments } from 'yaml';
import { SmeshError } from '../../core/errors';
import type { MeshNode, MeshSnapshot, Service, ServicePort, Workload } from '../../core/model/types';
import { workloadAddresses } from '../../core/model/addresses';
import { type FieldProblem, type FieldSpec, type ObjectSpec, validate } from './schema';
import { parseSimpleYaml } from './simple-yaml';
import { AUTHORIZATION_API_VERSIONS, AUTHORIZATION_POLICY_SPEC, checkDryRunAnnotation, convertAuthorizationPolicy } from './authorization';
import { checkObjectNames } from './istio-names';
import {
  convertPeerAuthentication,
  convertPeerAuthentications,
  PEER_AUTHENTICATION_API_VERSIONS,
  PEER_AUTHENTICATION_SPEC,
  peerAuthenticationKeys,
  type PeerAuthentication,
} from './peer-authentication';
import {
  buildTrafficPolicies,
  convertDestinationRule,
  convertVirtualService,
  DESTINATION_RULE_SPEC,
  TRAFFIC_API_VERSIONS,
  VIRTUAL_SERVICE_SPEC,
  type DestinationRuleConfig,
  type VirtualServiceConfig,
} from './istio-traffic';
import { convertTrafficShaping, resolveTrafficShaping, TRAFFIC_SHAPING_API_VERSION, TRAFFIC_SHAPING_SPEC, type TrafficShapingConfig } from './shaping';
import { podBandwidth } from './bandwidth';
import { DEFAULT_ROOT_NAMESPACE, selectorPolicyKeys } from '../../core/policy/evaluate';
import { policyKey, type AuthorizationPolicy } from '../../core/policy/types';
import { DEFAULT_TRUST_DOMAIN } from '../../core/identity/defaults';

/** One problem in one resource of one file. */
export interface ConfigProblem {
  readonly file: string;
  readonly line?: number;
  /** `Kind namespace/name` or `document N` when the resource could not be named. */
  readonly resource: string;
  readonly field: string;
  readonly message: string;
}

export class ConfigError extends SmeshError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super('SMESH_ERR_CONFIG', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` + problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}${p.line ? `:${p.line}` : ''}: ${p.resource}: field ${p.field}: ${p.message}`;
}

export const NETNS_ANNOTATION = 'smesh.io/netns';
export const DATAPLANE_MODE_LABEL = 'smesh.io/dataplane-mode';
const ISTIO_DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';

const metadata: FieldSpec = {
  object: {
    fields: {
      name: 'nonEmptyString',
      namespace: 'nonEmptyString',
      labels: 'stringMap',
      annotations: 'stringMap',
      uid: 'string',
      resourceVersion: 'string',
      generation: 'integer',
      creationTimestamp: 'ignored',
      ownerReferences: 'ignored',
      generateName: 'string',
    },
    required: ['name'],
  },
};

function resourceSpec(spec: FieldSpec | undefined, status?: FieldSpec): ObjectSpec {
  const fields: Record<string, FieldSpec> = { apiVersion: 'string', kind: 'string', metadata };
  if (spec) fields.spec = spec;
  if (status) fields.status = status;
  return { fields, required: ['apiVersion', 'kind', 'metadata'] };
}

const servicePort: FieldSpec = {
  object: {
    fields: { name: 'string', port: 'port', targetPort: 'ignored', protocol: { oneOf: ['TCP', 'UDP', 'SCTP'] }, appProtocol: 'string', nodePort: 'port' },
    required: ['port'],
  },
};

const SCHEMAS: Record<string, { apiVersion: string; otherApiVersions?: readonly string[]; spec: ObjectSpec; namespaced: boolean; istio?: boolean }> = {
  MeshConfig: {
    apiVersion: 'smesh.io/v1alpha1',
    namespaced: false,
    spec: resourceSpec({ object: { fields: { trustDomain: 'nonEmptyString', trustDomainAliases: { arrayOf: 'string' }, certificateTTL: 'duration', rootNamespace: 'nonEmptyString' } } }),
  },
  AuthorizationPolicy: {
    istio: true,
    apiVersion: AUTHORIZATION_API_VERSIONS[0],
    otherApiVersions: AUTHORIZATION_API_VERSIONS.slice(1),
    namespaced: true,
    spec: resourceSpec(AUTHORIZATION_POLICY_SPEC, 'ignored'),
  },
  PeerAuthentication: {
    istio: true,
    apiVersion: PEER_AUTHENTICATION_API_VERSIONS[0],
    otherApiVersions: PEER_AUTHENTICATION_API_VERSIONS.slice(1),
    namespaced: true,
    spec: resourceSpec(PEER_AUTHENTICATION_SPEC, 'ignored'),
  },
  DestinationRule: {
    istio: true,
    apiVersion: TRAFFIC_API_VERSIONS[0],
    otherApiVersions: TRAFFIC_API_VERSIONS.slice(1),
    namespaced: true,
    spec: resourceSpec(DESTINATION_RULE_SPEC, 'ignored'),
  },
  VirtualService: {
    istio: true,
    apiVersion: TRAFFIC_API_VERSIONS[0],
    otherApiVersions: TRAFFIC_API_VERSIONS.slice(1),
    namespaced: true,
    spec: resourceSpec(VIRTUAL_SERVICE_SPEC, 'ignored'),
  },
  TrafficShaping: {
    apiVersion: TRAFFIC_SHAPING_API_VERSION,
    namespaced: true,
    spec: resourceSpec(TRAFFIC_SHAPING_SPEC, 'ignored'),
  },
  Node: {
    apiVersion: 'v1',
    namespaced: false,
    spec: resourceSpec(
      { object: { fields: { podCIDR: 'string', podCIDRs: { arrayOf: 'string' }, providerID: 'string', taints: 'ignored', unschedulable: 'ignored' } } },
      {
        object: {
          fields: {
            addresses: { arrayOf: { object: { fields: { type: 'string', address: 'string' }, required: ['type', 'address'] } } },
            conditions: 'ignored',
            nodeInfo: 'ignored',
            capacity: 'ignored',
            allocatable: 'ignored',
          },
        },
      },
    ),
  },
  Namespace: { apiVersion: 'v1', namespaced: false, spec: resourceSpec({ object: { fields: { finalizers: 'ignored' } } }, 'ignored') },
  Pod: {
    apiVersion: 'v1',
    namespaced: true,
    spec: resourceSpec(
      {
        object: {
          fields: {
            nodeName: 'nonEmptyString',
            serviceAccountName: 'nonEmptyString',
            serviceAccount: 'string',
            containers: 'ignored',
            initContainers: 'ignored',
            volumes: 'ignored',
            hostNetwork: 'ignored',
            restartPolicy: 'ignored',
          },
        },
      },
      {
        object: {
          fields: { podIP: 'ip', podIPs: { arrayOf: { object: { fields: { ip: 'ip' } } } }, hostIP: 'ip', phase: 'string', conditions: 'ignored', containerStatuses: 'ignored', startTime: 'ignored' },
        },
      },
    ),
  },
  Service: {
    apiVersion: 'v1',
    namespaced: true,
    spec: resourceSpec(
      {
        object: {
          fields: {
            clusterIP: 'string',
            clusterIPs: { arrayOf: 'string' },
            selector: 'stringMap',
            ports: { arrayOf: servicePort },
            type: { oneOf: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] },
            ipFamilies: 'ignored',
            ipFamilyPolicy: 'ignored',
            sessionAffinity: 'ignored',
          },
          required: ['ports'],
        },
      },
      'ignored',
    ),
  },
};

export interface ParsedDoc {
  readonly file: string;
  readonly line?: number;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly body: any;
}

function resourceName(kind: string, body: any, index: number): string {
  const name = body?.metadata?.name;
  if (typeof name !== 'string') return `${kind || 'resource'} (document ${index + 1})`;
  const ns = body?.metadata?.namespace;
  return `${kind} ${typeof ns === 'string' ? `${ns}/` : ''}${name}`;
}

/** One YAML document before validation: its line, its YAML errors, its toJS() value. */
interface YamlDoc {
  readonly line: number | undefined;
  readonly errors: ReadonlyArray<{ readonly line: number | undefined; readonly message: string }>;
  readonly body: unknown;
}

/** Every document of `text` through the `yaml` library. */
function yamlDocuments(text: string): YamlDoc[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((doc) => {
    const line = doc.range ? lineCounter.linePos(doc.range[0]).line : undefined;
    if (doc.errors.length > 0) return { line, errors: doc.errors.map((e) => ({ line: e.linePos?.[0]?.line ?? line, message: e.message.split('\n')[0]! })), body: undefined };
    return { line, errors: [], body: doc.toJS() };
  });
}

export interface ParseConfigOptions {
  /**
   * Read files in the plain subset of YAML config files use with the fast reader (simple-yaml.ts), which gives the
   * same documents, lines and errors as the `yaml` library; other files go through `yaml`. Default true; false for
   * tests comparing the two.
   */
  readonly fastPath?: boolean;
}

/** Parses and validates one file's text; appends problems, returns the valid documents. */
export function parseConfigText(file: string, text: string, problems: ConfigProblem[], opts: ParseConfigOptions = {}): ParsedDoc[] {
  const simple = opts.fastPath === false ? undefined : parseSimpleYaml(text);
  const list: readonly YamlDoc[] = simple ? simple.map((d) => ({ line: d.line, errors: [], body: d.value })) : yamlDocuments(text);
  const out: ParsedDoc[] = [];
  list.forEach((doc, index) => {
    const line = doc.line;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        problems.push({ file, line: e.line, resource: `document ${index + 1}`, field: '(yaml)', message: e.message });
      }
      return;
    }
    const body = doc.body as any;
    if (body === null || body === undefined) return; // empty document
    const kind = typeof body?.kind === 'string' ? body.kind : '';
    const resource = resourceName(kind, body, index);
    if (typeof body !== 'object' || Array.isArray(body)) {
      problems.push({ file, line, resource, field: '(document)', message: 'expected a Kubernetes-style resource mapping' });
      return;
    }
    const schema = SCHEMAS[kind];
    if (!schema) {
      problems.push({ file, line, resource, field: 'kind', message: `unsupported kind ${JSON.stringify(body.kind)}; expected one of ${Object.keys(SCHEMAS).join(', ')}` });
      return;
    }
    const fieldProblems: FieldProblem[] = validate(body, { object: schema.spec }, '');
    if (schema.istio) fieldProblems.push(...checkObjectNames(body.metadata), ...checkDryRunAnnotation(kind, body.metadata?.annotations, body.spec?.action));
    const apiVersions = [schema.apiVersion, ...(schema.otherApiVersions ?? [])];
    if (!apiVersions.includes(body.apiVersion) && fieldProblems.every((p) => p.field !== 'apiVersion')) {
      fieldProblems.push({ field: 'apiVersion', message: `expected ${apiVersions.join(' or ')} for kind ${kind}, got ${JSON.stringify(body.apiVersion)}` });
    }
    for (const p of fieldProblems) problems.push({ file, line, resource, field: p.field, message: p.message });
    if (fieldProblems.length > 0) return;
    const namespace = schema.namespaced ? (body.metadata.namespace ?? 'default') : '';
    out.push({ file, line, kind, name: body.metadata.name, namespace, body });
  });
  return out;
}

function resolveTargetPort(p: any, file: string, line: number | undefined, resource: string, index: number, problems: ConfigProblem[]): number | undefined {
  const t = p.targetPort;
  if (t === undefined || t === null) return p.port;
  if (typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= 65535) return t;
  if (typeof t === 'string' && /^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= 65535) return Number(t);
  problems.push({ file, line, resource, field: `spec.ports[${index}].targetPort`, message: `expected a port number 1-65535 (named target ports are not supported yet), got ${JSON.stringify(t)}` });
  return undefined;
}

function isOptedOut(labels: Readonly<Record<string, string>> | undefined): boolean {
  const mode = labels?.[DATAPLANE_MODE_LABEL] ?? labels?.[ISTIO_DATAPLANE_MODE_LABEL];
  return mode === 'none';
}

/**
 * What buildSnapshot derived from one document on an earlier call: its names, and the Workload or Service made
 * from it (a document depends only on itself and, for a Pod's identity, the trust domain). Documents are
 * immutable and a file source hands the same objects back until the file changes, so a rebuild after a change
 * to one file recomputes only that file's objects (and the unchanged ones keep their identity).
 */
interface DocMemo {
  readonly key: string;
  readonly resource: string;
  workload?: Workload;
  trustDomain?: string;
  service?: Service;
}
const docMemos = new WeakMap<ParsedDoc, DocMemo>();

/**
 * MeshConfig spec.trustDomainAliases, validated as Istio validates them (each a trust domain like spec.trustDomain)
 * plus what would be a mistake here: the mesh's own trust domain, or one listed twice. Bad entries are reported and
 * left out (a Kubernetes source keeps the rest in force).
 */
function meshTrustDomainAliases(d: ParsedDoc, trustDomain: string, problems: ConfigProblem[]): string[] {
  const raw: unknown = d.body.spec?.trustDomainAliases;
  if (!Array.isArray(raw)) return []; // absent; a wrong type is already reported by the schema
  const out: string[] = [];
  raw.forEach((td: unknown, i) => {
    const field = `spec.trustDomainAliases[${i}]`;
    const problem = (message: string) => problems.push({ file: d.file, line: d.line, resource: `MeshConfig ${d.name}`, field, message });
    if (typeof td !== 'string') return; // reported by the schema
    if (!/^[a-z0-9.\-_]+$/.test(td)) problem(`expected a trust domain of lowercase letters, digits, '.', '-', '_', got ${JSON.stringify(td)}`);
    else if (td === trustDomain) problem(`${JSON.stringify(td)} is the mesh's trust domain (spec.trustDomain); an alias names another one`);
    else if (out.includes(td)) problem(`${JSON.stringify(td)} is listed twice (first at spec.trustDomainAliases[${raw.indexOf(td)}])`);
    else out.push(td);
  });
  return out;
}

/** Builds a snapshot from validated documents; cross-resource problems (duplicates, missing nodes) are appended. */
export function buildSnapshot(docs: readonly ParsedDoc[], problems: ConfigProblem[]): MeshSnapshot {
  let trustDomain = DEFAULT_TRUST_DOMAIN;
  const meshConfigs = docs.filter((d) => d.kind === 'MeshConfig');
  if (meshConfigs.length > 1) {
    const d = meshConfigs[1];
    problems.push({ file: d.file, line: d.line, resource: `MeshConfig ${d.name}`, field: 'kind', message: `only one MeshConfig is allowed (another is in ${meshConfigs[0].file})` });
  }
  if (meshConfigs[0]?.body.spec?.trustDomain) trustDomain = meshConfigs[0].body.spec.trustDomain;
  if (!/^[a-z0-9.\-_]+$/.test(trustDomain)) {
    const d = meshConfigs[0];
    problems.push({
      file: d.file,
      line: d.line,
      resource: `MeshConfig ${d.name}`,
      field: 'spec.trustDomain',
      message: `expected lowercase letters, digits, '.', '-', '_', got ${JSON.stringify(trustDomain)}`,
    });
  }

  const trustDomainAliases = meshConfigs[0] ? meshTrustDomainAliases(meshConfigs[0], trustDomain, problems) : [];
  const rootNamespace: string = meshConfigs[0]?.body.spec?.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const authorizationPolicies: AuthorizationPolicy[] = [];
  const peerAuthentications: PeerAuthentication[] = [];
  const destinationRules: DestinationRuleConfig[] = [];
  const virtualServices: VirtualServiceConfig[] = [];
  const trafficShapings: TrafficShapingConfig[] = [];

  const seen = new Map<string, ParsedDoc>();
  const nodes = new Map<string, MeshNode>();
  const namespaces = new Map<string, Readonly<Record<string, string>>>();
  const workloads = new Map<string, Workload>();
  const services = new Map<string, Service>();

  for (const d of docs) {
    let memo = docMemos.get(d);
    if (!memo) docMemos.set(d, (memo = { key: `${d.kind}/${d.namespace}/${d.name}`, resource: `${d.kind} ${d.namespace ? `${d.namespace}/` : ''}${d.name}` }));
    const { key, resource } = memo;
    const earlier = seen.get(key);
    if (earlier) {
      problems.push({ file: d.file, line: d.line, resource, field: 'metadata.name', message: `duplicate resource (first defined in ${earlier.file}${earlier.line ? `:${earlier.line}` : ''})` });
      continue;
    }
    seen.set(key, d);
    const b = d.body;
    switch (d.kind) {
      case 'Node': {
        const addrs: Array<{ type: string; address: string }> = b.status?.addresses ?? [];
        const internal = addrs.find((a) => a.type === 'InternalIP') ?? addrs[0];
        if (!internal || isIP(internal.address) === 0) {
          problems.push({ file: d.file, line: d.line, resource, field: 'status.addresses', message: 'expected an InternalIP address the node agent listens on' });
          break;
        }
        nodes.set(d.name, { name: d.name, address: internal.address });
        break;
      }
      case 'Namespace':
        namespaces.set(d.name, b.metadata.labels ?? {});
        break;
      case 'Pod': {
        if (memo.workload && memo.trustDomain === trustDomain) {
          workloads.set(memo.workload.uid, memo.workload);
          break;
        }
        const nodeName = b.spec?.nodeName;
        const podIP = b.status?.podIP ?? b.status?.podIPs?.[0]?.ip;
        if (!nodeName) problems.push({ file: d.file, line: d.line, resource, field: 'spec.nodeName', message: 'required field is missing (the node the pod is scheduled on)' });
        if (!podIP) problems.push({ file: d.file, line: d.line, resource, field: 'status.podIP', message: 'required field is missing (the pod address)' });
        if (!nodeName || !podIP) break;
        const labels: Record<string, string> = b.metadata.labels ?? {};
        const sa = b.spec?.serviceAccountName ?? b.spec?.serviceAccount ?? 'default';
        const uid = `${d.namespace}/${d.name}`;
        // kubernetes.io/{egress,ingress}-bandwidth: a bad value is reported and left out (the pod still joins the mesh).
        const bw = podBandwidth(b.metadata.annotations);
        for (const p of bw.problems) problems.push({ file: d.file, line: d.line, resource, field: p.field, message: p.message });
        const w: Workload = {
          uid,
          name: d.name,
          namespace: d.namespace,
          serviceAccount: sa,
          node: nodeName,
          ip: podIP,
          ...podAddresses(podIP, b.status?.podIPs),
          labels,
          netns: b.metadata.annotations?.[NETNS_ANNOTATION],
          workloadName: labels['app.kubernetes.io/name'] ?? labels.app ?? d.name,
          identity: `spiffe://${trustDomain}/ns/${d.namespace}/sa/${sa}`,
          meshed: !isOptedOut(labels),
          ...bw.bandwidth,
        };
        workloads.set(uid, w);
        if (bw.problems.length > 0) break; // re-checked (and re-reported) every time, as a Service with problems
        memo.workload = w;
        memo.trustDomain = trustDomain;
        break;
      }
      case 'Service': {
        if (memo.service) {
          services.set(memo.service.key, memo.service);
          break;
        }
        const problemsBefore = problems.length;
        const vips: string[] = [];
        for (const [i, ip] of [b.spec.clusterIP, ...(b.spec.clusterIPs ?? [])].entries()) {
          if (ip === undefined || ip === null || ip === 'None' || ip === '') continue;
          if (isIP(ip) === 0) {
            problems.push({
              file: d.file,
              line: d.line,
              resource,
              field: i === 0 ? 'spec.clusterIP' : `spec.clusterIPs[${i - 1}]`,
              message: `expected an IP address or None, got ${JSON.stringify(ip)}`,
            });
            continue;
          }
          if (!vips.includes(ip)) vips.push(ip);
        }
        const ports: ServicePort[] = [];
        (b.spec.ports as any[]).forEach((p, i) => {
          if (p.protocol && p.protocol !== 'TCP') return; // the mesh proxies TCP only; UDP ports pass untouched
          const targetPort = resolveTargetPort(p, d.file, d.line, resource, i, problems);
          if (targetPort === undefined) return;
          ports.push({ name: p.name, port: p.port, targetPort, appProtocol: p.appProtocol });
        });
        const service: Service = { key: `${d.namespace}/${d.name}`, name: d.name, namespace: d.namespace, vips, ports, selector: b.spec.selector ?? {} };
        services.set(service.key, service);
        if (problems.length === problemsBefore) memo.service = service; // a service with problems is re-checked (and re-reported) every time
        break;
      }
      case 'AuthorizationPolicy': {
        const { policy, problems: policyProblems } = convertAuthorizationPolicy(d.name, d.namespace, b.spec, rootNamespace);
        for (const p of policyProblems) problems.push({ file: d.file, line: d.line, resource, field: p.field, message: p.message });
        if (policy) authorizationPolicies.push(policy);
        break;
      }
      case 'PeerAuthentication': {
        const { policy, problems: paProblems } = convertPeerAuthentication(d.name, d.namespace, b.spec, rootNamespace);
        for (const p of paProblems) problems.push({ file: d.file, line: d.line, resource, field: p.field, message: p.message });
        if (policy) peerAuthentications.push(policy);
        break;
      }
      case 'DestinationRule': {
        const { rule, problems: drProblems } = convertDestinationRule(d.name, d.namespace, b.spec, b.metadata.annotations ?? {});
        for (const p of drProblems) problems.push({ file: d.file, line: d.line, resource, field: p.field, message: p.message });
        if (rule) destinationRules.push(rule);
        break;
      }
      case 'VirtualService': {
        const { service, problems: vsProblems } = convertVirtualService(d.name, d.namespace, b.spec);
        for (const p of vsProblems) problems.push({ file: d.file, line: d.line, resource, field: p.field, message: p.message });
        if (service) virtualServices.push(service);
        break;
      }
      case 'TrafficShaping': {
        const { shaping, problems: tsProblems } = convertTrafficShaping(d.name, d.namespace, b.spec);
        for (const p of tsProblems) problems.push({ file: d.file, line: d.line, resource, field: p.field, message: p.message });
        if (shaping) trafficShapings.push(shaping);
        break;
      }
      default:
        break;
    }
  }
  // A namespace opt-out applies to its pods.
  for (const [uid, w] of workloads) {
    if (w.meshed && isOptedOut(namespaces.get(w.namespace))) workloads.set(uid, { ...w, meshed: false });
  }
  const byIp = new Map<string, string>();
  for (const w of workloads.values()) {
    workloadAddresses(w).forEach((ip, i) => {
      const other = byIp.get(ip);
      if (other) {
        const d = seen.get(`Pod/${w.namespace}/${w.name}`)!;
        problems.push({ file: d.file, line: d.line, resource: `Pod ${w.uid}`, field: i === 0 ? 'status.podIP' : `status.podIPs[${i}].ip`, message: `address ${ip} is already used by Pod ${other}` });
      }
      byIp.set(ip, w.uid);
    });
  }
  // PeerAuthentications travel as istiod converts them for ztunnel: DENY policies that each workload
  // references by key (so the workload's references are resolved here, selector policies included).
  const converted = convertPeerAuthentications(peerAuthentications, rootNamespace);
  if (converted.length > 0) {
    for (const [uid, w] of workloads) {
      const refs = [...selectorPolicyKeys(authorizationPolicies, w, rootNamespace), ...peerAuthenticationKeys(peerAuthentications, converted, w, rootNamespace)].sort();
      workloads.set(uid, { ...w, authorizationPolicies: refs });
    }
    authorizationPolicies.push(...converted);
  }
  authorizationPolicies.sort((a, b) => (policyKey(a) < policyKey(b) ? -1 : policyKey(a) > policyKey(b) ? 1 : 0));
  const traffic = buildTrafficPolicies(destinationRules, virtualServices, services, workloads);
  for (const p of traffic.problems) {
    const d = seen.get(`${p.kind}/${p.namespace}/${p.name}`)!;
    problems.push({ file: d.file, line: d.line, resource: `${p.kind} ${p.namespace}/${p.name}`, field: p.field, message: p.message });
  }
  const shaping = resolveTrafficShaping(trafficShapings, workloads, services, rootNamespace);
  for (const p of shaping.problems) {
    const d = seen.get(`TrafficShaping/${p.namespace}/${p.name}`)!;
    problems.push({ file: d.file, line: d.line, resource: `TrafficShaping ${p.namespace}/${p.name}`, field: p.field, message: p.message });
  }
  return {
    trustDomain,
    ...(trustDomainAliases.length > 0 ? { trustDomainAliases } : {}),
    nodes,
    workloads,
    services,
    namespaces,
    authorizationPolicies,
    rootNamespace,
    ...(traffic.policies.size > 0 ? { trafficPolicies: traffic.policies } : {}),
    ...(shaping.shaping.size > 0 ? { trafficShaping: shaping.shaping } : {}),
  };
}

/** Parse results of one file, reused while its size, mtime and inode are unchanged (see `loadConfigDir`). */
export interface CachedConfigFile {
  readonly stamp: string;
  readonly docs: readonly ParsedDoc[];
  readonly problems: readonly ConfigProblem[];
}

/** Per-file parse cache for `loadConfigDir` (file path → last parse); owned by one caller, e.g. the control plane's file source. */
export type ConfigParseCache = Map<string, CachedConfigFile>;

/**
 * Reads every *.yaml / *.yml file in `dir` (not recursive). Throws ConfigError listing every problem; never returns half a config.
 * With `cache`, files whose size, mtime and inode are unchanged since the last call are not re-read or re-parsed
 * (YAML parsing dominates: ~16 s for 60k documents); the snapshot is still built from every file's documents.
 */
export function loadConfigDir(dir: string, cache?: ConfigParseCache): MeshSnapshot {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    throw new SmeshError('SMESH_ERR_CONFIG', `cannot read config directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const problems: ConfigProblem[] = [];
  const docs: ParsedDoc[] = [];
  const present = new Set<string>();
  for (const name of entries.sort()) {
    if (!/\.ya?ml$/.test(name)) continue;
    const file = join(dir, name);
    const st = statSync(file);
    if (!st.isFile()) continue;
    if (!cache) {
      for (const d of parseConfigText(file, readFileSync(file, 'utf8'), problems)) docs.push(d);
      continue;
    }
    present.add(file);
    const stamp = `${st.size}:${st.mtimeMs}:${st.ino}:${st.ctimeMs}`;
    let cached = cache.get(file);
    if (!cached || cached.stamp !== stamp) {
      const fileProblems: ConfigProblem[] = [];
      const parsed = parseConfigText(file, readFileSync(file, 'utf8'), fileProblems);
      cached = { stamp, docs: parsed, problems: fileProblems };
      cache.set(file, cached);
    }
    for (const p of cached.problems) problems.push(p);
    for (const d of cached.docs) docs.push(d);
  }
  if (cache) for (const file of [...cache.keys()]) if (!present.has(file)) cache.delete(file);
  const snapshot = buildSnapshot(docs, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return snapshot;
}

/**
 * A dual-stack pod's addresses (Kubernetes `status.podIPs`, one per family, `podIP` first): `{ addresses }` when it has
 * more than `podIP`, else nothing (the Workload then has just `ip`).
 */
function podAddresses(podIP: string, podIPs: ReadonlyArray<{ ip?: string }> | undefined): { addresses?: readonly string[] } {
  const all = [podIP];
  for (const p of podIPs ?? []) if (p.ip && !all.includes(p.ip)) all.push(p.ip);
  return all.length > 1 ? { addresses: all } : {};
}
