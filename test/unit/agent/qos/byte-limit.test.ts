// bytes/s limits for relays in JavaScript: the GCRA bucket on a virtual clock (burst, whole-chunk waits, long-run rate), several limits on one relay, the shaper's upload/download limits of a same-node connection, and the JS relay pausing its source while a limiter says wait (real loopback sockets).
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { byteLimiter, defaultBurst, JsByteBucket, JsByteBuckets, MIN_GRANT_BYTES, relayLimits, type ByteLimiter } from '../../../../agent/qos/byte-limit';
import { TrafficShaper } from '../../../../agent/qos/shaping';
import { relay } from '../../../../agent/proxy/relay';
import type { MeshSnapshot, Service, ShapingRule, Workload, WorkloadShaping } from '../../../../core/model/types';

describe('JsByteBucket', () => {
  it('lets the burst through, then asks to wait until a whole chunk has been earned again; the long-run rate is exact', () => {
    let now = 0;
    const rate = 1_000_000; // bytes/s: burst 100 000 (100 ms)
    const b = new JsByteBucket(rate, defaultBurst(rate), () => now);
    expect(b.burst).toBe(100_000);
    expect(b.charge(50_000)).toBe(0);
    // 10 000 left: short of a whole chunk (16 384) by 6 384 bytes = 6.384 ms at the rate.
    expect(b.charge(40_000)).toBeCloseTo(6.384, 6);
    now += 6.384;
    expect(b.charge(16_384)).toBeCloseTo(16.384, 6);
    // A slow limit (burst = one chunk): every charge waits until a whole chunk is earned again.
    const slow = new JsByteBucket(100_000, defaultBurst(100_000), () => now);
    expect(slow.burst).toBe(MIN_GRANT_BYTES);
    expect(slow.charge(8192)).toBeCloseTo(81.92, 6);
    // Over 10 s of charging whenever allowed, the bytes moved are the burst plus the rate × time.
    let moved = 0;
    now = 1000;
    const fresh = new JsByteBucket(rate, defaultBurst(rate), () => now);
    while (now < 11_000) {
      moved += 4096;
      const w = fresh.charge(4096);
      if (w > 0) now += w;
    }
    expect(moved).toBeGreaterThanOrEqual(rate * 10);
    expect(moved).toBeLessThanOrEqual(rate * 10 + fresh.burst + 4096);
  });

  it('several limits: each bucket is charged every byte; the wait is the longest', () => {
    const now = 0;
    const js = new JsByteBuckets(() => now);
    const l = byteLimiter(
      [
        { key: 'tight', bytesPerSecond: 50_000 },
        { key: 'loose', bytesPerSecond: 5_000_000 },
      ],
      { js },
    )!;
    expect(l.charge(16_384)).toBeGreaterThan(0);
    const d = Object.fromEntries(js.dump().map((b) => [b.key, b]));
    expect(d.tight).toMatchObject({ granted: 16_384, throttles: 1 });
    expect(d.loose).toMatchObject({ granted: 16_384, throttles: 0 });
  });

  it("charges the engine's buckets instead when an engine charge is given", () => {
    const calls: Array<[string[], number]> = [];
    const l = byteLimiter({ key: 'k', bytesPerSecond: 1000 }, { engine: (limits, n) => (calls.push([limits.map((x) => x.key), n]), 7), js: new JsByteBuckets() })!;
    expect(l.charge(100)).toBe(7);
    expect(calls).toEqual([[['k'], 100]]);
  });
});

