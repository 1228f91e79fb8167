// Delta ADS server (envoy.service.discovery.v3 DeltaAggregatedResources): per-stream, per-type subscription and version tracking, ACK/NACK, incremental pushes scoped to the authenticated node.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../core/telemetry/logger';
import type { AggregatedDiscoveryServiceHandlers } from '../proto/generated/envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { DeltaDiscoveryRequest__Output } from '../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { DeltaDiscoveryResponse } from '../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryResponse';
import type { Authenticated, TokenAuthenticator } from './auth';
import type { ControlMetrics } from './metrics';
import type { Registry } from './registry';
import type { ResourceDiff, ResourceEntry } from './xds-resources';
import { XDS_PARTIAL_VERSION_SUFFIX } from '../core/xds/contract';

type DeltaCall = grpc.ServerDuplexStream<DeltaDiscoveryRequest__Output, DeltaDiscoveryResponse>;

/** At most this many unanswered nonces are remembered per stream (a client that never ACKs cannot grow memory). */
const MAX_OUTSTANDING_NONCES = 1024;

/**
 * Resources per DeltaDiscoveryResponse. A larger push (the initial sync at 10k services + 50k pods) goes out as
 * several responses, written as the stream drains, so neither side materialises one giant message. Every response
 * but the last of a push carries XDS_PARTIAL_VERSION_SUFFIX in system_version_info; the agent treats the push
 * (and its initial sync) as complete only at the last one.
 */
export const XDS_CHUNK_RESOURCES = 2000;

/** Subscription and delivery state of one resource type on one stream. */
interface TypeState {
  /** Subscribed to every resource of the type ("*", or the legacy empty first request). */
  wildcard: boolean;
  /** Explicitly subscribed names. */
  readonly names: Set<string>;
  /** What the client holds: name → version (from initial_resource_versions, then from what we sent). */
  readonly known: Map<string, string>;
  /** Nonce of the latest response of this type not yet ACKed or NACKed. */
  pendingNonce?: string;
}

export interface XdsServerDeps {
  readonly registry: Registry;
  readonly auth: TokenAuthenticator;
  readonly metrics: ControlMetrics;
  readonly logger: Logger;
  /** control_plane.identifier of every response (see controlPlaneIdentifier); none when absent. */
  readonly controlPlaneIdentifier?: string;
}

/**
 * Which control plane instance answered, in istiod's shape (its IstioControlPlaneInstance as JSON:
 * Component, ID, Info with Istio's BuildInfo keys), so tooling that reads istiod's identifier reads
 * ours. `id`: the instance (istiod uses its pod name; we use the host name, which is the pod name
 * in Kubernetes). Build facts smesh does not record are "unknown"; golang_version is empty.
 */
export function controlPlaneIdentifier(id: string, version: string): string {
  return JSON.stringify({ Component: 'smesh-control', ID: id, Info: { version, revision: 'unknown', golang_version: '', status: 'unknown', tag: 'unknown' } });
}

/** Open streams, for introspection and tests. */
export interface StreamInfo {
  readonly id: string;
  readonly node: string;
  readonly types: ReadonlyArray<{ typeUrl: string; wildcard: boolean; names: string[]; known: number; pendingNonce?: string }>;
}

/** Why a stream of a revoked token is closed (the status details the agent logs; names no token). */
export const REVOKED_TOKEN_DETAILS = 'bearer token revoked: it is no longer listed for this node in the control plane --tokens file';

/**
 * Builds the AggregatedDiscoveryService implementation; `streams()` lists the open ones. Every change of the
 * token table re-checks the open streams: one whose token was revoked (or now names another node) is ended
 * with UNAUTHENTICATED, logged and counted; the others are not touched.
 */
