// Table tests for xDS resource validation (one precise error per malformed field) and for building a MeshSnapshot from accepted resources.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildSnapshot,
  parseResource,
  type AcceptedAddress,
  type AcceptedLocalWorkload,
  type AcceptedMeshConfig,
  type AcceptedNode,
  type AcceptedResource,
  type AnyMessage,
} from '../../../../agent/xds/convert';
import { localWorkload, meshConfig, meshNode, meshPki, service, TD, workload, type MeshPki } from '../../fixtures/xds';
import { XDS_TYPE_URL, xdsCodecs } from '../../../../core/xds/contract';

const A = XDS_TYPE_URL.address;
const POD_A = 'Kubernetes//Pod/default/a';

let pki: MeshPki;
beforeAll(async () => {
  pki = await meshPki();
});

interface Case {
  name: string;
  typeUrl: string;
  resource: () => { name: string; any: AnyMessage | null };
  /** Exact error, or a RegExp; undefined = accepted. */
  error?: string | RegExp;
  check?: (v: AcceptedResource) => void;
}

const cases: Case[] = [
  {
    name: 'valid workload',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1'),
    check: (v) => expect(v).toMatchObject({ kind: 'workload', uid: POD_A, ips: ['10.0.0.1'], node: 'node1', serviceAccount: 'default', workloadName: 'a', hbone: true }),
  },
  {
    name: 'IPv6 workload address (16 bytes) in RFC 5952 text',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { addresses: [Buffer.from('20010db8000000000000000000000001', 'hex')] }),
    check: (v) => expect(v).toMatchObject({ ips: ['2001:db8::1'] }),
  },
  {
    name: 'empty service account means "default", canonical name wins',
    typeUrl: A,
    resource: () => workload('default', 'web-1', '10.0.0.1', { serviceAccount: '', canonicalName: 'web' }),
    check: (v) => expect(v).toMatchObject({ serviceAccount: 'default', workloadName: 'web' }),
  },
  {
    name: 'workload address of 3 bytes',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { addresses: [Buffer.from([10, 0, 0])] }),
    error: `Address ${POD_A}: workload.addresses[0]: expected 4 or 16 bytes, got 3`,
  },
  {
    name: 'second workload address of 5 bytes',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { addresses: [Buffer.from([10, 0, 0, 1]), Buffer.alloc(5)] }),
    error: `Address ${POD_A}: workload.addresses[1]: expected 4 or 16 bytes, got 5`,
  },
  {
    name: 'workload without addresses',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { addresses: [] }),
    error: `Address ${POD_A}: workload.addresses: expected at least one 4- or 16-byte address`,
  },
  {
    name: 'workload uid differs from the resource name',
    typeUrl: A,
    resource: () => ({ ...workload('default', 'a', '10.0.0.1'), name: 'Kubernetes//Pod/default/b' }),
    error: `Address Kubernetes//Pod/default/b: workload.uid: expected the resource name "Kubernetes//Pod/default/b", got "${POD_A}"`,
  },
  {
    name: 'workload with empty name',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { name: '' }),
    error: `Address ${POD_A}: workload.name: expected a Kubernetes object name, got an empty string`,
  },
  {
    name: 'workload namespace not a DNS label',
    typeUrl: A,
    resource: () => workload('Default', 'a', '10.0.0.1'),
    error: 'Address Kubernetes//Pod/Default/a: workload.namespace: expected a Kubernetes namespace name, got "Default"',
  },
  {
    name: 'workload service account with a slash',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { serviceAccount: 'a/b' }),
    error: `Address ${POD_A}: workload.service_account: expected empty ("default") or [A-Za-z0-9._-]+, got "a/b"`,
  },
  {
    name: 'workload trust domain in upper case',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { trustDomain: 'Cluster.Local' }),
    error: `Address ${POD_A}: workload.trust_domain: expected empty (mesh default) or lowercase [a-z0-9._-]+, got "Cluster.Local"`,
  },
  {
    name: 'workload without node',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { node: '' }),
    error: `Address ${POD_A}: workload.node: expected the name of the node the workload runs on, got an empty string`,
  },
  {
    name: 'workload services key without a slash',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { services: { 'web.default.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 8080 }] } } }),
    error: `Address ${POD_A}: workload.services["web.default.svc.cluster.local"]: expected "<namespace>/<hostname>", got "web.default.svc.cluster.local"`,
  },
  {
    name: 'workload services port 0',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { services: { 'default/web.default.svc.cluster.local': { ports: [{ servicePort: 0, targetPort: 8080 }] } } }),
    error: `Address ${POD_A}: workload.services["default/web.default.svc.cluster.local"].ports[0].service_port: expected a port 1-65535, got 0`,
  },
  {
    name: 'workload services target port 70000',
    typeUrl: A,
    resource: () => workload('default', 'a', '10.0.0.1', { services: { 'default/web.default.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: 70000 }] } } }),
    error: `Address ${POD_A}: workload.services["default/web.default.svc.cluster.local"].ports[0].target_port: expected a port 0-65535 (0 = same as service_port), got 70000`,
  },
  {
    name: 'Address with neither workload nor service',
    typeUrl: A,
    resource: () => ({ name: 'x', any: xdsCodecs().address.pack({}) }),
    error: 'Address x: type: expected a workload or a service, got neither',
  },
  {
    name: 'valid service',
    typeUrl: A,
    resource: () => service('default', 'web', '198.19.0.10'),
    check: (v) => expect(v).toMatchObject({ kind: 'service', resourceName: 'default/web.default.svc.cluster.local', vips: ['198.19.0.10'], ports: [{ servicePort: 80, targetPort: 8080 }] }),
  },
  {
    name: 'service VIP of 5 bytes',
    typeUrl: A,
    resource: () => service('default', 'web', '198.19.0.10', { addresses: [{ network: '', address: Buffer.alloc(5) }] }),
    error: 'Address default/web.default.svc.cluster.local: service.addresses[0].address: expected 4 or 16 bytes, got 5',
  },
  {
    name: 'service resource name does not match namespace/hostname',
    typeUrl: A,
    resource: () => ({ ...service('default', 'web', '198.19.0.10'), name: 'default/web' }),
    error: 'Address default/web: service.hostname: expected the resource name "default/web" to be "<namespace>/<hostname>" = "default/web.default.svc.cluster.local"',
  },
  {
    name: 'service with empty hostname',
    typeUrl: A,
    resource: () => ({ ...service('default', 'web', '198.19.0.10', { hostname: '' }), name: 'default/' }),
    error: 'Address default/: service.hostname: expected the service FQDN, got an empty string',
  },
  {
    name: 'service port listed twice',
    typeUrl: A,
    resource: () => service('default', 'web', '198.19.0.10', { ports: [{ servicePort: 80 }, { servicePort: 80, targetPort: 81 }] }),
    error: 'Address default/web.default.svc.cluster.local: service.ports[1].service_port: port 80 is listed twice',
  },
  {
    name: 'Any of another type',
    typeUrl: A,
    resource: () => ({ name: 'node1', any: meshNode('node1', '198.18.0.1').any }),
    error: 'Address node1: resource.type_url: expected "type.googleapis.com/istio.workload.Address", got "type.googleapis.com/smesh.mesh.v1alpha1.Node"',
  },
  {
    name: 'undecodable bytes',
    typeUrl: A,
    resource: () => ({ name: 'x', any: { type_url: A, value: Buffer.from([0x0a, 0x10, 0x01]) } }),
    error: /^Address x: resource\.value: cannot decode istio\.workload\.Address: /,
  },
  {
    name: 'resource without body',
    typeUrl: A,
    resource: () => ({ name: 'x', any: null }),
    error: 'Address x: resource: expected a resource body, got none',
  },
  {
    name: 'valid node',
    typeUrl: XDS_TYPE_URL.node,
    resource: () => meshNode('node1', '198.18.0.1'),
    check: (v) => expect(v).toEqual({ kind: 'node', name: 'node1', address: '198.18.0.1' }),
  },
  {
    name: 'node address not an IP',
    typeUrl: XDS_TYPE_URL.node,
    resource: () => meshNode('node1', 'node1.example'),
    error: 'Node node1: address: expected an IPv4 or IPv6 address, got "node1.example"',
  },
  {
    name: 'node name differs from the resource name',
    typeUrl: XDS_TYPE_URL.node,
    resource: () => ({ ...meshNode('node1', '198.18.0.1'), name: 'node2' }),
    error: 'Node node2: name: expected the resource name "node2", got "node1"',
  },
  {
    name: 'local workload with a relative netns path',
    typeUrl: XDS_TYPE_URL.localWorkload,
    resource: () => localWorkload(POD_A, 'netns/a'),
    error: `LocalWorkload ${POD_A}: netns: expected an absolute path (e.g. /run/netns/NAME) or empty, got "netns/a"`,
  },
  {
    name: 'mesh config with another name',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => ({ ...meshConfig(TD), name: 'other' }),
    error: 'MeshConfig other: name: expected the resource name "mesh", got "other"',
  },
  {
    name: 'mesh config trust domain empty',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig(''),
    error: 'MeshConfig mesh: trust_domain: expected a lowercase trust domain [a-z0-9._-]+, got an empty string',
  },
  {
    name: 'mesh config trust anchor that is not PEM',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig(TD, ['not a certificate']),
    error: /^MeshConfig mesh: trust_anchors\[0\]: expected a PEM X\.509 certificate: /,
  },
  {
    name: 'mesh config trust anchor that is a leaf',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig(TD, [pki.rootPem, pki.serverCertPem]),
    error: /^MeshConfig mesh: trust_anchors\[1\]: expected a CA certificate/,
  },
  {
    name: 'valid mesh config with anchors',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig('example.org', [pki.rootPem]),
    check: (v) => expect(v).toEqual({ kind: 'meshConfig', trustDomain: 'example.org', trustAnchors: [pki.rootPem], trustDomainAliases: [] }),
  },
  {
    name: 'valid mesh config with trust-domain aliases',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig('example.org', [], ['old.example', 'legacy.local']),
    check: (v) => expect(v).toEqual({ kind: 'meshConfig', trustDomain: 'example.org', trustAnchors: [], trustDomainAliases: ['old.example', 'legacy.local'] }),
  },
  {
    name: 'mesh config trust-domain alias that is not a trust domain',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig('example.org', [], ['old.example', 'Bad/TD']),
    error: 'MeshConfig mesh: trust_domain_aliases[1]: expected a lowercase trust domain [a-z0-9._-]+, got "Bad/TD"',
  },
  {
    name: 'mesh config trust-domain alias that is the trust domain',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig('example.org', [], ['example.org']),
    error: 'MeshConfig mesh: trust_domain_aliases[0]: expected a trust domain other than trust_domain, got "example.org"',
  },
  {
    name: 'mesh config trust-domain alias listed twice',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig('example.org', [], ['old.example', 'legacy.local', 'old.example']),
    error: 'MeshConfig mesh: trust_domain_aliases[2]: expected each alias once, "old.example" is also trust_domain_aliases[0]',
  },
  {
    name: 'mesh config trust-domain alias that is empty',
    typeUrl: XDS_TYPE_URL.meshConfig,
    resource: () => meshConfig('example.org', [], ['']),
    error: 'MeshConfig mesh: trust_domain_aliases[0]: expected a lowercase trust domain [a-z0-9._-]+, got an empty string',
  },
  {
    name: 'resource of a type the agent does not subscribe to',
    typeUrl: 'type.googleapis.com/foo.Bar',
    resource: () => ({ name: 'x', any: { type_url: 'type.googleapis.com/foo.Bar', value: Buffer.alloc(0) } }),
    error: 'Bar x: type_url: "type.googleapis.com/foo.Bar" is not a type this agent subscribes to',
  },
];

describe('parseResource', () => {
  it.each(cases)('$name', (c) => {
    const r = c.resource();
    const result = parseResource(c.typeUrl, r.name, r.any);
    if (c.error === undefined) {
      if (!result.ok) throw new Error(`unexpected error: ${result.error}`);
      c.check?.(result.value);
    } else {
      expect(result.ok).toBe(false);
      const error = (result as { error: string }).error;
      if (typeof c.error === 'string') expect(error).toBe(c.error);
      else expect(error).toMatch(c.error);
    }
  });
});

function accept<T extends AcceptedResource>(typeUrl: string, r: { name: string; any: AnyMessage }): [string, T] {
  const result = parseResource(typeUrl, r.name, r.any);
  if (!result.ok) throw new Error(result.error);
  return [r.name, result.value as T];
}

describe('buildSnapshot', () => {
  const WEB = 'default/web.default.svc.cluster.local';

  it('workloads: ip, identity, node, canonical name, netns from LocalWorkload, meshed from tunnel protocol', () => {
    const built = buildSnapshot({
      addresses: new Map([
        accept<AcceptedAddress>(A, workload('default', 'web-1', '198.18.1.10', { serviceAccount: 'web', canonicalName: 'web', canonicalRevision: 'v1' })),
        accept<AcceptedAddress>(A, workload('other', 'db-0', '198.18.2.10', { trustDomain: '', node: 'node2', tunnelProtocol: 'NONE' })),
      ]),
      nodes: new Map([accept<AcceptedNode>(XDS_TYPE_URL.node, meshNode('node1', '198.18.0.1')), accept<AcceptedNode>(XDS_TYPE_URL.node, meshNode('node2', '198.18.0.2'))]),
      localWorkloads: new Map([accept<AcceptedLocalWorkload>(XDS_TYPE_URL.localWorkload, localWorkload('Kubernetes//Pod/default/web-1', '/run/netns/web-1'))]),
      meshConfig: accept<AcceptedMeshConfig>(XDS_TYPE_URL.meshConfig, meshConfig('example.org'))[1],
    });
    const s = built.snapshot;
    expect(s.trustDomain).toBe('example.org');
    expect(s.workloads.get('Kubernetes//Pod/default/web-1')).toEqual({
      uid: 'Kubernetes//Pod/default/web-1',
      name: 'web-1',
      namespace: 'default',
      serviceAccount: 'web',
      node: 'node1',
      ip: '198.18.1.10',
      labels: { 'service.istio.io/canonical-name': 'web', 'service.istio.io/canonical-revision': 'v1' },
      netns: '/run/netns/web-1',
      workloadName: 'web',
      // The workload's own trust domain wins over the mesh's.
      identity: `spiffe://${TD}/ns/default/sa/web`,
      meshed: true,
    });
    const db = s.workloads.get('Kubernetes//Pod/other/db-0')!;
    expect(db.identity).toBe('spiffe://example.org/ns/other/sa/default');
    expect(db.meshed).toBe(false);
    expect(db.netns).toBeUndefined();
    expect(s.nodes.get('node2')).toEqual({ name: 'node2', address: '198.18.0.2' });
    expect([...s.namespaces.keys()]).toEqual(['default', 'other']);
    expect(built.warnings).toEqual([]);
  });

  it('services: key namespace/name, VIPs, explicit endpoint uids from Workload.services, target ports', () => {
    const member = (name: string, ip: string, target: number) =>
      accept<AcceptedAddress>(A, workload('default', name, ip, { services: { [WEB]: { ports: [{ servicePort: 80, targetPort: target }, { servicePort: 443 }] } } }));
    const built = buildSnapshot({
      addresses: new Map([
        member('web-2', '198.18.1.12', 9090),
        member('web-1', '198.18.1.11', 9090),
        accept<AcceptedAddress>(A, workload('default', 'other', '198.18.1.13')),
        accept<AcceptedAddress>(A, service('default', 'web', '198.19.0.10', { ports: [{ servicePort: 80 }, { servicePort: 443, targetPort: 8443 }, { servicePort: 8000 }] })),
      ]),
      nodes: new Map(),
      localWorkloads: new Map(),
    });
    expect(built.snapshot.trustDomain).toBe('cluster.local');
    expect(built.snapshot.services.get('default/web')).toEqual({
      key: 'default/web',
      name: 'web',
      namespace: 'default',
      vips: ['198.19.0.10'],
      // 80: from the endpoints' mapping; 443: the service's own target_port; 8000: same as port.
      ports: [
        { port: 80, targetPort: 9090 },
        { port: 443, targetPort: 8443 },
        { port: 8000, targetPort: 8000 },
      ],
      selector: {},
      endpointUids: ['Kubernetes//Pod/default/web-1', 'Kubernetes//Pod/default/web-2'],
    });
    expect(built.warnings).toEqual([]);
  });

  it('reports inconsistencies as warnings: endpoints disagreeing on a target port, a shared IP, dangling references', () => {
    const built = buildSnapshot({
      addresses: new Map([
        accept<AcceptedAddress>(A, workload('default', 'a', '198.18.1.11', { services: { [WEB]: { ports: [{ servicePort: 80, targetPort: 8080 }] } } })),
        accept<AcceptedAddress>(A, workload('default', 'b', '198.18.1.11', { services: { [WEB]: { ports: [{ servicePort: 80, targetPort: 9090 }] } } })),
        accept<AcceptedAddress>(A, workload('default', 'c', '198.18.1.12', { services: { 'default/gone.default.svc.cluster.local': { ports: [] } } })),
        accept<AcceptedAddress>(A, service('default', 'web', '198.19.0.10', { ports: [{ servicePort: 80 }] })),
      ]),
      nodes: new Map(),
      localWorkloads: new Map([accept<AcceptedLocalWorkload>(XDS_TYPE_URL.localWorkload, localWorkload('Kubernetes//Pod/default/zz', '/run/netns/zz'))]),
    });
    expect(built.snapshot.services.get('default/web')!.ports).toEqual([{ port: 80, targetPort: 8080 }]);
    expect(built.warnings).toEqual([
      'Address Kubernetes//Pod/default/b: workload.addresses[0]: 198.18.1.11 is also the address of Kubernetes//Pod/default/a; lookups by IP find Kubernetes//Pod/default/a',
      'LocalWorkload Kubernetes//Pod/default/zz: uid: no Address resource with this uid (yet)',
      `Address ${WEB}: port 80: endpoints disagree on target_port (Kubernetes//Pod/default/a→8080, Kubernetes//Pod/default/b→9090); using 8080`,
      'Address Kubernetes//Pod/default/c: workload.services["default/gone.default.svc.cluster.local"]: no Service resource with this name (yet)',
    ]);
    // The StateStore index keeps the last writer per IP: the first owner (a) comes last.
    expect([...built.snapshot.workloads.keys()].filter((k) => built.snapshot.workloads.get(k)!.ip === '198.18.1.11').at(-1)).toBe('Kubernetes//Pod/default/a');
  });

  it('is deterministic: the same resources in another insertion order give an equal snapshot', () => {
    const entries = [
      accept<AcceptedAddress>(A, workload('default', 'a', '198.18.1.11', { services: { [WEB]: { ports: [{ servicePort: 80 }] } } })),
      accept<AcceptedAddress>(A, workload('default', 'b', '198.18.1.12', { services: { [WEB]: { ports: [{ servicePort: 80 }] } } })),
      accept<AcceptedAddress>(A, service('default', 'web', '198.19.0.10')),
    ];
    const one = buildSnapshot({ addresses: new Map(entries), nodes: new Map(), localWorkloads: new Map() }).snapshot;
    const two = buildSnapshot({ addresses: new Map([...entries].reverse()), nodes: new Map(), localWorkloads: new Map() }).snapshot;
    expect([...two.workloads.keys()]).toEqual([...one.workloads.keys()]);
    expect(two).toEqual(one);
  });
});
