// The hand-written xDS decoders agree with protobufjs (decode + toObject) on random Address resources and DeltaDiscoveryResponses, and fail on truncated input.
import { describe, expect, it } from 'vitest';
import { loadMeshProtos } from '../../../../proto';
import { decodeAddress, decodeAddressOf, decodeDeltaResponse } from '../../../../agent/xds/wire';
import { seeded as rng } from '../../../helpers/prng';

const codecs = loadMeshProtos().codecs;

function gen(seed: number) {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const str = (opt = true) => (opt && r() < 0.3 ? '' : ['a', 'web', 'ns-1', 'ü-ñ', 'x'.repeat(int(40))][int(5)]! + int(1000));
  const bytes = () => Buffer.from(Array.from({ length: [4, 16, 3][int(3)]! }, () => int(256)));
  const port = () => ({
    servicePort: int(70000),
    targetPort: int(3) === 0 ? 0 : int(65536),
    ...(r() < 0.5 ? { appProtocol: ['UNKNOWN', 'HTTP11', 'HTTP2', 'GRPC', 'TCP', 'TLS', 9][int(7)] } : {}),
    ...(r() < 0.3 ? { smeshAppProtocol: ['http', 'grpc', ''][int(3)] } : {}),
  });
  const ports = () => Array.from({ length: int(4) }, port);
  return { r, int, str, bytes, port, ports };
}

function randomWorkload(seed: number) {
  const g = gen(seed);
  const services: Record<string, { ports: ReturnType<typeof g.port>[] }> = {};
  for (let i = g.int(4); i > 0; i--) services[`ns/${g.str(false)}`] = { ports: g.ports() };
  return {
    uid: g.str(),
    name: g.str(),
    namespace: g.str(),
    addresses: Array.from({ length: g.int(3) }, g.bytes),
    hostname: g.str(),
    network: g.str(),
    tunnelProtocol: (['NONE', 'HBONE'] as const)[g.int(2)],
    trustDomain: g.str(),
    serviceAccount: g.str(),
    node: g.str(),
    canonicalName: g.str(),
    canonicalRevision: g.str(),
    workloadType: 'POD' as const,
    workloadName: g.str(),
    services,
    authorizationPolicies: Array.from({ length: g.int(3) }, () => g.str(false)),
    clusterId: g.str(),
    locality: g.r() < 0.5 ? { region: 'r', zone: 'z', subzone: '' } : undefined,
    capacity: g.r() < 0.5 ? { value: g.int(10) } : undefined,
  };
}

function randomService(seed: number) {
  const g = gen(seed);
  return {
    name: g.str(),
    namespace: g.str(),
    hostname: g.str(),
    addresses: Array.from({ length: g.int(3) }, () => ({ network: g.str(), address: g.bytes() })),
    ports: g.ports(),
    subjectAltNames: [g.str()],
    canonical: g.r() < 0.5,
  };
}

/** What the agent reads from protobufjs's output, in the hand-written decoder's shape. */
function viaProtobufjs(bytes: Buffer) {
  const a = codecs.address.decode(bytes);
  const port = (p: { servicePort: number; targetPort: number; appProtocol?: string | number; smeshAppProtocol?: string }) => ({
    servicePort: p.servicePort,
    targetPort: p.targetPort,
    appProtocol: p.appProtocol ?? 'UNKNOWN',
    smeshAppProtocol: p.smeshAppProtocol ?? '',
  });
  if (a.type === 'workload') {
    const w = a.workload!;
    return {
      type: 'workload',
      workload: {
        uid: w.uid,
        name: w.name,
        namespace: w.namespace,
        addresses: w.addresses.map((b) => Buffer.from(b)),
        tunnelProtocol: w.tunnelProtocol,
        trustDomain: w.trustDomain,
        // workload_name is only read (and decoded) when canonical_name is empty.
        serviceAccount: w.serviceAccount,
        node: w.node,
        canonicalName: w.canonicalName,
        canonicalRevision: w.canonicalRevision,
        workloadName: w.canonicalName ? '' : w.workloadName,
        services: Object.fromEntries(Object.entries(w.services).map(([k, v]) => [k, { ports: (v?.ports ?? []).map(port) }])),
        authorizationPolicies: w.authorizationPolicies,
      },
    };
  }
  if (a.type === 'service') {
    const s = a.service!;
    return {
      type: 'service',
      service: { name: s.name, namespace: s.namespace, hostname: s.hostname, addresses: s.addresses.map((x) => ({ address: Buffer.from(x.address) })), ports: s.ports.map(port) },
    };
  }
  return { type: null };
}

/** 4-byte addresses arrive as dotted quads: back to bytes for the comparison. */
const addressBytes = (a: string | Uint8Array) => (typeof a === 'string' ? Buffer.from(a.split('.').map(Number)) : Buffer.from(a));

function normalize(x: ReturnType<typeof decodeAddress>) {
  if (x.type === 'workload') return { ...x, workload: { ...x.workload, addresses: x.workload.addresses.map(addressBytes), services: Object.fromEntries(x.workload.services) } };
  if (x.type === 'service') return { ...x, service: { ...x.service, addresses: x.service.addresses.map((a) => ({ address: Buffer.from(a.address) })) } };
  return x;
}

