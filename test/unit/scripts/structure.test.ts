// The source tree's structure: no import cycle between files and no import against the directory layering (cli → agent, control → core → proto), as scripts/check-cycles.ts reports it; the unit test tree mirrors the source tree, as scripts/check-test-tree.ts reports it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '../../..');
const tsx = (script: string, ...args: string[]) => spawnSync(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), path.join(root, script), ...args], { encoding: 'utf8', cwd: root });

describe('source structure', () => {
  it('has no import cycle and no layering violation', () => {
    const r = tsx('scripts/check-cycles.ts');
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/0 import cycle\(s\), 0 layering violation\(s\)/);
  });

  it('every unit test sits in test/unit/<dir>/ for a source directory <dir>', () => {
    const r = tsx('scripts/check-test-tree.ts');
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/\d+ unit test file\(s\), 0 outside the source tree's mirror/);
  });

  it('the mirror check names a test at the top of test/unit, under a directory the sources lack, and under a non-source directory', () => {
    const tree = mkdtempSync(path.join(tmpdir(), 'smesh-test-tree-'));
    try {
      const put = (file: string) => {
        mkdirSync(path.dirname(path.join(tree, file)), { recursive: true });
        writeFileSync(path.join(tree, file), '');
      };
      put('agent/proxy/outbound.ts');
      put('dist/agent/main.js');
      put('test/unit/agent/proxy/outbound.test.ts');
      put('test/unit/fixtures/proxy.ts');
      put('test/unit/top.test.ts');
      put('test/unit/nowhere/rate-limit.test.ts');
      put('test/unit/dist/agent/main.test.ts');
      const r = tsx('scripts/check-test-tree.ts', tree);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stdout).toContain('test/unit/top.test.ts: sits at the top of test/unit');
      expect(r.stdout).toContain('test/unit/nowhere/rate-limit.test.ts: there is no source directory nowhere/');
      expect(r.stdout).toContain('test/unit/dist/agent/main.test.ts: dist/ is not a source directory');
      expect(r.stdout).not.toContain('outbound.test.ts');
      expect(r.stdout).toMatch(/4 unit test file\(s\), 3 outside the source tree's mirror/);
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});
