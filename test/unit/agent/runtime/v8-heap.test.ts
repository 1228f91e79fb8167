// The agent's young-generation cap (agent/runtime/v8-heap.ts), measured in a fresh node process: V8 flags are per isolate.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const MODULE = path.resolve(__dirname, '../../../../agent/runtime/v8-heap.ts');

/** Runs `body` in a child node (tsx) after applyHeapTuning(cap); returns what it prints as JSON. */
function run(capMiB: number, body: string): Record<string, unknown> {
  const script = `
    const h = require(${JSON.stringify(MODULE)});
    const v8 = require('node:v8');
    const newMiB = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
    const guard = h.applyHeapTuning({ heapGrowingPercent: 20, maxSemiSpaceMiB: ${capMiB} });
    const keep = [];
    const burst = (n) => { for (let i = 0; i < n; i++) keep.push({ i, s: 'x' + i, a: [i] }); };
    ${body}
  `;
  const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

describe('young generation cap', () => {
  it('stays at its initial size through a burst before the first check (module loading)', () => {
    const r = run(8, `const before = newMiB(); burst(400000); console.log(JSON.stringify({ before, after: newMiB(), state: guard.state() }));`);
    expect(r.after).toBeLessThanOrEqual(2);
    expect(r.state).toMatchObject({ armed: false, frozen: false });
  });

  for (const cap of [2, 4, 8]) {
    it(`grows to the ${cap} MiB cap once checks start, never beyond, and is frozen there`, () => {
      const r = run(
        cap,
        `let i = 0; const sizes = [];
         const step = () => { guard.check(); sizes.push(newMiB()); burst(3000); if (++i < 300) setImmediate(step); else console.log(JSON.stringify({ sizes: [...new Set(sizes)], state: guard.state() })); };
         step();`,
      );
      const sizes = r.sizes as number[];
      expect(Math.max(...sizes)).toBe(2 * cap); // new_space counts both semi-spaces
      expect(r.state).toMatchObject({ armed: true, frozen: true, newSpaceMiB: 2 * cap });
    });
  }

  it('without the launcher (no applyHeapTuning) the guard is a no-op', async () => {
    const { heapGuard, NO_HEAP_GUARD } = await import('../../../../agent/runtime/v8-heap');
    expect(heapGuard()).toBe(NO_HEAP_GUARD);
    expect(() => heapGuard().check()).not.toThrow();
  });
});
