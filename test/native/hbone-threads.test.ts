// The native HBONE engine's threads as an operator sees them: one named smesh-hbone-N per --workers, running at the --worker-nice value (raised here, which needs no privilege), started by the first call that needs the engine (hboneChargeLimits).
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hboneEngine } from '../../agent/native/hbone';
import type { HboneEngine } from '../../agent/native/hbone-types';
import { useAddonPath } from '../../agent/native/raw';
import { pollUntil } from '../helpers/logs';

if (process.env.SMESH_NATIVE_ADDON) useAddonPath(process.env.SMESH_NATIVE_ADDON);

const engine: HboneEngine | undefined = hboneEngine();

/** [comm, nice] of this process's threads. */
function threads(): Array<{ comm: string; nice: number }> {
  const out: Array<{ comm: string; nice: number }> = [];
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // Fields after the comm: state is field 3; nice is field 19.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ comm, nice: Number(rest[16]) });
    } catch {
      // thread gone
    }
  }
  return out;
}

(engine?.chargeLimits ? describe : describe.skip)('native HBONE engine threads', () => {
  it('runs --workers threads named smesh-hbone-N at the --worker-nice value; the JS thread keeps its own', async () => {
    const e = engine!;
    e.configure({ workers: 2, workerNice: 5 });
    // Charging a bucket starts the engine (its registry lives there): 1 byte of a fast limit never waits.
    expect(e.chargeLimits!([{ key: 'test/threads', bytesPerSecond: 1_000_000 }], 1)).toBe(0);
    const workers = await pollUntil(
      async () => threads().filter((t) => t.comm.startsWith('smesh-hbone-')),
      (ts) => ts.length === 2,
      5_000,
    );
    expect(workers.map((t) => t.comm).sort()).toEqual(['smesh-hbone-0', 'smesh-hbone-1']);
    expect(workers.map((t) => t.nice)).toEqual([5, 5]);
    const main = threads().find((t) => !t.comm.startsWith('smesh-'))!;
    expect(main.nice).toBe(0);
    e.closeAll();
  });

  it("charging a bucket from JavaScript: the burst is spent at once, the wait is until a whole chunk is earned, the engine's bucket shows it", () => {
    const e = engine!;
    // 100 kB/s: burst 16 384 (the one-chunk floor). The bucket is made by this call, so its clock starts with it.
    const limit = { key: 'test/js-charge', bytesPerSecond: 100_000 };
    const wait = e.chargeLimits!([limit], 16_384);
    expect(wait).toBeCloseTo(163.84, 1);
    const b = e.qosState().buckets.find((x) => x.key === limit.key)!;
    expect(b).toMatchObject({ granted: 16_384, bytesPerSecond: 100_000, burst: 16_384, throttles: 1 });
  });
});
