// Datapath facade against a fake native surface: argument checking, ip ↔ key conversion, error wrapping (no root needed).
import { describe, expect, it } from 'vitest';
import { createDatapathApi } from '../../../../agent/native/datapath';
import { ipToKey, keyToIp, writeIpKey } from '../../../../core/net/addr';
import type { RawDatapath, RawNative, RawOpenOptions } from '../../../../agent/native/raw';
import { SmeshError } from '../../../../core/errors';

function fakeNative(): { native: RawNative; opened: RawOpenOptions[]; dests: Map<string, { addr: Buffer; port: number }> } {
  const opened: RawOpenOptions[] = [];
  const dests = new Map<string, { addr: Buffer; port: number }>();
  const pods = new Map<bigint, number>();
  const raw: RawDatapath = {
    attachInfo: () => ({ reused: false, links: ['/x/links/connect4'] }),
    podUpdate: (c, w) => void pods.set(c, w),
    podDelete: (c) => pods.delete(c),
    pods: () => [...pods].map(([cookie, workloadId]) => ({ cookie, workloadId })),
    destUpdate: (addr, port) => void dests.set(`${addr.toString('hex')}/${port}`, { addr, port }),
    destDelete: (addr, port) => dests.delete(`${addr.toString('hex')}/${port}`),
    dests: () => [...dests.values()],
    connsPinPath: () => '/x/maps/smesh_conns',
    close: () => undefined,
    destroy: () => undefined,
  } as Partial<RawDatapath> as RawDatapath; // only what the facade calls in these tests
  const native: RawNative = {
    open: async (o) => {
      opened.push(o);
      if (o.cgroupPath === '/missing') throw Object.assign(new Error('open cgroup /missing: No such file or directory'), { code: 'ENOENT' });
      return raw;
    },
    netnsCookie: async () => 77n,
    originalDestination: (_fd, pin) => (pin ? { addr: ipToKey('198.18.1.10'), port: 80, via: 'map' } : null),
  } as Partial<RawNative> as RawNative;
  return { native, opened, dests };
}

