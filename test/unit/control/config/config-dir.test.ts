// Config directory loading: valid resources become a snapshot; every bad field is reported with file, resource and field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir } from '../../../../control/config/config-dir';

const dirs: string[] = [];
function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'smesh-test-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const GOOD = `
apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: example.org}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}, annotations: {smesh.io/netns: /run/netns/x}}
spec: {nodeName: node1, serviceAccountName: web-sa}
status: {podIP: 198.18.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: batch-1, namespace: shop, labels: {app: batch, smesh.io/dataplane-mode: none}}
spec: {nodeName: node1}
status: {podIP: 198.18.1.11}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 198.19.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}, {port: 53, protocol: UDP}]}
`;

function problemsOf(files: Record<string, string>): ConfigError['problems'] {
  try {
    loadConfigDir(configDir(files));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfigDir', () => {
  it('builds workloads, services, nodes and the trust domain', () => {
    const s = loadConfigDir(configDir({ 'mesh.yaml': GOOD }));
    expect(s.trustDomain).toBe('example.org');
    expect(s.nodes.get('node1')?.address).toBe('198.18.0.1');
    const web = s.workloads.get('shop/web-1')!;
    expect(web.identity).toBe('spiffe://example.org/ns/shop/sa/web-sa');
    expect(web.netns).toBe('/run/netns/x');
    expect(web.workloadName).toBe('web');
    expect(web.meshed).toBe(true);
    expect(s.workloads.get('shop/batch-1')!.meshed).toBe(false);
    expect(s.workloads.get('shop/batch-1')!.serviceAccount).toBe('default');
    const svc = s.services.get('shop/web')!;
    expect(svc.vips).toEqual(['198.19.0.10']);
    expect(svc.ports).toEqual([{ name: 'http', port: 80, targetPort: 8080, appProtocol: undefined }]);
  });

  it('names the file, resource and field of a bad port', () => {
    const p = problemsOf({ 'a.yaml': GOOD, 'b.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\nspec: {clusterIP: 198.19.0.11, ports: [{port: abc}]}\n' });
    expect(p).toHaveLength(1);
    expect(p[0].file).toMatch(/b\.yaml$/);
    expect(p[0].resource).toBe('Service shop/bad');
    expect(p[0].field).toBe('spec.ports[0].port');
    expect(p[0].message).toMatch(/port number/);
  });

  it('rejects unknown fields instead of dropping them', () => {
    const p = problemsOf({ 'a.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: n, serviceAcount: x}\nstatus: {podIP: 198.18.1.1}\n' });
    expect(p.map((x) => x.field)).toEqual(['spec.serviceAcount']);
    expect(p[0].message).toBe('unknown field');
  });

  it('reports every problem at once: bad IP, unknown kind, YAML syntax, duplicate, missing field', () => {
    const p = problemsOf({
      'a.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: n}\nstatus: {podIP: 999.1.1.1}\n---\napiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n',
      'b.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: s\n',
      'c.yaml':
        'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec: {nodeName: n}\n',
    });
    const summary = p.map((x) => `${x.resource}|${x.field}`);
    expect(summary).toContain('Pod p|status.podIP');
    expect(summary).toContain('Gadget g|kind');
    expect(summary.some((s) => s.endsWith('|(yaml)'))).toBe(true);
    expect(summary).toContain('Namespace a|metadata.name');
    expect(summary).toContain('Pod default/q|status.podIP');
  });

  it('rejects two pods with one address, and a wrong apiVersion', () => {
    const p = problemsOf({
      'a.yaml':
        'apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: n}\nstatus: {podIP: 198.18.1.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {nodeName: n}\nstatus: {podIP: 198.18.1.1}\n---\napiVersion: v2\nkind: Namespace\nmetadata: {name: x}\n',
    });
    expect(p.map((x) => `${x.resource}|${x.field}`).sort()).toEqual(['Namespace x|apiVersion', 'Pod default/b|status.podIP']);
  });

  it('names an unreadable directory', () => {
    expect(() => loadConfigDir('/nonexistent/smesh-test-dir')).toThrow(/\/nonexistent\/smesh-test-dir/);
  });
});

describe('MeshConfig spec.trustDomainAliases', () => {
  const mesh = (spec: string) => `apiVersion: smesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: ${spec}\n`;

  it('become the snapshot’s trustDomainAliases, in order; absent or empty means none', () => {
    expect(loadConfigDir(configDir({ 'm.yaml': mesh('{trustDomain: new.example, trustDomainAliases: [old.example, legacy_td.local]}') })).trustDomainAliases).toEqual([
      'old.example',
      'legacy_td.local',
    ]);
    expect(loadConfigDir(configDir({ 'm.yaml': mesh('{trustDomain: new.example, trustDomainAliases: []}') })).trustDomainAliases).toBeUndefined();
    expect(loadConfigDir(configDir({ 'm.yaml': mesh('{trustDomain: new.example}') })).trustDomainAliases).toBeUndefined();
    // Without spec.trustDomain the mesh's is cluster.local, which is then no alias.
    expect(loadConfigDir(configDir({ 'm.yaml': mesh('{trustDomainAliases: [old.example]}') })).trustDomainAliases).toEqual(['old.example']);
  });

  it('rejects a malformed entry, the trust domain itself, a duplicate and a non-list, naming file, resource and field', () => {
    const p = problemsOf({ 'm.yaml': mesh('{trustDomain: new.example, trustDomainAliases: [old.example, Old.Example, "a/b", new.example, old.example, ""]}') });
    expect(p.map((x) => `${x.file.split('/').pop()}|${x.resource}|${x.field}`)).toEqual([
      'm.yaml|MeshConfig mesh|spec.trustDomainAliases[1]',
      'm.yaml|MeshConfig mesh|spec.trustDomainAliases[2]',
      'm.yaml|MeshConfig mesh|spec.trustDomainAliases[3]',
      'm.yaml|MeshConfig mesh|spec.trustDomainAliases[4]',
      'm.yaml|MeshConfig mesh|spec.trustDomainAliases[5]',
    ]);
    expect(p[0]!.message).toBe(`expected a trust domain of lowercase letters, digits, '.', '-', '_', got "Old.Example"`);
    expect(p[2]!.message).toBe(`"new.example" is the mesh's trust domain (spec.trustDomain); an alias names another one`);
    expect(p[3]!.message).toBe('"old.example" is listed twice (first at spec.trustDomainAliases[0])');
    expect(p[4]!.message).toContain('got ""');
    const notList = problemsOf({ 'm.yaml': mesh('{trustDomainAliases: old.example}') });
    expect(notList.map((x) => `${x.resource}|${x.field}`)).toEqual(['MeshConfig mesh|spec.trustDomainAliases']);
    const notString = problemsOf({ 'm.yaml': mesh('{trustDomainAliases: [old.example, 7]}') });
    expect(notString.map((x) => `${x.resource}|${x.field}`)).toEqual(['MeshConfig mesh|spec.trustDomainAliases[1]']);
  });
});
