// A request body streamed to the current upstream attempt while a copy (up to a limit) is kept, so a failed attempt can be replayed to another endpoint.
import type { Readable, Writable } from 'node:stream';

/**
 * The only reader of a request body. Chunks go to the attached sink as they arrive (with its
 * backpressure); the first `limit` bytes are also kept. While the copy is whole (the body has not
 * outgrown the limit) a new sink can be attached: it gets the copy, then the rest as it arrives.
 */
export class BodyTap {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private overflowed = false;
  private ended = false;
  private sink?: Writable;
  private started = false;
  private readonly onDrain = () => this.source.resume();

  constructor(
    private readonly source: Readable,
    private readonly limit: number,
  ) {}

  /** The body so far is kept whole, so another attempt can still be made. */
  get replayable(): boolean {
    return !this.overflowed;
  }

  /** The whole body has arrived from the client. */
  get complete(): boolean {
    return this.ended;
  }

  private start(): void {
    this.started = true;
    this.source.on('data', (chunk: Buffer) => {
      if (!this.overflowed) {
        this.size += chunk.length;
        if (this.size > this.limit) {
          this.overflowed = true;
          this.chunks.length = 0;
        } else this.chunks.push(chunk);
      }
      const sink = this.sink;
      if (sink && !sink.write(chunk)) {
        this.source.pause();
        sink.once('drain', this.onDrain);
      }
    });
    this.source.once('end', () => {
      this.ended = true;
      this.sink?.end();
    });
  }

  /** Sends the body to `sink`: the kept copy first when this is a later attempt. Only while replayable (or for the first sink). */
  attach(sink: Writable): void {
    if (this.started && this.overflowed) throw new Error('request body outgrew the retry buffer; it cannot be sent again');
    this.sink = sink;
    if (!this.started) {
      this.start();
    } else {
      for (const c of this.chunks) sink.write(c);
      if (this.ended) sink.end();
      else this.source.resume();
    }
  }

  /** The current attempt is over: stop feeding it (the client's further bytes wait, unread, for the next sink). */
  detach(): void {
    const sink = this.sink;
    if (!sink) return;
    sink.off('drain', this.onDrain);
    this.sink = undefined;
    if (!this.ended) this.source.pause();
  }
}
