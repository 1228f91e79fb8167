// deploy/*.yaml: every object valid against the Kubernetes object schemas, the image the one `make image` builds, the
// agent DaemonSet surging (new agent before the old one stops) and running with only the capabilities it needs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateObject } from '../../helpers/k8s-schema';

/** kubernetes-models: the Kubernetes OpenAPI object schemas (JSON Schema, ajv) by apiVersion and kind. */
async function modelOf(obj: Record<string, any>): Promise<{ validate(): void } | undefined> {
  const [group, version] = String(obj.apiVersion).includes('/') ? String(obj.apiVersion).split('/') : ['', String(obj.apiVersion)];
  const mod = (await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  const Model = mod[String(obj.kind)];
  return Model ? new Model(obj) : undefined;
}

const ROOT = path.resolve(__dirname, '../../..');
const DEPLOY = path.join(ROOT, 'deploy');
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;

interface Doc {
  readonly file: string;
  readonly obj: Record<string, any>;
}

/** Kubernetes reads manifests as YAML 1.1 (defaultMode: 0400 is octal there). */
function loadManifests(): Doc[] {
  const docs: Doc[] = [];
  for (const f of fs
    .readdirSync(DEPLOY)
    .filter((x) => x.endsWith('.yaml'))
    .sort()) {
    for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(DEPLOY, f), 'utf8'), { version: '1.1' })) {
      if (d.errors.length) throw new Error(`${f}: ${d.errors.map((e) => e.message).join('; ')}`);
      const obj = d.toJS();
      if (obj) docs.push({ file: f, obj });
    }
  }
  return docs;
}

function containersOf(obj: Record<string, any>): Array<Record<string, any>> {
  const spec = obj.spec?.template?.spec;
  return spec ? [...(spec.initContainers ?? []), ...(spec.containers ?? [])] : [];
}

const docs = loadManifests();
const agent = docs.find((d) => d.obj.kind === 'DaemonSet' && d.obj.metadata?.name === 'smesh-agent')!.obj;

describe('deploy manifests', () => {
  it('parse into the expected objects', () => {
    expect(docs.map((d) => `${d.obj.kind}/${d.obj.metadata?.name}`)).toEqual(
      expect.arrayContaining(['Namespace/smesh-system', 'DaemonSet/smesh-agent', 'Deployment/smesh-control', 'Service/smesh-control']),
    );
  });

  it.each(docs.map((d) => [`${d.file} ${d.obj.kind}/${d.obj.metadata?.name}`, d] as const))('%s is valid against the Kubernetes schema', (where, d) => {
    expect(validateObject(d.obj, where)).toEqual([]);
  });

  it.each(docs.map((d) => [`${d.file} ${d.obj.kind}/${d.obj.metadata?.name}`, d] as const))('%s is valid against the kubernetes-models schema', async (_where, d) => {
    const model = await modelOf(d.obj);
    expect(model, `kubernetes-models has no ${d.obj.apiVersion} ${d.obj.kind}`).toBeDefined();
    expect(() => model!.validate()).not.toThrow();
  });

  it('kubernetes-models refuses a mistyped and a missing field', async () => {
    const bad = structuredClone(agent);
    bad.spec.template.spec.containers[0].ports = [{ containerPort: '15008' }];
    await expect((async () => (await modelOf(bad))!.validate())()).rejects.toThrow(/containerPort must be integer/);
    const missing = structuredClone(agent);
    delete missing.spec.selector;
    await expect((async () => (await modelOf(missing))!.validate())()).rejects.toThrow(/selector/);
  });

  it('the validator catches misplaced, mistyped and missing fields', () => {
    const bad = structuredClone(agent);
    bad.spec.updateStrategy.rollingUpdate.maxSurgee = 1;
    bad.spec.template.spec.containers[0].ports = [{ containerPort: '15008' }];
    delete bad.spec.selector;
    const problems = validateObject(bad, 'bad');
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('rollingUpdate.maxSurgee: unknown field'),
        expect.stringContaining('ports[0].containerPort: expected a number'),
        expect.stringContaining('spec.selector: required by V1DaemonSetSpec'),
      ]),
    );
  });

  it('every container runs the image `make image` builds (smesh/agent:<package version>)', () => {
    const built = execFileSync('make', ['-s', '--no-print-directory', 'image-name'], { cwd: ROOT, encoding: 'utf8' }).trim();
    expect(built).toBe(`localhost/smesh/agent:${VERSION}`);
    const images = docs.flatMap((d) => containersOf(d.obj).map((c) => c.image));
    expect(images.length).toBeGreaterThanOrEqual(2);
    for (const image of images) expect(`localhost/${image}`).toBe(built);
    // The image's entry point is bin/smesh: manifests give arguments, not a command.
    for (const c of docs.flatMap((d) => containersOf(d.obj))) expect(c.command).toBeUndefined();
    expect(fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8')).toMatch(/^ENTRYPOINT \["\/opt\/smesh\/bin\/smesh"\]$/m);
  });

  it('the agent DaemonSet surges: a new agent is ready on a node before the old one is stopped', () => {
    expect(agent.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    // A host-network containerPort is a hostPort, which would keep the surge pod off a node its old agent is on.
    expect(agent.spec.template.spec.hostNetwork).toBe(true);
    for (const c of containersOf(agent)) expect(c.ports ?? []).toEqual([]);
  });

  it('the agent container runs `smesh supervise` (SO_REUSEPORT sockets the surge pod can bind too) and the grace period outlasts the drain', () => {
    const [c] = containersOf(agent);
    expect(c.args[0]).toBe('supervise');
    const drain = c.args.find((a: string) => a.startsWith('--drain-seconds='));
    const drainSeconds = drain ? Number(drain.split('=')[1]) : 30; // the agent's default
    expect(Number.isInteger(drainSeconds)).toBe(true);
    expect(agent.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(drainSeconds);
  });

  it('the agent has exactly the capabilities it needs; the control plane runs as the image user with none', () => {
    const [c] = containersOf(agent);
    expect(c.securityContext).toMatchObject({ runAsUser: 0, privileged: false, allowPrivilegeEscalation: false });
    expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
    expect([...c.securityContext.capabilities.add].sort()).toEqual(['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_ADMIN', 'SYS_PTRACE', 'SYS_RESOURCE']);
    const control = docs.find((d) => d.obj.kind === 'Deployment' && d.obj.metadata?.name === 'smesh-control')!.obj;
    const [cc] = containersOf(control);
    expect(cc.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1337, capabilities: { drop: ['ALL'] } });
    expect(fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8')).toMatch(/^USER 1337:1337$/m);
  });
});