describe('decodeAddress', () => {
  it('equals protobufjs decode + toObject on 300 random workloads and services', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const msg = seed % 3 === 0 ? { service: randomService(seed) } : { workload: randomWorkload(seed) };
      const bytes = codecs.address.encode(msg as never);
      expect(normalize(decodeAddress(bytes)), `seed ${seed}`).toEqual(viaProtobufjs(bytes));
    }
  });

  it('field values that repeat across resources (looked up by their bytes) decode like fresh ones', () => {
    const pool = ['ns-1', 'ns-2', 'ns-3', 'ü-ñ', 'x'.repeat(128), 'x'.repeat(129), 'y'.repeat(128), ''];
    for (let seed = 1; seed <= 200; seed++) {
      const g = gen(seed + 1000);
      const pick = () => pool[g.int(pool.length)]!;
      const w = { ...randomWorkload(seed), namespace: pick(), node: pick(), serviceAccount: pick(), trustDomain: pick(), canonicalName: pick(), canonicalRevision: pick() };
      const bytes = codecs.address.encode({ workload: w } as never);
      expect(normalize(decodeAddress(bytes)), `seed ${seed}`).toEqual(viaProtobufjs(bytes));
    }
  });

  it('a uid equal to the resource name is that very string; another uid is decoded; 4-byte addresses come formatted', () => {
    const w = { ...randomWorkload(11), uid: 'Kubernetes//Pod/ns-1/p-1', addresses: [Buffer.from([198, 18, 0, 7]), Buffer.alloc(16, 1), Buffer.from([1, 2, 3])] };
    const any = codecs.address.pack({ workload: w } as never);
    const name = ['Kubernetes//Pod/ns-1/', 'p-1'].join(''); // built at runtime: not the literal's string
    const same = decodeAddressOf(any, name);
    expect(same.type === 'workload' && Object.is(same.workload.uid, name)).toBe(true);
    const other = decodeAddressOf(any, 'Kubernetes//Pod/ns-1/p-2');
    expect(other.type === 'workload' && other.workload.uid).toBe('Kubernetes//Pod/ns-1/p-1');
    expect(other.type === 'workload' && other.workload.addresses[0]).toBe('198.18.0.7');
    expect(other.type === 'workload' && Buffer.from(other.workload.addresses[1] as Uint8Array)).toEqual(Buffer.alloc(16, 1));
    expect(other.type === 'workload' && Buffer.from(other.workload.addresses[2] as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
  });

  it('an empty Address has no member; truncated bytes throw', () => {
    expect(decodeAddress(new Uint8Array(0))).toEqual({ type: null });
    const bytes = codecs.address.encode({ workload: randomWorkload(7) } as never);
    expect(() => decodeAddress(bytes.subarray(0, bytes.length - 3))).toThrow();
  });
});

describe('decodeDeltaResponse', () => {
  it('equals protobufjs on the fields the client reads (resources with and without body, removals)', () => {
    const any = codecs.address.pack({ workload: randomWorkload(3) } as never);
    const msg = {
      systemVersionInfo: 'v9+partial',
      typeUrl: codecs.address.typeUrl,
      nonce: 'n1',
      removedResources: ['a', 'b'],
      controlPlane: { identifier: 'cp' },
      resources: [
        { name: 'r1', version: '1', resource: any, aliases: ['x'], ttl: { seconds: 3 } },
        { name: 'r2', version: '' },
      ],
    };
    const bytes = codecs.deltaDiscoveryResponse.encode(msg as never);
    const ref = codecs.deltaDiscoveryResponse.decode(bytes);
    const got = decodeDeltaResponse(bytes);
    expect(got.systemVersionInfo).toBe(ref.systemVersionInfo);
    expect(got.typeUrl).toBe(ref.typeUrl);
    expect(got.nonce).toBe(ref.nonce);
    expect(got.removedResources).toEqual(ref.removedResources);
    expect(got.controlPlane).toEqual({ identifier: 'cp' });
    expect(got.controlPlane).toEqual(ref.controlPlane);
    expect(decodeDeltaResponse(codecs.deltaDiscoveryResponse.encode({ typeUrl: 't', nonce: 'n' } as never)).controlPlane).toBeNull();
    expect(got.resources.map((r) => [r.name, r.version, r.resource?.type_url, r.resource && Buffer.from(r.resource.value).toString('hex')])).toEqual(
      ref.resources.map((r) => [r.name, r.version, r.resource?.type_url, r.resource && Buffer.from(r.resource.value).toString('hex')]),
    );
    expect(got.resources[1]!.resource).toBeNull();
  });

  it('resource bodies decoded in place equal the same bytes decoded on their own', () => {
    const resources = Array.from({ length: 30 }, (_, i) => ({
      name: `r${i}`,
      version: String(i),
      resource: codecs.address.pack((i % 3 === 0 ? { service: randomService(i) } : { workload: randomWorkload(i) }) as never),
    }));
    const bytes = codecs.deltaDiscoveryResponse.encode({ typeUrl: codecs.address.typeUrl, nonce: 'n', resources } as never);
    const got = decodeDeltaResponse(bytes).resources.map((r) => normalize(decodeAddressOf(r.resource!)));
    expect(got).toEqual(resources.map((r) => normalize(decodeAddress(r.resource.value))));
    expect(got.filter((a) => a.type !== null)).toHaveLength(30);
  });
});
