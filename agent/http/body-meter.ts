// Byte and gRPC-message counts of one HTTP body as it streams past (for istio_request_bytes / istio_response_bytes and the gRPC message counters).
import type { Readable } from 'node:stream';

/**
 * Counts gRPC length-prefixed messages (1-byte compressed flag, 4-byte big-endian length, then the
 * message) in a byte stream fed chunk by chunk; prefixes and messages may straddle chunks.
 */
export class GrpcMessageCounter {
  messages = 0;
  /** Bytes of the current 5-byte prefix still to read (0 while inside a message body). */
  private prefixLeft = 5;
  private length = 0;
  private bodyLeft = 0;

  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, n - i);
        this.bodyLeft -= take;
        i += take;
        continue;
      }
      // Inside the prefix: byte 0 is the flag, bytes 1..4 the length.
      if (this.prefixLeft < 5) this.length = this.length * 256 + chunk[i]!;
      i++;
      this.prefixLeft--;
      if (this.prefixLeft === 0) {
        this.messages++;
        this.bodyLeft = this.length;
        this.length = 0;
        this.prefixLeft = 5;
      }
    }
  }
}

/** Counts the bytes (and, for gRPC, the messages) of a body stream without consuming it. */
export class BodyMeter {
  bytes = 0;
  private readonly grpc?: GrpcMessageCounter;

  constructor(grpc: boolean) {
    if (grpc) this.grpc = new GrpcMessageCounter();
  }

  get messages(): number {
    return this.grpc?.messages ?? 0;
  }

  /** Feeds the meter from every 'data' event of `body` (the listener only reads the chunk). */
  watch(body: Readable): this {
    body.on('data', (chunk: Buffer | string) => this.add(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    return this;
  }

  add(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.grpc?.push(chunk);
  }
}

/** The RequestSizes of a request/response pair of meters. */
export function sizesOf(request: BodyMeter, response: BodyMeter): { requestBytes: number; responseBytes: number; requestMessages: number; responseMessages: number } {
  return { requestBytes: request.bytes, responseBytes: response.bytes, requestMessages: request.messages, responseMessages: response.messages };
}
