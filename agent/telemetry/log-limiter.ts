// Rate limit for log lines a remote peer can trigger at will (refused HBONE handshakes): at most N per interval, the rest counted, not printed.
import { performance } from 'node:perf_hooks';

/** Milliseconds from a monotonic clock. */
export type MonotonicClock = () => number;
const monotonicMs: MonotonicClock = () => performance.now();

/**
 * A fixed-window limiter. `take()` says whether the caller may log now and, when it may, how many lines were
 * suppressed since the last one that was logged (so the next printed line can say so).
 */
export class LogRateLimiter {
  private windowStart: number;
  private used = 0;
  private suppressed = 0;

  constructor(
    private readonly maxPerInterval: number,
    private readonly intervalMs: number,
    private readonly now: MonotonicClock = monotonicMs,
  ) {
    this.windowStart = now();
  }

  /** undefined: drop this line. A number: log it; that many lines were dropped since the last logged one. */
  take(): number | undefined {
    const t = this.now();
    if (t - this.windowStart >= this.intervalMs) {
      this.windowStart = t;
      this.used = 0;
    }
    if (this.used >= this.maxPerInterval) {
      this.suppressed++;
      return undefined;
    }
    this.used++;
    const dropped = this.suppressed;
    this.suppressed = 0;
    return dropped;
  }
}
