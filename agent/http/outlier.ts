// Outlier detection, pure with an injected clock: consecutive 5xx / gateway errors / connect failures eject an endpoint for base × n (capped), within a maximum ejection percentage.
import type { OutlierDetectionSettings } from '../../core/model/types';

export type Outcome = 'success' | 'server_error' | 'gateway_error' | 'connect_failure';

interface EndpointState {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveConnect: number;
  /** Times ejected (the multiplier); decays by one per healthy interval after a return. */
  ejections: number;
  ejectedUntil?: number;
  lastDecay: number;
}

/** Envoy / Istio defaults when the DestinationRule sets outlierDetection without a field. */
export const OUTLIER_DEFAULTS = { consecutive: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 10 } as const;

export class OutlierDetector {
  private readonly endpoints = new Map<string, EndpointState>();
  /** Bumped on every ejection or return, so pickers can be rebuilt only when the set changes. */
  version = 0;

  constructor(
    public settings: OutlierDetectionSettings,
    private readonly now: () => number,
  ) {}

  private state(key: string): EndpointState {
    let s = this.endpoints.get(key);
    if (!s) this.endpoints.set(key, (s = { consecutive5xx: 0, consecutiveGateway: 0, consecutiveConnect: 0, ejections: 0, lastDecay: this.now() }));
    return s;
  }

  /** Records one request outcome on `key`; returns true when it ejected the endpoint. `total` = endpoints in the set. */
  record(key: string, outcome: Outcome, total: number): boolean {
    const s = this.state(key);
    this.refresh(key, s);
    if (outcome === 'success') {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      s.consecutiveConnect = 0;
      return false;
    }
    if (outcome === 'connect_failure') s.consecutiveConnect++;
    else {
      s.consecutive5xx++;
      if (outcome === 'gateway_error') s.consecutiveGateway++;
      else s.consecutiveGateway = 0;
    }
    if (s.ejectedUntil !== undefined) return false;
    const c = this.settings;
    // Istio: consecutive5xxErrors defaults to 5; gateway errors and local-origin failures only count when set.
    const t5 = c.consecutiveServerErrors ?? OUTLIER_DEFAULTS.consecutive;
    const tg = c.consecutiveGatewayErrors ?? 0;
    // consecutiveLocalOriginFailures has no Istio default: only when set.
    const tc = c.consecutiveConnectFailures;
    const trip = (t5 > 0 && s.consecutive5xx >= t5) || (tg > 0 && s.consecutiveGateway >= tg) || (tc !== undefined && tc > 0 && s.consecutiveConnect >= tc);
    if (!trip) return false;
    // Envoy: never above maxEjectionPercent, but at least one host may always be ejected.
    const maxPct = c.maxEjectionPercent ?? OUTLIER_DEFAULTS.maxEjectionPercent;
    const ejectedNow = this.ejectedCount();
    const allowed = Math.max(1, Math.floor((total * maxPct) / 100));
    if (maxPct <= 0 || ejectedNow >= allowed || ejectedNow >= total) return false;
    s.ejections++;
    const base = c.baseEjectionTimeMs ?? OUTLIER_DEFAULTS.baseEjectionTimeMs;
    const cap = Math.max(base, c.maxEjectionTimeMs ?? OUTLIER_DEFAULTS.maxEjectionTimeMs);
    s.ejectedUntil = this.now() + Math.min(base * s.ejections, cap);
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveConnect = 0;
    this.version++;
    return true;
  }

  /** Returns ejected endpoints whose time is up, and decays the multiplier of healthy ones. */
  private refresh(key: string, s: EndpointState): void {
    const now = this.now();
    if (s.ejectedUntil !== undefined && now >= s.ejectedUntil) {
      s.ejectedUntil = undefined;
      s.lastDecay = now;
      this.version++;
      void key;
    }
    const interval = this.settings.intervalMs ?? OUTLIER_DEFAULTS.intervalMs;
    if (s.ejectedUntil === undefined && s.ejections > 0 && interval > 0) {
      const steps = Math.floor((now - s.lastDecay) / interval);
      if (steps > 0) {
        s.ejections = Math.max(0, s.ejections - steps);
        s.lastDecay += steps * interval;
      }
    }
  }

  isEjected(key: string): boolean {
    const s = this.endpoints.get(key);
    if (!s) return false;
    this.refresh(key, s);
    return s.ejectedUntil !== undefined;
  }

  ejectedCount(): number {
    let n = 0;
    for (const [k, s] of this.endpoints) {
      this.refresh(k, s);
      if (s.ejectedUntil !== undefined) n++;
    }
    return n;
  }

  /** Forget endpoints no longer present. */
  retain(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const k of this.endpoints.keys()) if (!keep.has(k)) this.endpoints.delete(k);
  }
}

/** Which outlier outcome an upstream status is (502, 503, 504 are gateway errors, as Envoy). */
export function outcomeOfStatus(status: number): Outcome {
  if (status >= 500) return status === 502 || status === 503 || status === 504 ? 'gateway_error' : 'server_error';
  return 'success';
}
