// File source: a change on disk reaches the registry within 1 s; an invalid change is reported (file/resource/field) and the previous snapshot stays.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../../control/config/config-dir';
import type { MeshSnapshot } from '../../../../core/model/types';
import { FileSource } from '../../../../control/sources/files';
import { cleanupDirs, meshDirs, podYaml, WORKLOADS_YAML } from '../../fixtures/control';
import { waitUntil } from '../../../helpers/wait';

describe('control: file source', () => {
  const sources: FileSource[] = [];
  afterEach(async () => {
    for (const s of sources.splice(0)) await s.close();
    cleanupDirs();
  });

  it('delivers an edit within 1 s and keeps the previous snapshot on an invalid edit', async () => {
    const { configDir } = meshDirs();
    const snapshots: MeshSnapshot[] = [];
    const errors: Error[] = [];
    // Default timings (the ones `smesh control` uses).
    const source = new FileSource({ dir: configDir });
    sources.push(source);
    const initial = await source.start({ onSnapshot: (s) => snapshots.push(s), onError: (e) => errors.push(e) });
    expect(initial.workloads.size).toBe(2);

    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML + '---\n' + podYaml('web-2', 'node1', '198.18.1.11', 'web'));
    const t0 = Date.now();
    await waitUntil(() => snapshots.length > 0, 1000, 'snapshots.length > 0', 10);
    const took = Date.now() - t0;
    expect(took).toBeLessThan(1000);
    expect(snapshots.at(-1)!.workloads.has('default/web-2')).toBe(true);

    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML.replace('serviceAccountName: web', 'serviceAccountName: 42'));
    await waitUntil(() => errors.length > 0, 1000, 'errors.length > 0', 10);
    const err = errors[0] as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.problems[0]).toMatchObject({ file: join(configDir, 'workloads.yaml'), resource: 'Pod default/web-1', field: 'spec.serviceAccountName' });
    expect(snapshots).toHaveLength(1); // nothing published for the bad edit

    // A new file is noticed too.
    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML);
    writeFileSync(join(configDir, 'extra.yml'), podYaml('extra-1', 'node2', '198.18.2.20', 'x'));
    await waitUntil(() => snapshots.at(-1)!.workloads.has('default/extra-1'), 1000, "snapshots.at(-1)!.workloads.has('default/extra-1')", 10);
  });

  it('picks up changes through the periodic rescan when fs events are missed', async () => {
    const { configDir } = meshDirs();
    const snapshots: MeshSnapshot[] = [];
    const source = new FileSource({ dir: configDir, rescanMs: 100 });
    sources.push(source);
    await source.start({ onSnapshot: (s) => snapshots.push(s) });
    // Simulate a file system without inotify: drop the watcher.
    (source as unknown as { watcher?: { close(): void } }).watcher?.close();
    writeFileSync(join(configDir, 'workloads.yaml'), WORKLOADS_YAML + '---\n' + podYaml('web-9', 'node1', '198.18.1.19', 'web'));
    await waitUntil(() => snapshots.some((s) => s.workloads.has('default/web-9')), 1000, "snapshots.some((s) => s.workloads.has('default/web-9'))", 10);
  });

  it('fails start() loudly on an invalid initial configuration', async () => {
    const { configDir } = meshDirs('kind: Bogus\n');
    const source = new FileSource({ dir: configDir });
    sources.push(source);
    await expect(source.start({ onSnapshot: () => undefined })).rejects.toBeInstanceOf(ConfigError);
  });
});
