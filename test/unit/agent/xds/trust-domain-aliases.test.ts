// MeshConfig trust-domain aliases from the control plane to the agent: the Kubernetes source reads them as the file source does, smesh control encodes MeshConfig.trust_domain_aliases (3), the agent decodes them into its snapshot (full and incremental builds), and the agent combines them with its flag.
import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseResource, type AcceptedMeshConfig } from '../../../../agent/xds/convert';
import { IncrementalSnapshot } from '../../../../agent/xds/incremental';
import { unionTrustDomainAliases } from '../../../../core/identity/spiffe';
import { policyInputsChanged } from '../../../../agent/proxy/connection-tracker';
import { formatProblem, type ConfigProblem } from '../../../../control/config/config-dir';
import { buildResourceSets } from '../../../../control/xds-resources';
import { snapshotFromObjects } from '../../../../control/sources/kubernetes';
import type { MeshSnapshot } from '../../../../core/model/types';
import { MESH_CONFIG_NAME, XDS_TYPE_URL } from '../../../../core/xds/contract';

const snapshot = (trustDomainAliases?: readonly string[]): MeshSnapshot => ({
  trustDomain: 'new.example',
  ...(trustDomainAliases ? { trustDomainAliases } : {}),
  nodes: new Map(),
  workloads: new Map(),
  services: new Map(),
  namespaces: new Map(),
});

/** What smesh control sends as the MeshConfig resource for `s`. */
function sent(s: MeshSnapshot) {
  return buildResourceSets(s, { trustAnchors: [] }).shared.get(XDS_TYPE_URL.meshConfig)!.get(MESH_CONFIG_NAME)!;
}

/** The agent's acceptance of it. */
function received(s: MeshSnapshot): AcceptedMeshConfig {
  const e = sent(s);
  const r = parseResource(XDS_TYPE_URL.meshConfig, e.name, e.resource);
  if (!r.ok) throw new Error(r.error);
  return r.value as AcceptedMeshConfig;
}

describe('MeshConfig.trust_domain_aliases over xDS (smesh control → agent)', () => {
  it('round-trips the list, in order, into the agent’s snapshot (full and incremental builds agree)', () => {
    const m = received(snapshot(['old.example', 'legacy.local']));
    expect(m).toMatchObject({ trustDomain: 'new.example', trustDomainAliases: ['old.example', 'legacy.local'] });
    const full = buildSnapshot({ addresses: new Map(), nodes: new Map(), localWorkloads: new Map(), meshConfig: m }).snapshot;
    expect(full.trustDomainAliases).toEqual(['old.example', 'legacy.local']);
    const inc = new IncrementalSnapshot();
    inc.set(m);
    const first = inc.build().snapshot;
    expect(first.trustDomain).toBe('new.example');
    expect(first.trustDomainAliases).toEqual(['old.example', 'legacy.local']);
    // Unchanged MeshConfig: the same list object (the agent recomputes its aliases only when this changes).
    expect(inc.build().snapshot.trustDomainAliases).toBe(first.trustDomainAliases);
    inc.remove(XDS_TYPE_URL.meshConfig, MESH_CONFIG_NAME);
    expect(inc.build().snapshot.trustDomainAliases).toBeUndefined();
  });

  it('no aliases: an empty field on the wire, none in the snapshot', () => {
    const m = received(snapshot());
    expect(m.trustDomainAliases).toEqual([]);
    expect('trustDomainAliases' in buildSnapshot({ addresses: new Map(), nodes: new Map(), localWorkloads: new Map(), meshConfig: m }).snapshot).toBe(false);
  });

  it('a change of the aliases is a new MeshConfig version (so it is pushed)', () => {
    const versions = [snapshot(), snapshot(['old.example']), snapshot(['old.example', 'legacy.local'])].map((s) => sent(s).version);
    expect(new Set(versions).size).toBe(3);
    expect(sent(snapshot(['old.example'])).version).toBe(versions[1]);
  });
});

describe('MeshConfig trustDomainAliases from Kubernetes', () => {
  const objs = (spec: Record<string, unknown>) => ({
    pods: [],
    services: [],
    endpointslices: [],
    namespaces: [],
    nodes: [],
    meshconfigs: [{ apiVersion: 'smesh.io/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec }],
  });

  it('are read as in files; a bad entry is reported by resource and field and left out, the rest stays in force', () => {
    let problems: ConfigProblem[] = [];
    const s = snapshotFromObjects(objs({ trustDomain: 'new.example', trustDomainAliases: ['old.example', 'BAD', 'legacy.local'] }), undefined, (p) => (problems = p));
    expect(s.trustDomainAliases).toEqual(['old.example', 'legacy.local']);
    expect(problems.map(formatProblem)).toEqual([expect.stringMatching(/^kubernetes: MeshConfig mesh: field spec\.trustDomainAliases\[1\]: expected a trust domain/)]);
  });

  it('an alias equal to the control plane’s --trust-domain is reported and left out', () => {
    let problems: ConfigProblem[] = [];
    const s = snapshotFromObjects(objs({ trustDomainAliases: ['old.example', 'flag.example'] }), 'flag.example', (p) => (problems = p));
    expect(s.trustDomain).toBe('flag.example');
    expect(s.trustDomainAliases).toEqual(['old.example']);
    expect(problems.map(formatProblem)).toEqual([expect.stringContaining(`field spec.trustDomainAliases[1]: "flag.example" is the mesh's trust domain`)]);
  });
});

describe('the agent’s aliases in force', () => {
  it('are the flag’s and the MeshConfig’s, without duplicates; the flag’s list itself when the MeshConfig adds none', () => {
    const flag = ['old.example'];
    expect(unionTrustDomainAliases(flag, undefined)).toBe(flag);
    expect(unionTrustDomainAliases(flag, [])).toBe(flag);
    expect(unionTrustDomainAliases(flag, ['old.example'])).toBe(flag);
    expect(unionTrustDomainAliases(flag, ['legacy.local', 'old.example', 'legacy.local'])).toEqual(['old.example', 'legacy.local']);
    expect(unionTrustDomainAliases([], ['a.example'])).toEqual(['a.example']);
  });

  it('a change of the MeshConfig aliases re-decides open connections (principals are expanded across them)', () => {
    const base = snapshot(['old.example']);
    expect(policyInputsChanged(base, { ...base, trustDomainAliases: ['old.example'] })).toBe(false);
    expect(policyInputsChanged(base, { ...base, trustDomainAliases: ['old.example', 'legacy.local'] })).toBe(true);
    const { trustDomainAliases: _dropped, ...without } = base;
    expect(policyInputsChanged(base, without)).toBe(true);
  });
});
