// Live byte counts of connections the addon relays (splice, HBONE engine), copied into their ByteCounters on a timer and on read.
import type { ByteCounters } from './relay';

/** One native relay's last seen counts (a→b, b→a) and the ByteCounters they feed (received = a→b, sent = b→a). */
export interface LiveCount {
  readonly counters?: ByteCounters;
  aToB: number;
  bToA: number;
}

/** Adds what moved since the last look to the relay's ByteCounters. */
export function advance(l: LiveCount, aToB: number, bToA: number): void {
  if (aToB > l.aToB) {
    if (l.counters) l.counters.received += aToB - l.aToB;
    l.aToB = aToB;
  }
  if (bToA > l.bToA) {
    if (l.counters) l.counters.sent += bToA - l.bToA;
    l.bToA = bToA;
  }
}

/**
 * The live relays of one native backend: `read` returns current counts by relay id (oriented a→b, b→a); every
 * `periodMs` (and on demand) they are copied into each relay's ByteCounters, so metrics scrapes see bytes of
 * long-lived connections while they flow. The timer runs only while relays are live and never holds the process.
 */
export class LiveCounters {
  private readonly live = new Map<number, LiveCount>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly read: () => Map<number, { readonly aToB: number; readonly bToA: number }>,
    private readonly periodMs: number,
  ) {}

  track(id: number, counters: ByteCounters | undefined): LiveCount {
    const l: LiveCount = { counters, aToB: 0, bToA: 0 };
    this.live.set(id, l);
    if (!this.timer) {
      this.timer = setInterval(() => this.poll(), this.periodMs);
      this.timer.unref();
    }
    return l;
  }

  /** The relay ended with these final counts. */
  finish(id: number, aToB: number, bToA: number): void {
    const l = this.live.get(id);
    if (l) advance(l, aToB, bToA);
    this.live.delete(id);
    if (this.live.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Current counts of one relay (refreshed from the addon while it is live). */
  refresh(id: number): void {
    const l = this.live.get(id);
    if (!l) return;
    const c = this.read().get(id);
    if (c) advance(l, c.aToB, c.bToA);
  }

  private poll(): void {
    if (this.live.size === 0) return;
    for (const [id, c] of this.read()) {
      const l = this.live.get(id);
      if (l) advance(l, c.aToB, c.bToA);
    }
  }
}
