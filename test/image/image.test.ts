// The image `make image` builds (deploy/Dockerfile): `smesh --version` and `smesh check` on the demo's mesh config run
// inside it without a network, as the non-root image user, with the native addon loadable and no build tools left.
// Builds the image first when the store has none (.ci/run builds it before `make test`). Needs root (buildah).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const IMAGE = `localhost/smesh/agent:${VERSION}`;
// Same store and runtime as mk/image.mk.
const STORE = ['--root', path.join(ROOT, 'build/image/storage'), '--runroot', path.join(ROOT, 'build/image/run'), '--storage-driver', 'overlay'];
const CONTAINER_PREFIX = 'smesh-test-image-';

const notRoot = process.getuid?.() !== 0 ? 'needs root (buildah with its store under build/image)' : null;

function buildah(args: string[], timeout = 120_000): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('buildah', [...STORE, ...args], { encoding: 'utf8', timeout });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Containers of this test (and of a killed earlier run), removed by name. */
function removeTestContainers(): void {
  const list = buildah(['containers', '--format', '{{.ContainerName}}']);
  for (const name of list.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(CONTAINER_PREFIX)))
    buildah(['rm', name]);
}

/** The demo's mesh (scripts/demo.ts): two nodes, frontend/web/cache pods, services web and cache. */
const DEMO_CONFIG = `apiVersion: smesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: cluster.local}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node2}
status: {addresses: [{type: InternalIP, address: 198.18.0.2}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: default, labels: {app: frontend}}
spec: {nodeName: node1, serviceAccountName: frontend}
status: {podIP: 198.18.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {nodeName: node2, serviceAccountName: web}
status: {podIP: 198.18.2.10}
---
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: default, labels: {app: cache}}
spec: {nodeName: node1, serviceAccountName: cache}
status: {podIP: 198.18.1.11}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 198.19.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}, {name: upload, port: 9001, targetPort: 9001, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: default}
spec: {clusterIP: 198.19.0.11, selector: {app: cache}, ports: [{name: tcp-cache, port: 6379, targetPort: 6379, protocol: TCP}]}
`;

describe.skipIf(notRoot !== null)('smesh image', () => {
  let container = '';
  let configDir = '';

  beforeAll(() => {
    removeTestContainers();
    if (buildah(['inspect', '--type', 'image', IMAGE]).status !== 0) {
      // ~5 min from nothing (Debian base, build packages, npm ci); seconds when only sources changed.
      execFileSync('make', ['image'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 20 * 60_000 });
    }
    configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smesh-test-image-config-'));
    fs.chmodSync(configDir, 0o755);
    fs.writeFileSync(path.join(configDir, 'mesh.yaml'), DEMO_CONFIG, { mode: 0o644 });
    const name = `${CONTAINER_PREFIX}${process.pid}`;
    const from = buildah(['from', '--name', name, '--pull=never', IMAGE]);
    if (from.status !== 0) throw new Error(`buildah from ${IMAGE} failed: ${from.stderr}`);
    container = name;
  }, 25 * 60_000);

  afterAll(() => {
    if (container) buildah(['rm', container]);
    if (configDir) fs.rmSync(configDir, { recursive: true, force: true });
  });

  /** A command in the container: no network, the demo config read-only at /config. */
  function run(cmd: string[]): { status: number; stdout: string; stderr: string } {
    return buildah(['run', '--runtime', 'runc', '--network', 'none', '--volume', `${configDir}:/config:ro`, container, '--', ...cmd]);
  }

  it('`smesh --version` prints the package version', () => {
    const r = run(['smesh', '--version']);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ status: 0, stdout: `${VERSION}\n` });
  });

  it('`smesh check` validates the demo mesh config', () => {
    const r = run(['smesh', 'check', '/config']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('/config: ok (2 nodes, 3 workloads, 2 services, trust domain cluster.local)\n');
    fs.writeFileSync(path.join(configDir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: default}\nspec: {clusterIP: 198.19.0.12, ports: [{port: abc}]}\n', {
      mode: 0o644,
    });
    try {
      const bad = run(['smesh', 'check', '/config']);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain('broken.yaml');
    } finally {
      fs.rmSync(path.join(configDir, 'broken.yaml'));
    }
  });

  it('runs as uid 1337 with this machine’s node, loads the native addon, and carries no build tools', () => {
    const r = run(['node', '-e', `const n=require('/opt/smesh/build/native/Release/smesh_native.node');` + `console.log(JSON.stringify({uid:process.getuid(),node:process.version,addon:typeof n}))`]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ uid: 1337, node: process.version, addon: 'object' });
    const tools = run(['sh', '-c', 'for t in clang gcc g++ cmake make npm bpftool; do command -v $t; done; true']);
    expect(tools.stdout).toBe('');
  });

  it('has bin/smesh as entry point and the image user in its config', () => {
    const r = buildah(['inspect', '--type', 'image', IMAGE]);
    expect(r.status, r.stderr).toBe(0);
    const cfg = JSON.parse(r.stdout).OCIv1.config;
    expect(cfg.Entrypoint).toEqual(['/opt/smesh/bin/smesh']);
    expect(cfg.User).toBe('1337:1337');
    expect(cfg.WorkingDir).toBe('/opt/smesh');
  });
});

if (notRoot) describe('smesh image', () => it.skip(notRoot, () => undefined));
