// `smesh check DIR`: every problem printed with file, resource and field and a non-zero exit code; a valid directory prints ok.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../../cli/main';

const CLI = resolve(__dirname, '../../../dist/cli/main.js');

const GOOD = `apiVersion: smesh.io/v1alpha1
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
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 198.19.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}
`;

/** Three independent mistakes in two files: each must be reported, not just the first. */
const BAD_SERVICE = `apiVersion: v1
kind: Service
metadata: {name: broken-svc, namespace: shop}
spec: {clusterIP: 198.19.0.11, selector: {app: web}, ports: [{name: http, port: abc, targetPort: 8080, protocol: TCP}]}
`;
const BAD_PODS = `apiVersion: v1
kind: Pod
metadata: {name: bad-ip, namespace: shop, labels: {app: web}}
spec: {nodeName: node1, serviceAccountName: web-sa}
status: {podIP: 300.1.2.3}
---
apiVersion: v1
kind: Pod
metadata: {name: typo, namespace: shop, labels: {app: web}}
spec: {nodeName: node1, serviceAccountNmae: web-sa}
status: {podIP: 198.18.1.12}
`;

const dirs: string[] = [];
function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'smesh-test-cli-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Runs main(argv) in-process with stdout/stderr captured and process.exitCode restored afterwards. */
async function runMain(argv: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  let stdout = '';
  let stderr = '';
  const saved = process.exitCode;
  process.exitCode = undefined;
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write);
  try {
    await main(argv);
    return { stdout, stderr, exitCode: Number(process.exitCode ?? 0) };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = saved;
  }
}

describe('smesh check DIR', () => {
  beforeEach(() => vi.restoreAllMocks());
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('prints ok with counts for a valid directory and exits 0', async () => {
    const dir = configDir({ 'mesh.yaml': GOOD });
    const r = await runMain(['check', dir]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`${dir}: ok`);
    expect(r.stdout).toMatch(/1 nodes, 1 workloads, 1 services, trust domain example\.org/);
  });

  it('prints every problem with file, resource and field, and exits non-zero', async () => {
    const dir = configDir({ 'mesh.yaml': GOOD, 'broken-service.yaml': BAD_SERVICE, 'pods.yaml': BAD_PODS });
    const r = await runMain(['check', dir]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout, 'nothing may claim ok').not.toContain(': ok');
    const lines = r.stderr.trim().split('\n');
    // One line per problem, then the summary.
    expect(lines.at(-1)).toMatch(new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: [3-9] problem\\(s\\)`));
    const problem = (file: string, resource: string, field: RegExp) => lines.find((l) => l.includes(file) && l.includes(resource) && field.test(l));
    expect(problem('broken-service.yaml', 'broken-svc', /field [^:]*port/), r.stderr).toBeDefined();
    expect(problem('pods.yaml', 'bad-ip', /field [^:]*podIP/), r.stderr).toBeDefined();
    expect(problem('pods.yaml', 'typo', /field [^:]*serviceAccountNmae/), r.stderr).toBeDefined();
    // The valid file is not blamed.
    expect(lines.filter((l) => l.includes('mesh.yaml'))).toEqual([]);
  });

  it('reports a YAML syntax error with the file name', async () => {
    const dir = configDir({ 'mesh.yaml': GOOD, 'syntax.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n' });
    const r = await runMain(['check', dir]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('syntax.yaml');
  });

  it('reports a missing directory and a missing argument', async () => {
    const missing = join(tmpdir(), 'smesh-test-cli-does-not-exist');
    const r = await runMain(['check', missing]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(missing);
    const usage = await runMain(['check']);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toMatch(/usage: smesh check DIR/);
  });

  it('the built CLI exits with status 1 on problems and 0 when valid (real process exit code; `make test-unit` builds it)', () => {
    expect(existsSync(CLI), `${CLI} is missing: build first (make ts)`).toBe(true);
    const bad = configDir({ 'mesh.yaml': GOOD, 'broken-service.yaml': BAD_SERVICE });
    const r = spawnSync(process.execPath, [CLI, 'check', bad], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/broken-service\.yaml.*broken-svc.*field [^:]*port/);
    const good = configDir({ 'mesh.yaml': GOOD });
    const ok = spawnSync(process.execPath, [CLI, 'check', good], { encoding: 'utf8', timeout: 30_000 });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(': ok');
  });
});