describe('address keys', () => {
  it.each([
    ['198.18.0.1', '00000000000000000000ffffc6120001', '198.18.0.1'],
    ['::ffff:198.18.0.1', '00000000000000000000ffffc6120001', '198.18.0.1'],
    ['2001:db8::1', '20010db8000000000000000000000001', '2001:db8::1'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['fe80:0:0:1::', 'fe800000000000010000000000000000', 'fe80:0:0:1::'],
    ['1:0:2:0:3:0:4:0', '00010000000200000003000000040000', '1:0:2:0:3:0:4:0'],
  ])('%s', (ip, hex, back) => {
    expect(ipToKey(ip).toString('hex')).toBe(hex);
    expect(keyToIp(ipToKey(ip))).toBe(back);
  });

  it.each(['198.18.0.256', 'web', '', '1::2::3', 'fe80::1%eth0'])('rejects %j', (ip) => {
    expect(() => ipToKey(ip)).toThrow(TypeError);
  });

  it('writeIpKey (the batch packer) writes what ipToKey returns and rejects the same strings', () => {
    const cases = ['0.0.0.0', '255.255.255.255', '198.18.0.1', '10.0.10.100', '1.2.3.4', '2001:db8::1', '::ffff:198.18.0.1', '::1'];
    for (const ip of cases) {
      const out = Buffer.alloc(20, 0xaa);
      writeIpKey(out, 2, ip);
      expect(out.subarray(2, 18).toString('hex'), ip).toBe(ipToKey(ip).toString('hex'));
      expect(out[0]).toBe(0xaa);
      expect(out[18]).toBe(0xaa);
    }
    for (const bad of ['198.18.0.256', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1..2.3', '1.2.3.', '.1.2.3', '1.2.3.4a', '1234.1.1.1', '', 'web', '1::2::3']) {
      expect(() => writeIpKey(Buffer.alloc(16), 0, bad), bad).toThrow(TypeError);
    }
  });
});

describe('datapath facade (fake native)', () => {
  it('converts options and map entries', async () => {
    const { native, opened, dests } = fakeNative();
    const api = createDatapathApi(() => native);
    const dp = await api.openDatapath({ bpffsDir: '/x', cgroupPath: '/cg', captureIp4: '169.254.7.1', capturePort: 15001 });
    expect(opened[0].captureIp4).toEqual(Buffer.from([169, 254, 7, 1]));
    expect(opened[0].captureIp6).toBeUndefined();
    dp.addMeshedDestination('198.19.0.10', 0);
    expect([...dests.values()][0].addr.toString('hex')).toBe('00000000000000000000ffffc613000a');
    expect(dp.meshedDestinations()).toEqual([{ ip: '198.19.0.10', port: 0 }]);
    dp.enrollPod(5n, 3);
    expect(dp.enrolledPods()).toEqual([{ cookie: 5n, workloadId: 3 }]);
    expect(api.originalDestination(9)).toEqual({ ip: '198.18.1.10', port: 80 }); // uses the open datapath's pin
    dp.close();
    expect(api.originalDestination(9)).toBeNull();
    expect(await api.netnsCookie('/run/netns/x')).toBe(77n);
  });

  it('throws TypeError at once for bad arguments and wraps native failures in SmeshError', async () => {
    const { native } = fakeNative();
    const api = createDatapathApi(() => native);
    const base = { bpffsDir: '/x', cgroupPath: '/cg', captureIp4: '169.254.7.1', capturePort: 15001 };
    expect(() => api.openDatapath({ ...base, captureIp4: '2001:db8::1' })).toThrow(TypeError);
    expect(() => api.openDatapath({ ...base, capturePort: 0 })).toThrow(TypeError);
    expect(() => api.openDatapath({ ...base, captureIp6: '::ffff:1.2.3.4' })).toThrow(TypeError);
    expect(() => api.originalDestination(-1)).toThrow(TypeError);
    const err = await api.openDatapath({ ...base, cgroupPath: '/missing' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmeshError);
    expect((err as SmeshError).code).toBe('SMESH_ERR_BPF');
    expect((err as SmeshError).message).toBe('open cgroup /missing: No such file or directory');
    expect(((err as SmeshError).cause as { code: string }).code).toBe('ENOENT');
    const dp = await api.openDatapath(base);
    expect(() => dp.enrollPod(1n << 64n, 1)).toThrow(TypeError);
    expect(() => dp.removeMeshedDestination('x', 1)).toThrow(TypeError);
  });

  it('packs batched destinations as struct smesh_addr_port (20 bytes, host-order port), or falls back to one call each', async () => {
    const list = [
      { ip: '198.19.0.10', port: 80 },
      { ip: '2001:db8::1', port: 0 },
      { ip: '198.18.1.2', port: 65535 },
    ];
    // An addon with batch operations: one call, packed keys.
    const withBatch = fakeNative();
    const packed: Buffer[] = [];
    const raw = await withBatch.native.open({} as RawOpenOptions);
    Object.assign(raw, { destUpdateBatch: (keys: Buffer) => void packed.push(keys), destDeleteBatch: (keys: Buffer) => keys.length / 20 });
    const dp = await createDatapathApi(() => withBatch.native).openDatapath({ bpffsDir: '/x', cgroupPath: '/cg', captureIp4: '169.254.7.1', capturePort: 15001 });
    dp.addMeshedDestinations(list);
    expect(packed).toHaveLength(1);
    expect(packed[0]!.length).toBe(60);
    expect(packed[0]!.subarray(0, 16).toString('hex')).toBe('00000000000000000000ffffc613000a');
    expect(packed[0]!.readUInt16LE(16)).toBe(80);
    expect(packed[0]!.readUInt16LE(18)).toBe(0);
    expect(keyToIp(packed[0]!.subarray(20, 36))).toBe('2001:db8::1');
    expect(packed[0]!.readUInt16LE(56)).toBe(65535);
    expect(dp.removeMeshedDestinations(list)).toBe(3);
    // Nothing is written when one entry is bad.
    expect(() =>
      dp.addMeshedDestinations([
        { ip: '198.18.1.1', port: 1 },
        { ip: '198.18.1.1', port: 70000 },
      ]),
    ).toThrow(TypeError);
    expect(packed).toHaveLength(1);
    // An addon without them (built before batching): one destUpdate/destDelete per entry.
    const plain = fakeNative();
    const dp2 = await createDatapathApi(() => plain.native).openDatapath({ bpffsDir: '/x', cgroupPath: '/cg', captureIp4: '169.254.7.1', capturePort: 15001 });
    dp2.addMeshedDestinations(list);
    expect(dp2.meshedDestinations()).toEqual(list);
    expect(dp2.removeMeshedDestinations([...list, { ip: '198.18.9.9', port: 1 }])).toBe(3);
    expect(plain.dests.size).toBe(0);
  });
});