export function createAdsService(deps: XdsServerDeps): { handlers: AggregatedDiscoveryServiceHandlers; streams(): StreamInfo[]; closeAll(): void } {
  const open = new Set<AdsStream>();
  const revokeStale = (): void => {
    for (const s of [...open]) {
      if (deps.auth.stillValid(s.authenticated)) continue;
      s.revoke();
    }
  };
  const unsubscribeAuth = deps.auth.onChange(revokeStale);
  const handlers: AggregatedDiscoveryServiceHandlers = {
    DeltaAggregatedResources(call: DeltaCall) {
      const who = deps.auth.authenticateKeyed(call.metadata);
      if (!who) {
        deps.metrics.xdsUnauthenticated.inc();
        deps.logger.warn(
          { peer: call.getPeer(), rpc: 'DeltaAggregatedResources' },
          'refused xDS stream: missing or unknown bearer token (agent --token-file must hold a token listed in control --tokens)',
        );
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing or unknown bearer token' });
        return;
      }
      const stream = new AdsStream(call, who, deps, () => open.delete(stream));
      open.add(stream);
    },
    StreamAggregatedResources(call) {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'smesh control serves only the delta protocol (DeltaAggregatedResources)' });
    },
  };
  return {
    handlers,
    streams: () => [...open].map((s) => s.info()),
    closeAll: () => {
      unsubscribeAuth();
      for (const s of [...open]) s.cancel('control plane shutting down');
    },
  };
}

class AdsStream {
  readonly id = randomBytes(4).toString('hex');
  private readonly types = new Map<string, TypeState>();
  /** nonce → type URL of responses sent and not yet answered. */
  private readonly outstanding = new Map<string, string>();
  private nonceCounter = 0;
  private closed = false;
  /** Responses waiting for the stream to drain (built lazily: only the resource list is held). */
  private readonly queue: Array<{ typeUrl: string; version: string; resources: ResourceEntry[]; removed: string[]; partial: boolean }> = [];
  private draining = false;
  private readonly log: Logger;
  private readonly unsubscribe: () => void;

  private readonly node: string;
  private readonly controlPlane?: { identifier: string };

  constructor(
    private readonly call: DeltaCall,
    readonly authenticated: Authenticated,
    private readonly deps: XdsServerDeps,
    private readonly onClose: () => void,
  ) {
    const node = authenticated.node;
    this.node = node;
    if (deps.controlPlaneIdentifier) this.controlPlane = { identifier: deps.controlPlaneIdentifier };
    this.log = deps.logger.child({ peerNode: node, stream: this.id });
    this.log.info({ peer: call.getPeer() }, 'xDS stream opened');
    deps.metrics.xdsStreams.inc({ node });
    this.unsubscribe = deps.registry.onChange((diff) => this.onRegistryChange(diff));
    call.on('data', (req: DeltaDiscoveryRequest__Output) => {
      try {
        this.onRequest(req);
      } catch (err) {
        // A bad request must not take down the process; drop only this stream.
        this.log.error({ err }, 'closing xDS stream after an internal error');
        this.fail(grpc.status.INTERNAL, `internal error: ${(err as Error).message}`);
      }
    });
    call.on('end', () => {
      this.close('client ended the stream');
      call.end();
    });
    call.on('cancelled', () => this.close('cancelled'));
    call.on('error', (err) => this.close(`stream error: ${(err as Error).message}`));
    call.on('close', () => this.close('closed'));
  }

  info(): StreamInfo {
    return {
      id: this.id,
      node: this.node,
      types: [...this.types].map(([typeUrl, st]) => ({ typeUrl, wildcard: st.wildcard, names: [...st.names], known: st.known.size, pendingNonce: st.pendingNonce })),
    };
  }

  cancel(reason: string): void {
    this.fail(grpc.status.UNAVAILABLE, reason);
  }

  /** Ends the stream because its token no longer authenticates its node. */
  revoke(): void {
    if (this.closed) return;
    this.deps.metrics.xdsRevoked.inc({ node: this.node });
    this.log.warn({ peer: this.call.getPeer() }, 'closing xDS stream: its bearer token was revoked (removed from the tokens file or moved to another node)');
    this.fail(grpc.status.UNAUTHENTICATED, REVOKED_TOKEN_DETAILS);
  }

