// BodyMeter / GrpcMessageCounter: byte counts and gRPC length-prefixed message counts across arbitrary chunk boundaries.
import { describe, it, expect } from 'vitest';
import { PassThrough } from 'node:stream';
import { BodyMeter, GrpcMessageCounter } from '../../../../agent/http/body-meter';
import { seeded } from '../../../helpers/prng';

function frame(len: number, compressed = false): Buffer {
  const b = Buffer.alloc(5 + len, 0x61);
  b[0] = compressed ? 1 : 0;
  b.writeUInt32BE(len, 1);
  return b;
}

describe('GrpcMessageCounter', () => {
  it('counts whole messages, empty messages included', () => {
    const c = new GrpcMessageCounter();
    c.push(Buffer.concat([frame(3), frame(0), frame(300, true)]));
    expect(c.messages).toBe(3);
  });

  it('counts a message once its prefix is complete, whatever the chunking (property over random splits)', () => {
    const rnd = seeded(7);
    const lengths = [0, 1, 4, 5, 70000, 12, 255, 256, 65536];
    const stream = Buffer.concat(lengths.map((l) => frame(l)));
    for (let round = 0; round < 50; round++) {
      const c = new GrpcMessageCounter();
      let i = 0;
      while (i < stream.length) {
        const n = 1 + Math.floor(rnd() * 9000);
        c.push(stream.subarray(i, i + n));
        i += n;
      }
      expect(c.messages).toBe(lengths.length);
    }
  });

  it('a prefix split byte by byte, then a partial body, counts one message', () => {
    const c = new GrpcMessageCounter();
    const f = frame(10);
    for (let i = 0; i < 5; i++) c.push(f.subarray(i, i + 1));
    expect(c.messages).toBe(1);
    c.push(f.subarray(5, 9));
    expect(c.messages).toBe(1);
    c.push(Buffer.concat([f.subarray(9), frame(2).subarray(0, 3)]));
    expect(c.messages).toBe(1); // the second prefix is not complete yet
  });
});

describe('BodyMeter', () => {
  it('counts the bytes that flow through a stream without consuming them', async () => {
    const body = new PassThrough();
    const meter = new BodyMeter(true).watch(body);
    const out: Buffer[] = [];
    body.on('data', (c: Buffer) => out.push(c));
    body.write(frame(4));
    body.end(frame(1));
    await new Promise((r) => body.once('end', r));
    expect(meter.bytes).toBe(15);
    expect(meter.messages).toBe(2);
    expect(Buffer.concat(out).length).toBe(15);
  });

  it('does not count messages for a non-gRPC body', () => {
    const m = new BodyMeter(false);
    m.add(frame(3));
    expect(m.bytes).toBe(8);
    expect(m.messages).toBe(0);
  });
});
