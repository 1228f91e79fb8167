// Cached directory reloads (per-file parse cache, per-document memo in buildSnapshot): every reload equals a load from scratch, errors included, and unchanged files keep their objects.
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir, type ConfigParseCache } from '../../../../control/config/config-dir';
import type { MeshSnapshot } from '../../../../core/model/types';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const pod = (name: string, ip: string, labels = '{app: web}', node = 'node1') =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: default, labels: ${labels}}\nspec: {nodeName: ${node}, serviceAccountName: web}\nstatus: {podIP: ${ip}}\n`;
const svc = (name: string, extra = '') =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec: {clusterIP: 10.96.0.${name.length}, selector: {app: web}, ports: [{port: 80${extra}}]}\n`;
const mesh = (td: string) =>
  `apiVersion: smesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: ${td}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\nstatus: {addresses: [{type: InternalIP, address: 198.18.0.1}]}\n`;

/** The result of loading `dir`, or the problems it was rejected for. */
function load(dir: string, cache?: ConfigParseCache): MeshSnapshot | readonly unknown[] {
  try {
    return loadConfigDir(dir, cache);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe('control: cached reloads of a config directory', () => {
  it("equal a load from scratch after each edit, and keep unchanged files' objects", () => {
    const dir = mkdtempSync(join(tmpdir(), 'smesh-files-incr-'));
    dirs.push(dir);
    writeFileSync(join(dir, '00-mesh.yaml'), mesh('a.example'));
    writeFileSync(join(dir, '10-pods.yaml'), [pod('p1', '198.18.1.1'), pod('p2', '198.18.1.2', '{app: api}')].join('---\n'));
    writeFileSync(join(dir, '20-svc.yaml'), svc('web'));
    const cache: ConfigParseCache = new Map();
    const edits: Array<() => void> = [
      () => writeFileSync(join(dir, '20-svc.yaml'), svc('web') + '---\n' + svc('other')),
      () => writeFileSync(join(dir, '10-pods.yaml'), [pod('p1', '198.18.1.1', '{app: api}'), pod('p2', '198.18.1.2', '{app: api}')].join('---\n')),
      () => writeFileSync(join(dir, '00-mesh.yaml'), mesh('b.example')), // every identity changes
      () => writeFileSync(join(dir, '20-svc.yaml'), svc('web', ', targetPort: http')), // a service with a problem
      () => writeFileSync(join(dir, '10-pods.yaml'), [pod('p1', '198.18.1.1'), pod('p2', '198.18.1.2', '{app: api}')].join('---\n')), // still rejected, same report
      () => writeFileSync(join(dir, '20-svc.yaml'), svc('web')),
      () => writeFileSync(join(dir, '30-dup.yaml'), pod('p1', '198.18.1.9')), // duplicate resource
      () => unlinkSync(join(dir, '30-dup.yaml')),
      () => writeFileSync(join(dir, '30-more.yaml'), pod('p3', '198.18.1.2')), // address already used
      () => writeFileSync(join(dir, '30-more.yaml'), pod('p3', '198.18.1.3', '{app: web, smesh.io/dataplane-mode: none}')),
      () => writeFileSync(join(dir, '40-ns.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {smesh.io/dataplane-mode: none}}\n'),
      () => unlinkSync(join(dir, '40-ns.yaml')),
    ];
    let previous = load(dir, cache);
    expect(previous).toEqual(load(dir));
    for (const [i, edit] of edits.entries()) {
      edit();
      const cached = load(dir, cache);
      expect(cached, `after edit ${i}`).toEqual(load(dir));
      const before = previous as MeshSnapshot;
      const after = cached as MeshSnapshot;
      // Only the service file changed: the pods are the very same objects; and the other way round.
      if (i === 0) expect(after.workloads.get('default/p1')).toBe(before.workloads.get('default/p1'));
      if (i === 1) expect(after.services.get('default/web')).toBe(before.services.get('default/web'));
      if (i === 2) expect((cached as MeshSnapshot).workloads.get('default/p1')!.identity).toBe('spiffe://b.example/ns/default/sa/web');
      if (i === 3 || i === 4) expect(cached as readonly unknown[]).toEqual([expect.objectContaining({ resource: 'Service default/web', field: 'spec.ports[0].targetPort' })]);
      previous = cached;
    }
  });
});
