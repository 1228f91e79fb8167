// BodyTap: the request body goes to the current attempt as it arrives, and a later attempt gets the kept copy and then the rest, until the body outgrows the limit.
import { describe, expect, it } from 'vitest';
import { PassThrough, Writable } from 'node:stream';
import { BodyTap } from '../../../../agent/http/body';

class Sink extends Writable {
  readonly chunks: Buffer[] = [];
  ended = false;
  constructor() {
    super();
    this.once('finish', () => (this.ended = true));
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('BodyTap', () => {
  it('replays the copy to a second sink, then the rest of a body still arriving', async () => {
    const src = new PassThrough();
    const tap = new BodyTap(src, 100);
    const first = new Sink();
    tap.attach(first);
    src.write('hello ');
    await tick();
    expect(first.text).toBe('hello ');
    tap.detach();
    src.write('world');
    await tick();
    expect(first.text, 'a detached sink gets nothing more').toBe('hello ');
    const second = new Sink();
    tap.attach(second);
    src.end('!');
    await tick();
    expect(second.text).toBe('hello world!');
    expect(second.ended).toBe(true);
    expect(tap.complete).toBe(true);
    expect(tap.replayable).toBe(true);
  });

  it('a body that outgrows the limit streams to the first sink only and cannot be replayed', async () => {
    const src = new PassThrough();
    const tap = new BodyTap(src, 10);
    const first = new Sink();
    tap.attach(first);
    src.end(Buffer.alloc(25, 'x'));
    await tick();
    expect(first.text).toBe('x'.repeat(25));
    expect(first.ended).toBe(true);
    expect(tap.replayable).toBe(false);
    tap.detach();
    expect(() => tap.attach(new Sink())).toThrow(/outgrew the retry buffer/);
  });

  it('respects the sink backpressure: the source pauses until drain', async () => {
    const src = new PassThrough();
    const tap = new BodyTap(src, 1 << 20);
    let release: (() => void) | undefined;
    const slow = new Writable({ highWaterMark: 4, write: (_c, _e, cb) => (release = cb) });
    tap.attach(slow);
    src.write('aaaaaaaa');
    await tick();
    expect(src.isPaused()).toBe(true);
    release!();
    await tick();
    expect(src.isPaused()).toBe(false);
  });
});