describe("TrafficShaper.byteLimits (a same-node connection: the source's outbound rules and the destination's inbound rules)", () => {
  const wl = (uid: string): Workload =>
    ({
      uid,
      name: uid,
      namespace: 'ns',
      serviceAccount: 'sa',
      node: 'n1',
      ip: '198.18.1.1',
      labels: {},
      workloadName: uid,
      identity: `spiffe://cluster.local/ns/ns/sa/${uid}`,
      meshed: true,
    }) as Workload;
  const rule = (r: Partial<ShapingRule> & { name: string }): ShapingRule => ({ requestMatch: [], overLimit: { action: 'reject', maxWaitMs: 0 }, ...r });
  const svc: Service = { key: 'ns/server', name: 'server', namespace: 'ns', vips: ['10.96.0.1'], ports: [{ port: 80, targetPort: 8080 }], selector: {} };
  const shaping: WorkloadShaping[] = [
    { workloadUid: 'client', outbound: [rule({ name: 'ns/t/up', bytesPerSecond: { upload: 8_000_000 } })], inbound: [] },
    { workloadUid: 'server', outbound: [], inbound: [rule({ name: 'ns/t/in', bytesPerSecond: { upload: 80_000_000, download: 800_000 } })] },
  ];
  const snapshot = { trafficShaping: new Map(shaping.map((s) => [s.workloadUid, s])), services: new Map([[svc.key, svc]]) } as unknown as MeshSnapshot;
  const shaper = new TrafficShaper({ state: { snapshot: () => snapshot, trustDomain: 'cluster.local', workloadByIp: () => undefined } });

  it('upload = client → server from both sides, in bytes; download from the inbound rule', () => {
    const ways = shaper.byteLimits([
      { direction: 'outbound', source: wl('client'), service: svc, servicePort: 80 },
      { direction: 'inbound', destination: wl('server'), port: 8080, sourceIdentity: 'spiffe://cluster.local/ns/ns/sa/client' },
    ]);
    expect(ways.upload).toEqual([
      { key: 'ns/t/up|client|upload', bytesPerSecond: 1_000_000 },
      { key: 'ns/t/in|server|upload', bytesPerSecond: 10_000_000 },
    ]);
    expect(ways.download).toEqual([{ key: 'ns/t/in|server|download', bytesPerSecond: 100_000 }]);
    const limits = relayLimits(ways, { js: new JsByteBuckets() })!;
    expect(limits.aToB).toBeDefined();
    expect(limits.bToA).toBeDefined();
    expect(relayLimits({ upload: [], download: [] }, { js: new JsByteBuckets() })).toBeUndefined();
  });
});

describe('relay() with a limiter (real loopback sockets)', () => {
  const cleanup: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  async function pair(): Promise<{ client: net.Socket; accepted: net.Socket; close: () => void }> {
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    const accepted = await acceptedP;
    return {
      client,
      accepted,
      close: () => {
        client.destroy();
        accepted.destroy();
        server.close();
      },
    };
  }

  it('pauses the source while the limiter says wait, resumes after, moves every byte and charges every byte', async () => {
    // app → [a | relay | b] → sink
    const left = await pair();
    const right = await pair();
    cleanup.push(left.close, right.close);
    const charged: number[] = [];
    const waits: number[] = [];
    let pausedDuringWait = 0;
    // A charge before this instant came while a wait was running (clock comparison, no timer of its own).
    let waitingUntil = 0;
    const limiter: ByteLimiter = {
      charge(n) {
        if (performance.now() < waitingUntil) pausedDuringWait += n;
        charged.push(n);
        // Every 64 KiB charged, ask for a 20 ms pause.
        const total = charged.reduce((a, b) => a + b, 0);
        const w = Math.floor(total / 65_536) > waits.length ? 20 : 0;
        if (w) {
          waits.push(w);
          waitingUntil = performance.now() + 15;
        }
        return w;
      },
    };
    const r = relay(left.accepted, right.client, undefined, { aToB: limiter });
    const total = 512 * 1024;
    let got = 0;
    const sinkDone = new Promise<void>((res) => {
      right.accepted.on('data', (d: Buffer) => (got += d.length));
      right.accepted.on('end', () => {
        right.accepted.end();
        res();
      });
    });
    left.client.on('data', () => undefined);
    left.client.end(Buffer.alloc(total, 3));
    await sinkDone;
    const res = await r.done;
    expect(got).toBe(total);
    expect(res.aToB).toBe(total);
    expect(charged.reduce((a, b) => a + b, 0)).toBe(total);
    expect(waits.length).toBeGreaterThanOrEqual(7);
    // While a wait ran, at most what was already read before the pause arrived (no new reads were started).
    expect(pausedDuringWait).toBeLessThanOrEqual(waits.length * 65_536);
  });
});