  private fail(code: grpc.status, details: string): void {
    if (this.closed) return;
    this.close(details);
    this.call.emit('error', { code, details });
  }

  private close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.deps.metrics.xdsStreams.dec({ node: this.node });
    this.onClose();
    this.log.info({ reason }, 'xDS stream closed');
  }

  private onRequest(req: DeltaDiscoveryRequest__Output): void {
    if (this.closed) return;
    const typeUrl = req.typeUrl;
    if (!typeUrl) {
      this.log.warn('ignoring DeltaDiscoveryRequest without type_url');
      return;
    }
    if (req.node?.id && req.node.id !== this.node) {
      // The token decides who the client is; node.id is informational only.
      this.log.debug({ claimed: req.node.id }, 'request node.id differs from the authenticated node; using the authenticated node');
    }

    let st = this.types.get(typeUrl);
    const first = st === undefined;
    if (!st) {
      st = { wildcard: false, names: new Set(), known: new Map(Object.entries(req.initialResourceVersions ?? {})) };
      this.types.set(typeUrl, st);
      // Legacy wildcard: a first request that names nothing subscribes to everything.
      if (req.resourceNamesSubscribe.length === 0) st.wildcard = true;
    }

    if (req.responseNonce) this.onAckOrNack(typeUrl, st, req);

    let wildcardAdded = false;
    const newlySubscribed: string[] = [];
    for (const name of req.resourceNamesSubscribe) {
      if (name === '*') {
        if (!st.wildcard) wildcardAdded = true;
        st.wildcard = true;
      } else if (!st.names.has(name)) {
        st.names.add(name);
        newlySubscribed.push(name);
      }
    }
    for (const name of req.resourceNamesUnsubscribe) {
      if (name === '*') {
        st.wildcard = false;
        // The client drops what it no longer asks for; forget it so a re-subscribe resends.
        for (const known of [...st.known.keys()]) if (!st.names.has(known)) st.known.delete(known);
      } else {
        st.names.delete(name);
        if (!st.wildcard) st.known.delete(name);
      }
    }

    if (first || wildcardAdded) {
      this.syncAll(typeUrl, st, { alwaysRespond: first });
    } else if (newlySubscribed.length > 0) {
      this.syncNames(typeUrl, st, newlySubscribed, { reportAbsent: true });
    }
  }

  private onAckOrNack(typeUrl: string, st: TypeState, req: DeltaDiscoveryRequest__Output): void {
    const nonce = req.responseNonce;
    const sentType = this.outstanding.get(nonce);
    if (sentType === undefined || sentType !== typeUrl) {
      this.log.debug({ typeUrl, nonce }, 'ignoring ACK/NACK for an unknown or already answered nonce');
      return;
    }
    // Answers arrive in order: this one settles every earlier response too.
    for (const n of [...this.outstanding.keys()]) {
      const t = this.outstanding.get(n);
      if (t === typeUrl) this.outstanding.delete(n);
      if (n === nonce) break;
    }
    if (st.pendingNonce === nonce) st.pendingNonce = undefined;
    const err = req.errorDetail;
    if (err && (err.code !== 0 || err.message)) {
      // NACK: the client keeps its previous resources. We keep the stream and our view of what
      // was sent (so the rejected version is never resent); the next change produces a new version.
      this.deps.metrics.xdsNacks.inc({ type_url: typeUrl });
      this.log.warn({ typeUrl, nonce, code: err.code, error: err.message }, 'agent rejected an xDS response (NACK)');
    } else {
      this.log.debug({ typeUrl, nonce }, 'ACK');
    }
  }

  private interested(st: TypeState, name: string): boolean {
    return st.wildcard || st.names.has(name);
  }

  /** Brings the client's whole view of one type up to date (initial request, reconnect, wildcard). */
  private syncAll(typeUrl: string, st: TypeState, opts: { alwaysRespond: boolean }): void {
    const current = this.deps.registry.resources(this.node, typeUrl);
    const toSend: ResourceEntry[] = [];
    const removed: string[] = [];
    for (const [name, e] of current) {
      if (this.interested(st, name) && st.known.get(name) !== e.version) toSend.push(e);
    }
    for (const name of st.known.keys()) {
      if (!current.has(name) || !this.interested(st, name)) removed.push(name);
    }
    // Explicitly requested names that do not exist are reported as removed (xDS: "does not exist").
    for (const name of st.names) {
      if (!current.has(name) && !st.known.has(name) && !removed.includes(name)) removed.push(name);
    }
    if (toSend.length > 0 || removed.length > 0 || opts.alwaysRespond) this.send(typeUrl, st, toSend, removed);
  }

  /** Sends whatever differs for just these names. */
  private syncNames(typeUrl: string, st: TypeState, names: Iterable<string>, opts: { reportAbsent: boolean }): void {
    const toSend: ResourceEntry[] = [];
    const removed: string[] = [];
    for (const name of names) {
      if (!this.interested(st, name)) continue;
      const e = this.deps.registry.get(this.node, typeUrl, name);
      if (e) {
        if (st.known.get(name) !== e.version) toSend.push(e);
      } else if (st.known.has(name) || opts.reportAbsent) {
        removed.push(name);
      }
    }
    if (toSend.length > 0 || removed.length > 0) this.send(typeUrl, st, toSend, removed);
  }

  private onRegistryChange(diff: ResourceDiff): void {
    if (this.closed) return;
    for (const [typeUrl, d] of diff) {
      const st = this.types.get(typeUrl);
      if (!st) continue;
      this.syncNames(typeUrl, st, [...d.added, ...d.changed, ...d.removed], { reportAbsent: false });
    }
  }

  private send(typeUrl: string, st: TypeState, resources: ResourceEntry[], removed: string[]): void {
    for (const e of resources) st.known.set(e.name, e.version);
    for (const name of removed) st.known.delete(name);
    const version = String(this.deps.registry.generation);
    // Chunks of XDS_CHUNK_RESOURCES; removals ride on the last one (which is also the only one when small).
    for (let i = 0; i === 0 || i < resources.length; i += XDS_CHUNK_RESOURCES) {
      const last = i + XDS_CHUNK_RESOURCES >= resources.length;
      this.queue.push({ typeUrl, version, resources: resources.slice(i, i + XDS_CHUNK_RESOURCES), removed: last ? removed : [], partial: !last });
    }
    this.pump();
  }

  /** Writes queued responses while the stream accepts them; resumes on 'drain'. */
  private pump(): void {
    if (this.draining) return;
    while (this.queue.length > 0 && !this.closed) {
      const q = this.queue.shift()!;
      const st = this.types.get(q.typeUrl)!;
      const nonce = `${this.id}-${++this.nonceCounter}`;
      const response: DeltaDiscoveryResponse = {
        systemVersionInfo: q.partial ? q.version + XDS_PARTIAL_VERSION_SUFFIX : q.version,
        typeUrl: q.typeUrl,
        nonce,
        resources: q.resources.map((e) => ({ name: e.name, version: e.version, resource: e.resource })),
        removedResources: q.removed,
        ...(this.controlPlane ? { controlPlane: this.controlPlane } : {}),
      };
      st.pendingNonce = nonce;
      this.outstanding.set(nonce, q.typeUrl);
      if (this.outstanding.size > MAX_OUTSTANDING_NONCES) this.outstanding.delete(this.outstanding.keys().next().value!);
      this.deps.metrics.xdsPushes.inc({ type_url: q.typeUrl });
      this.log.debug({ typeUrl: q.typeUrl, nonce, resources: q.resources.length, removed: q.removed.length, partial: q.partial }, 'xDS push');
      if (!this.call.write(response) && this.queue.length > 0) {
        this.draining = true;
        this.call.once('drain', () => {
          this.draining = false;
          this.pump();
        });
        return;
      }
    }
    if (this.closed) this.queue.length = 0;
  }
}
