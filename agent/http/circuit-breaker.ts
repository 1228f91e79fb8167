// Envoy-style circuit breaker per service (and subset) on this proxy: max connections, pending requests, requests, concurrent retries.
import type { ConnectionPoolSettings, RetrySettings } from '../../core/model/types';

export type OverloadReason = 'max_pending_requests' | 'max_requests' | 'max_retries' | 'retry_budget';

/** Istio's defaults are effectively unlimited (2^32-1); so are ours when a threshold is unset. */
const UNLIMITED = Number.MAX_SAFE_INTEGER;

export class CircuitBreaker {
  active = 0;
  pending = 0;
  /** Upstream connection slots in use (see acquireConnection). */
  connections = 0;
  retries = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(public limits: ConnectionPoolSettings = {}) {}

  private limit(v: number | undefined): number {
    return v === undefined || v <= 0 ? UNLIMITED : v;
  }

  /** A new request may start (counted as active when it does). */
  admitRequest(): OverloadReason | undefined {
    if (this.active >= this.limit(this.limits.maxRequests)) return 'max_requests';
    this.active++;
    return undefined;
  }

  releaseRequest(): void {
    this.active = Math.max(0, this.active - 1);
  }

  /**
   * An HTTP/1.1 connection carries one request at a time, so `maxConnections` bounds the requests
   * in flight upstream; the rest wait (pending) in FIFO order up to `maxPendingRequests`, and
   * beyond that fail fast. Resolves once the request holds a connection slot.
   */
  async acquireConnection(): Promise<OverloadReason | undefined> {
    if (this.connections < this.limit(this.limits.maxConnections)) {
      this.connections++;
      return undefined;
    }
    if (this.pending >= this.limit(this.limits.maxPendingRequests)) return 'max_pending_requests';
    this.pending++;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.pending--;
    return undefined;
  }

  /** Frees a connection slot, handing it straight to the oldest pending request if any. */
  releaseConnection(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.connections = Math.max(0, this.connections - 1);
  }

  /** Concurrent retries: maxRetries, and the route's retry budget (Envoy: percent of active requests, at least minRetryConcurrency). */
  admitRetry(budget?: RetrySettings['budget']): OverloadReason | undefined {
    if (this.retries >= this.limit(this.limits.maxRetries)) return 'max_retries';
    if (budget) {
      const pct = budget.budgetPercent ?? 20;
      const allowed = Math.max(budget.minRetryConcurrency ?? 3, Math.floor((this.active * pct) / 100));
      if (this.retries >= allowed) return 'retry_budget';
    }
    this.retries++;
    return undefined;
  }

  releaseRetry(): void {
    this.retries = Math.max(0, this.retries - 1);
  }
}
