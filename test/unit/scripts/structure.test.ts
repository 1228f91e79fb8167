// The source tree's structure: no import cycle between files and no import against the directory layering (cli → agent, control → core → proto), as scripts/check-cycles.ts reports it.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

describe('source structure', () => {
  it('has no import cycle and no layering violation', () => {
    const root = path.resolve(__dirname, '../../..');
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), path.join(root, 'scripts/check-cycles.ts')], { encoding: 'utf8', cwd: root });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/0 import cycle\(s\), 0 layering violation\(s\)/);
  });
});
