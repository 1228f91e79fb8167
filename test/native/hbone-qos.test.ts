// Relay QoS of the native HBONE engine: its pure scheduler and token bucket through the addon's test entry point (deficit round robin shares, strict priority, refill on an injected clock), then bytes/s limits and DSCP on real loopback sockets with fair share on (test/native/qos-sockets.ts; hbone-qos-fifo.test.ts runs them with it off).
import { describe, expect, it } from 'vitest';
import { hboneEngine, type RawHbone } from '../../agent/native/hbone';
import type { HboneEngine } from '../../agent/native/hbone-types';
import { loadRawNative, useAddonPath } from '../../agent/native/raw';
import { describeQosSockets } from './qos-sockets';

if (process.env.SMESH_NATIVE_ADDON) useAddonPath(process.env.SMESH_NATIVE_ADDON);

const engine: HboneEngine | undefined = hboneEngine();
const raw = (() => {
  try {
    return loadRawNative() as unknown as RawHbone;
  } catch {
    return undefined;
  }
})();
const describeNative = engine && raw?.hboneQosSimulate ? describe : describe.skip;

interface DrrResult {
  served: number[];
  order: number[];
}
interface BucketResult {
  burst: number;
  granted: number[];
  waitNs: number[];
}

function drr(flows: Array<{ priority: number; weight: number; streams?: number; chunk?: number }>, grants: number): DrrResult {
  return raw!.hboneQosSimulate!({ kind: 'drr', flows: flows.map((f) => ({ streams: 1, chunk: 1 << 20, ...f })), grants }) as DrrResult;
}

describeNative('native HBONE engine QoS', () => {
  describe('scheduler and bucket (pure C++ classes, virtual clock)', () => {
    it('deficit round robin shares bytes in proportion to the source workloads weights, whatever their stream count and chunk size', () => {
      const r = drr(
        [
          { priority: 1, weight: 100, streams: 10, chunk: 4096 },
          { priority: 1, weight: 300, streams: 1, chunk: 1 << 20 },
          { priority: 1, weight: 50, streams: 3, chunk: 1000 },
        ],
        20_000,
      );
      const [a, b, c] = r.served as [number, number, number];
      expect(b / a).toBeGreaterThan(2.97);
      expect(b / a).toBeLessThan(3.03);
      expect(a / c).toBeGreaterThan(1.98);
      expect(a / c).toBeLessThan(2.02);
    });

    it('serves latency before normal before bulk while the higher class is ready (strict priority)', () => {
      const r = drr(
        [
          { priority: 2, weight: 1000 },
          { priority: 0, weight: 1 },
          { priority: 1, weight: 1000 },
        ],
        500,
      );
      expect(new Set(r.order)).toEqual(new Set([1]));
      expect(r.served[0]).toBe(0);
      expect(r.served[2]).toBe(0);
      // Without the latency flow, normal goes first.
      const r2 = drr(
        [
          { priority: 2, weight: 1000 },
          { priority: 1, weight: 1 },
        ],
        100,
      );
      expect(new Set(r2.order)).toEqual(new Set([1]));
    });

    it('equal weights alternate grant by grant (no flow served twice in a row while another waits)', () => {
      const r = drr(
        [
          { priority: 1, weight: 100, chunk: 16384 },
          { priority: 1, weight: 100, chunk: 16384 },
        ],
        40,
      );
      for (let i = 1; i < r.order.length; i++) expect(r.order[i]).not.toBe(r.order[i - 1]);
    });

    it('token bucket: starts with its burst, refills at the rate on the injected clock, caps at the burst, reports the wait', () => {
      const rate = 100_000;
      const r = raw!.hboneQosSimulate!({
        kind: 'bucket',
        bytesPerSecond: rate,
        steps: [
          { atNs: 0, want: 1_000_000 },
          { atNs: 100_000_000, want: 1_000_000 },
          { atNs: 100_000_000, want: 1 },
          { atNs: 150_000_000, want: 1_000_000 },
          { atNs: 10_000_000_000, want: 1_000_000 },
        ],
      }) as BucketResult;
      expect(r.burst).toBe(16384); // 100 ms at the rate is 10 000 bytes; the floor is one DATA frame
      expect(r.granted).toEqual([16384, 10_000, 0, 5_000, 16384]);
      // Empty at 100 ms: a whole burst is 163.84 ms away; one byte 10 µs.
      expect(r.waitNs[1]).toBe(163_840_000);
      expect(r.waitNs[2]).toBe(10_000);
      expect(r.waitNs[4]).toBe(163_840_000);
    });

    it('several limits on one stream: the tightest bucket paces it and every bucket is charged, so a shared one holds for all its streams', () => {
      // Bucket 0: a workload-wide 100 kB/s shared by streams A and B; bucket 1: A's own 50 kB/s; bucket 2: B's own 1 MB/s.
      const r = raw!.hboneQosSimulate!({
        kind: 'limits',
        buckets: [
          { bytesPerSecond: 100_000, burst: 20_000 },
          { bytesPerSecond: 50_000, burst: 20_000 },
          { bytesPerSecond: 1_000_000, burst: 20_000 },
        ],
        streams: [
          [0, 1],
          [0, 2],
        ],
        steps: [
          { atNs: 0, stream: 0, want: 1_000_000 }, // A takes 20 000 of both its buckets
          { atNs: 0, stream: 1, want: 1_000_000 }, // B: the shared bucket is empty, whatever its own holds
          { atNs: 100_000_000, stream: 1, want: 1_000_000 }, // 100 ms: the shared bucket earned 10 000
          { atNs: 200_000_000, stream: 0, want: 1_000_000 }, // A's own earned 10 000, the shared one 10 000 more
        ],
      }) as { granted: number[]; waitNs: number[]; bucketGranted: number[] };
      expect(r.granted).toEqual([20_000, 0, 10_000, 10_000]);
      // B waits for the shared bucket (100 kB/s): 1 byte short of nothing → its own burst of 20 000 needs 200 ms.
      expect(r.waitNs[1]).toBe(200_000_000);
      expect(r.bucketGranted).toEqual([40_000, 30_000, 10_000]);
    });
  });

  describeQosSockets(engine!, true);
});
