// Open L4 connections and the facts their authorization was decided on: re-decided when the policies change, and closed when now denied (as ztunnel's connection manager does).
import type { AuthorizeRequest } from '../policy/authorizer';
import type { PolicyDecision } from '../../core/policy/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';

/** Why a tracked connection was closed after a policy change. */
export type PolicyCloseReason =
  /** The connection-level decision is now a denial. */
  | 'policy_denied'
  /** Relayed raw, but its port now has request-level (L7) rules: closed so the client reconnects and is inspected per request. */
  | 'l7_inspection';

/** One open connection as the tracker sees it. */
export interface TrackedConnection {
  readonly direction: 'inbound' | 'outbound';
  /**
   * The authorization input at open time (source identity and address, destination, workload); with `http`, the
   * request that opened it (an upgraded connection), decided again with those attributes.
   */
  readonly facts: Omit<AuthorizeRequest, 'deferL7'>;
  /**
   * `raw`: bytes relayed without parsing; `inspected`: an HTTP tunnel whose requests are authorized one by one
   * (only a connection-level denial concerns it).
   */
  readonly mode: 'raw' | 'inspected';
  /**
   * For a raw connection: whether its port is an HTTP port that the proxy can inspect per request now. Then the
   * connection is decided with L7 deferred, and one that now needs inspection is closed (`l7_inspection`); without
   * it, L7 rules fail closed on the connection as they do at open.
   */
  readonly inspectable?: () => boolean;
  /** Resets the connection (TCP RST / RST_STREAM). */
  close(): void;
}

export interface ConnectionTrackerDeps {
  /** The authorizer's pure decision against the current snapshot (createAuthorizer(...).decide fits). */
  readonly decide: (req: AuthorizeRequest) => PolicyDecision;
  /** smesh_policy_connections_closed_total (MeshMetrics.policyConnectionsClosed fits). */
  readonly closed?: { inc(labels: { direction: string; reason: string }): void };
  readonly logger?: Logger;
}

/** What the proxies register their connections with. */
export interface ConnectionRegistry {
  /** Tracks `c` until the returned function is called (when the connection ends). */
  register(c: TrackedConnection): () => void;
}

export interface ReevaluationResult {
  readonly checked: number;
  readonly closed: number;
}

/**
 * The registry of open L4 connections (HBONE streams at the inbound, same-node connections at the
 * outbound). `reevaluate()` runs after a snapshot whose policies changed: every connection is
 * decided again on its facts, and those now denied are reset, counted by reason and logged.
 */
export class ConnectionTracker implements ConnectionRegistry {
  private readonly open = new Set<TrackedConnection>();
  private readonly log: Logger;

  constructor(private readonly deps: ConnectionTrackerDeps) {
    this.log = deps.logger ?? silentLogger();
  }

  register(c: TrackedConnection): () => void {
    this.open.add(c);
    return () => {
      this.open.delete(c);
    };
  }

  get size(): number {
    return this.open.size;
  }

  /** The reason `c` must close under the current policies, undefined when it may stay. */
  verdict(c: TrackedConnection): { reason: PolicyCloseReason; decision: PolicyDecision } | undefined {
    const deferL7 = !c.facts.http && (c.mode === 'inspected' || (c.inspectable?.() ?? false));
    const d = this.deps.decide({ ...c.facts, ...(deferL7 ? { deferL7: true } : {}) });
    if (!d.allow) return { reason: 'policy_denied', decision: d };
    if (c.mode === 'raw' && d.deferred) return { reason: 'l7_inspection', decision: d };
    return undefined;
  }

  /** Decides every open connection again and resets those that may not stay. */
  reevaluate(): ReevaluationResult {
    let checked = 0;
    let closed = 0;
    for (const c of [...this.open]) {
      if (!this.open.has(c)) continue; // closed by an earlier reset in this pass
      checked++;
      let v: ReturnType<ConnectionTracker['verdict']>;
      try {
        v = this.verdict(c);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'policy re-evaluation of an open connection failed; it stays open');
        continue;
      }
      if (!v) continue;
      this.open.delete(c);
      closed++;
      this.deps.closed?.inc({ direction: c.direction, reason: v.reason });
      const d = v.decision;
      this.log.info(
        {
          direction: c.direction,
          src: { identity: c.facts.sourceIdentity || 'plaintext', ip: c.facts.sourceIp },
          dst: { ip: c.facts.destination.ip, port: c.facts.destination.port, workload: c.facts.destinationWorkload?.uid },
          reason: v.reason,
          ...(d.allow ? {} : { denial: d.reason }),
          policy: d.policy ?? null,
        },
        v.reason === 'policy_denied'
          ? 'open connection closed: denied by a changed authorization policy'
          : 'open connection closed: its port now has request-level rules; the client reconnects and is inspected per request',
      );
      try {
        c.close();
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'closing a tracked connection failed');
      }
    }
    return { checked, closed };
  }
}

type PolicyInputs = {
  readonly authorizationPolicies?: unknown;
  readonly workloads?: unknown;
  readonly services?: unknown;
  readonly trafficPolicies?: unknown;
  readonly rootNamespace?: unknown;
  readonly trustDomainAliases?: readonly string[];
};

/**
 * Whether the policy-relevant part of the state changed between two snapshots (by identity: snapshots
 * are immutable, unchanged parts are shared): authorization policies, workloads (labels, policy
 * references), services and traffic policies (which ports are HTTP), and the MeshConfig's trust-domain aliases
 * (principals are expanded across them; compared by content).
 */
export function policyInputsChanged(prev: PolicyInputs | undefined, next: PolicyInputs): boolean {
  if (!prev) return true;
  return (
    prev.authorizationPolicies !== next.authorizationPolicies ||
    prev.workloads !== next.workloads ||
    prev.services !== next.services ||
    prev.trafficPolicies !== next.trafficPolicies ||
    prev.rootNamespace !== next.rootNamespace ||
    (prev.trustDomainAliases ?? []).join(',') !== (next.trustDomainAliases ?? []).join(',')
  );
}
