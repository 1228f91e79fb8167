// Token bucket with Envoy's local-rate-limit semantics (max_tokens, tokens_per_fill, fill_interval) on an injected monotonic clock.
import type { LocalRateLimitSettings } from '../../core/model/types';

/** Monotonic milliseconds. */
export type Clock = () => number;

export const monotonicClock: Clock = () => performance.now();

/** What /config_dump shows of a bucket. */
export interface BucketState {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
  readonly tokens: number;
  /** Milliseconds until the next fill. */
  readonly nextFillInMs: number;
}

/**
 * Starts full. Every whole `fillIntervalMs` since the last fill adds `tokensPerFill`, capped at `maxTokens` (Envoy
 * refills on a timer; computing the elapsed fills on each take gives the same counts without one).
 */
export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    readonly settings: LocalRateLimitSettings,
    private readonly now: Clock = monotonicClock,
  ) {
    this.tokens = settings.maxTokens;
    this.lastFill = now();
  }

  private refill(): void {
    const t = this.now();
    const fills = Math.floor((t - this.lastFill) / this.settings.fillIntervalMs);
    if (fills <= 0) return;
    this.tokens = Math.min(this.settings.maxTokens, this.tokens + fills * this.settings.tokensPerFill);
    this.lastFill += fills * this.settings.fillIntervalMs;
  }

  /** Takes one token when there is one. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available (0: now). */
  msUntilToken(): number {
    this.refill();
    if (this.tokens >= 1) return 0;
    return Math.max(0, this.lastFill + this.settings.fillIntervalMs - this.now());
  }

  state(): BucketState {
    this.refill();
    const { maxTokens, tokensPerFill, fillIntervalMs } = this.settings;
    return { maxTokens, tokensPerFill, fillIntervalMs, tokens: this.tokens, nextFillInMs: Math.max(0, this.lastFill + fillIntervalMs - this.now()) };
  }

  /** Same limits (a snapshot that did not change this rule keeps the bucket and its tokens). */
  sameAs(s: LocalRateLimitSettings): boolean {
    return s.maxTokens === this.settings.maxTokens && s.tokensPerFill === this.settings.tokensPerFill && s.fillIntervalMs === this.settings.fillIntervalMs;
  }
}

/**
 * The IETF RateLimit header fields of draft-ietf-httpapi-ratelimit-headers (-09 and later: structured-field Lists whose
 * items are the policy name as an sf-string, RFC 8941 §3.3.3): `ratelimit-policy: "<name>";q=<quota>;w=<window s>` and
 * `ratelimit: "<name>";r=<remaining>;t=<s until reset>`, plus Retry-After. The window is whole seconds, so the quota is
 * what the bucket refills in that window (a 500ms fill of 5 tokens is q=10;w=1).
 */
export function rateLimitHeaders(policyName: string, b: BucketState, retryAfterMs: number): Record<string, string> {
  const windowS = Math.max(1, Math.ceil(b.fillIntervalMs / 1000));
  const quota = Math.floor((b.tokensPerFill * windowS * 1000) / b.fillIntervalMs);
  const resetS = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const name = structuredString(policyName);
  return {
    'retry-after': String(resetS),
    'ratelimit-policy': `${name};q=${quota};w=${windowS}`,
    ratelimit: `${name};r=${Math.floor(b.tokens)};t=${resetS}`,
  };
}

/** An sf-string (RFC 8941 §3.3.3): printable ASCII in double quotes, `"` and `\` escaped; anything else becomes `-`. */
export function structuredString(name: string): string {
  return `"${name.replace(/[^\x20-\x7e]/g, '-').replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
