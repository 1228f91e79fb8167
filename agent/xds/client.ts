// Delta ADS client: subscribes to the mesh resource types, ACKs/NACKs per response (a bad resource rejects only itself), reconnects with backoff, emits whole MeshSnapshots.
import * as grpc from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest } from '../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { MeshSnapshot } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { ControlPlaneChannel } from './channel';
import type { WireDeltaResponse } from './wire';
import { parseResource, releaseSharingCaches } from './convert';
import { IncrementalSnapshot } from './incremental';
import { XDS_PARTIAL_VERSION_SUFFIX, XDS_TYPE_URLS, type XdsTypeUrl } from '../../core/xds/contract';
import { DEFAULT_TRUST_DOMAIN } from '../../core/identity/defaults';

/** google.rpc.Code INVALID_ARGUMENT: what a NACK reports for resources that failed validation. */
const NACK_CODE = grpc.status.INVALID_ARGUMENT;
/** Cap on the NACK message: an all-bad push must not produce a multi-megabyte request. */
/** A disconnect repeating for the same reason is warned about again after this long. */
const REPEATED_DISCONNECT_WARN_MS = 60_000;
const MAX_NACK_MESSAGE = 16 * 1024;

export interface XdsBackoff {
  /** First reconnect delay (ms). */
  readonly initialMs: number;
  /** Largest reconnect delay (ms). */
  readonly maxMs: number;
}

export interface XdsClientOptions {
  readonly channel: ControlPlaneChannel;
  /** This node's name, sent as DeltaDiscoveryRequest.node.id (the server trusts the token, not this). */
  readonly nodeName: string;
  /** Trust domain until a MeshConfig arrives. */
  readonly defaultTrustDomain?: string;
  /** Resource types to subscribe to (wildcard); default every type in XDS_TYPE_URLS. */
  readonly types?: readonly string[];
  readonly backoff?: Partial<XdsBackoff>;
  /**
   * The first snapshot is held back until every subscribed type has had its first response, so
   * consumers never see e.g. workloads without nodes; after this long it is emitted anyway.
   */
  readonly initialSyncTimeoutMs?: number;
  readonly logger?: Logger;
  /** Version reported in node.user_agent_version. */
  readonly version?: string;
  /** Random source in [0,1) for backoff jitter (tests). */
  readonly random?: () => number;
}

export interface XdsUpdate {
  readonly snapshot: MeshSnapshot;
  /** Cross-resource inconsistencies noticed while building (not errors of single resources). */
  readonly warnings: readonly string[];
}

export type XdsEvent =
  | { readonly kind: 'connected' }
  | { readonly kind: 'disconnected'; readonly code: grpc.status; readonly details: string; readonly retryInMs: number }
  | { readonly kind: 'ack'; readonly typeUrl: string; readonly nonce: string }
  | { readonly kind: 'nack'; readonly typeUrl: string; readonly nonce: string; readonly errors: readonly string[] };

export interface XdsRejection {
  readonly name: string;
  readonly version: string;
  readonly error: string;
}

export interface XdsTypeStatus {
  readonly typeUrl: string;
  /** Accepted resources held now. */
  readonly resources: number;
  readonly responses: number;
  readonly acks: number;
  readonly nacks: number;
  /** Nonce of the last response received (and answered). */
  readonly lastNonce?: string;
  readonly systemVersionInfo?: string;
  readonly lastAck?: { readonly nonce: string; readonly at: string };
  readonly lastNack?: { readonly nonce: string; readonly at: string; readonly errors: readonly string[] };
  /** Resources whose latest version was rejected (the previous version, if any, is still in use). */
  readonly rejected: readonly XdsRejection[];
}

export interface XdsClientStatus {
  readonly address: string;
  readonly nodeName: string;
  readonly connected: boolean;
  readonly connectedSince?: string;
  /** Every subscribed type has had at least one response since start. */
  readonly synced: boolean;
  readonly streamsStarted: number;
  readonly lastDisconnect?: { readonly at: string; readonly code: string; readonly details: string };
  /** When disconnected: the pending reconnect delay. */
  readonly nextRetryMs?: number;
  /** The last control_plane.identifier received (smesh control and istiod before 1.25 send it on every response). */
  readonly controlPlane?: string;
  readonly types: readonly XdsTypeStatus[];
}

export type XdsUpdateListener = (update: XdsUpdate) => void;
export type TrustAnchorsListener = (pems: readonly string[]) => void;
export type XdsEventListener = (event: XdsEvent) => void;

interface TypeState {
  readonly typeUrl: XdsTypeUrl;
  /** Resource name → version of every accepted resource (their values live in the IncrementalSnapshot). */
  readonly held: Map<string, string>;
  readonly rejected: Map<string, XdsRejection>;
  responses: number;
  acks: number;
  nacks: number;
  lastNonce?: string;
  systemVersionInfo?: string;
  lastAck?: { nonce: string; at: string };
  lastNack?: { nonce: string; at: string; errors: readonly string[] };
  /** Answered at least once since start (initial sync). */
  seen: boolean;
  /** The last response was a non-final chunk of a larger push: more of it follows. */
  partial: boolean;
}

type AdsCall = grpc.ClientDuplexStream<DeltaDiscoveryRequest, WireDeltaResponse>;

/** Delta ADS subscriber that owns the accepted resources and publishes snapshots built from them. */
export class XdsClient {
  private readonly opts: XdsClientOptions;
  private readonly log: Logger;
  private readonly types = new Map<string, TypeState>();
  private readonly backoff: XdsBackoff;
  private readonly random: () => number;
  private readonly updateListeners: XdsUpdateListener[] = [];
  private readonly anchorListeners: TrustAnchorsListener[] = [];
  private readonly eventListeners: XdsEventListener[] = [];
  private readonly syncWaiters: Array<() => void> = [];

  private call?: AdsCall;
  private connected = false;
  private connectedSince?: Date;
  private streamsStarted = 0;
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;
  private nextRetryMs?: number;
  private lastDisconnect?: { at: string; code: string; details: string };
  private lastDisconnectWarnAt = 0;
  /** Disconnects for the same reason since the last warning about it. */
  private repeatedDisconnects = 0;
  private controlPlane?: string;
  private syncTimer?: NodeJS.Timeout;
  private syncTimedOut = false;
  private emitScheduled?: NodeJS.Immediate;
  private dirty = false;
  private lastAnchors = '';
  private latest?: XdsUpdate;
  private readonly state: IncrementalSnapshot;
  private running = false;

  constructor(opts: XdsClientOptions) {
    this.opts = opts;
    this.log = opts.logger ?? silentLogger();
    this.backoff = { initialMs: opts.backoff?.initialMs ?? 100, maxMs: opts.backoff?.maxMs ?? 15_000 };
    this.random = opts.random ?? Math.random;
    this.state = new IncrementalSnapshot(opts.defaultTrustDomain ?? DEFAULT_TRUST_DOMAIN);
    for (const typeUrl of (opts.types ?? XDS_TYPE_URLS) as readonly XdsTypeUrl[]) {
      this.types.set(typeUrl, { typeUrl, held: new Map(), rejected: new Map(), responses: 0, acks: 0, nacks: 0, seen: false, partial: false });
    }
  }

  /** Opens the stream (and keeps reopening it until `close`). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const timeout = this.opts.initialSyncTimeoutMs ?? 10_000;
    this.syncTimer = setTimeout(() => {
      this.syncTimedOut = true;
      if (!this.synced()) {
        const missing = [...this.types.values()].filter((t) => !t.seen).map((t) => t.typeUrl);
        this.log.warn({ missing, timeoutMs: timeout }, 'xDS initial sync incomplete; publishing what has arrived');
      }
      this.scheduleEmit();
    }, timeout);
    this.syncTimer.unref();
    this.connect();
  }

  /** Stops the stream and timers; the last snapshot stays available through `latestUpdate`. */
  close(): void {
    this.running = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.emitScheduled) clearImmediate(this.emitScheduled);
    this.retryTimer = this.syncTimer = this.emitScheduled = undefined;
    const call = this.call;
    this.call = undefined;
    this.connected = false;
    call?.cancel();
  }

  /** Called with each new complete snapshot (give it to StateStore.replace). */
  onUpdate(listener: XdsUpdateListener): void {
    this.updateListeners.push(listener);
  }

  /** Called when MeshConfig.trust_anchors changes (give it to RemoteCa.setTrustAnchors). */
  onTrustAnchors(listener: TrustAnchorsListener): void {
    this.anchorListeners.push(listener);
  }

  /** Connection and ACK/NACK events, for metrics. */
  onEvent(listener: XdsEventListener): void {
    this.eventListeners.push(listener);
  }

  /** The last published update, if any. */
  latestUpdate(): XdsUpdate | undefined {
    return this.latest;
  }

  /** Resolves once every subscribed type has answered once (true), or after `timeoutMs` (false). */
  waitForSync(timeoutMs: number): Promise<boolean> {
    if (this.synced()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.syncWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  status(): XdsClientStatus {
    return {
      address: this.opts.channel.address,
      nodeName: this.opts.nodeName,
      connected: this.connected,
      ...(this.connectedSince ? { connectedSince: this.connectedSince.toISOString() } : {}),
      synced: this.synced(),
      streamsStarted: this.streamsStarted,
      ...(this.lastDisconnect ? { lastDisconnect: { ...this.lastDisconnect } } : {}),
      ...(this.nextRetryMs !== undefined && !this.connected ? { nextRetryMs: this.nextRetryMs } : {}),
      ...(this.controlPlane ? { controlPlane: this.controlPlane } : {}),
      types: [...this.types.values()].map((t) => ({
        typeUrl: t.typeUrl,
        resources: t.held.size,
        responses: t.responses,
        acks: t.acks,
        nacks: t.nacks,
        ...(t.lastNonce !== undefined ? { lastNonce: t.lastNonce } : {}),
        ...(t.systemVersionInfo ? { systemVersionInfo: t.systemVersionInfo } : {}),
        ...(t.lastAck ? { lastAck: { ...t.lastAck } } : {}),
        ...(t.lastNack ? { lastNack: { ...t.lastNack } } : {}),
        rejected: [...t.rejected.values()],
      })),
    };
  }

  /** Name → version of every accepted resource of a type (what a reconnect reports as initial_resource_versions). */
  resourceVersions(typeUrl: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, version] of this.types.get(typeUrl)?.held ?? []) out[name] = version;
    return out;
  }

  // ---- stream lifecycle ----

  private synced(): boolean {
    for (const t of this.types.values()) if (!t.seen) return false;
    return true;
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (!this.running) return;
    let call: AdsCall;
    try {
      call = this.opts.channel.adsClient().DeltaAggregatedResources();
    } catch (err) {
      this.onStreamEnd(undefined, { code: grpc.status.UNAVAILABLE, details: (err as Error).message });
      return;
    }
    this.call = call;
    this.streamsStarted++;
    let ended = false;
    const end = (code: grpc.status, details: string): void => {
      if (ended) return;
      ended = true;
      this.onStreamEnd(call, { code, details });
    };
    call.on('metadata', () => this.markConnected(call));
    call.on('data', (resp: WireDeltaResponse) => this.onResponse(call, resp));
    // grpc-js emits 'error' for a non-OK status, then 'status'; an OK status comes with 'end'.
    call.on('error', (err: grpc.ServiceError) => end(err.code ?? grpc.status.UNKNOWN, err.details ?? err.message));
    call.on('status', (s: grpc.StatusObject) => end(s.code, s.details));

    let first = true;
    for (const t of this.types.values()) {
      const req: DeltaDiscoveryRequest = {
        typeUrl: t.typeUrl,
        resourceNamesSubscribe: ['*'],
        initialResourceVersions: this.resourceVersions(t.typeUrl),
      };
      if (first) {
        req.node = { id: this.opts.nodeName, userAgentName: 'smesh', userAgentVersion: this.opts.version ?? '' };
        first = false;
      }
      call.write(req);
    }
    this.log.debug({ address: this.opts.channel.address, attempt: this.failures + 1 }, 'xDS stream opened');
  }

  private markConnected(call: AdsCall): void {
    if (call !== this.call || this.connected) return;
    this.connected = true;
    this.connectedSince = new Date();
    this.nextRetryMs = undefined;
    this.log.info({ address: this.opts.channel.address, streams: this.streamsStarted }, 'connected to control plane');
    this.emitEvent({ kind: 'connected' });
  }

  private onStreamEnd(call: AdsCall | undefined, s: { code: grpc.status; details: string }): void {
    if (call !== undefined && call !== this.call) return; // an old stream winding down
    this.call = undefined;
    const wasConnected = this.connected;
    this.connected = false;
    this.connectedSince = undefined;
    for (const t of this.types.values()) t.partial = false; // a push cut short: the reconnect's sync completes it
    if (!this.running) return;
    // A stream that delivered data was healthy: start the backoff over.
    if (wasConnected) this.failures = 0;
    const delay = this.retryDelay(this.failures++);
    this.nextRetryMs = delay;
    const codeName = grpc.status[s.code] ?? String(s.code);
    // The same refusal over and over (a revoked token, a control plane that is down) is warned about when it starts
    // and then once a minute, with how often it repeated; a new reason is warned about at once.
    const same = this.lastDisconnect !== undefined && this.lastDisconnect.code === codeName && this.lastDisconnect.details === s.details;
    const now = Date.now();
    let quiet = false;
    let suppressed = 0;
    if (!same || now - this.lastDisconnectWarnAt >= REPEATED_DISCONNECT_WARN_MS) {
      suppressed = same ? this.repeatedDisconnects : 0;
      this.lastDisconnectWarnAt = now;
      this.repeatedDisconnects = 0;
    } else {
      this.repeatedDisconnects++;
      quiet = true;
    }
    this.lastDisconnect = { at: new Date().toISOString(), code: codeName, details: s.details };
    const hint =
      s.code === grpc.status.UNAUTHENTICATED
        ? 'check the agent token (--token-file) against the control plane --tokens file'
        : s.code === grpc.status.UNAVAILABLE
          ? 'is smesh control running and reachable, and does its certificate chain to --ca-cert?'
          : undefined;
    const fields = { address: this.opts.channel.address, code: codeName, details: s.details, retryInMs: delay, ...(hint ? { hint } : {}) };
    if (quiet) this.log.debug({ ...fields, repeated: this.repeatedDisconnects }, 'xDS stream closed again for the same reason; reconnecting');
    else this.log.warn(suppressed > 0 ? { ...fields, repeatedSinceLastWarning: suppressed } : fields, 'xDS stream closed; keeping the last received state and reconnecting');
    this.emitEvent({ kind: 'disconnected', code: s.code, details: s.details, retryInMs: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }

  /** Exponential backoff with "equal jitter": half fixed, half random, bounded by maxMs. */
  private retryDelay(failures: number): number {
    const ceiling = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(failures, 30));
    return Math.round(ceiling / 2 + (ceiling / 2) * this.random());
  }

  // ---- responses ----

  private onResponse(call: AdsCall, resp: WireDeltaResponse): void {
    if (call !== this.call) return;
    this.markConnected(call);
    const controlPlane = resp.controlPlane?.identifier;
    if (controlPlane && controlPlane !== this.controlPlane) {
      this.controlPlane = controlPlane;
      this.log.info({ controlPlane }, 'control plane identified itself');
    }
    const t = this.types.get(resp.typeUrl);
    if (!t) {
      const error = `type_url: ${JSON.stringify(resp.typeUrl)} was not subscribed to by this agent`;
      this.send(call, { typeUrl: resp.typeUrl, responseNonce: resp.nonce, errorDetail: { code: NACK_CODE, message: error } });
      this.log.warn({ typeUrl: resp.typeUrl, nonce: resp.nonce }, 'xDS response for an unsubscribed type; NACKed');
      return;
    }
    t.responses++;
    t.lastNonce = resp.nonce;
    // A chunk of a larger push: apply and ACK it, but publish only once its last chunk arrives.
    const partial = resp.systemVersionInfo.endsWith(XDS_PARTIAL_VERSION_SUFFIX);
    t.partial = partial;
    t.systemVersionInfo = partial ? resp.systemVersionInfo.slice(0, -XDS_PARTIAL_VERSION_SUFFIX.length) : resp.systemVersionInfo;
    let changed = !t.seen && !partial;
    const errors: string[] = [];
    for (const r of resp.resources) {
      if (!r.resource && r.name !== '' && t.held.has(r.name)) continue; // TTL heartbeat: nothing new
      const result = parseResource(t.typeUrl, r.name, r.resource);
      if (result.ok) {
        t.held.set(r.name, r.version);
        this.state.set(result.value);
        if (t.rejected.size > 0) t.rejected.delete(r.name);
        changed = true;
      } else {
        errors.push(result.error);
        t.rejected.set(r.name, { name: r.name, version: r.version, error: result.error });
      }
    }
    for (const name of resp.removedResources) {
      if (t.held.delete(name)) {
        this.state.remove(t.typeUrl, name);
        changed = true;
      }
      t.rejected.delete(name);
    }
    const at = new Date().toISOString();
    if (errors.length === 0) {
      t.acks++;
      t.lastAck = { nonce: resp.nonce, at };
      this.send(call, { typeUrl: t.typeUrl, responseNonce: resp.nonce });
      this.emitEvent({ kind: 'ack', typeUrl: t.typeUrl, nonce: resp.nonce });
    } else {
      t.nacks++;
      t.lastNack = { nonce: resp.nonce, at, errors };
      let message = `rejected ${errors.length} of ${resp.resources.length} resources (others applied): ${errors.join('; ')}`;
      if (message.length > MAX_NACK_MESSAGE) message = message.slice(0, MAX_NACK_MESSAGE - 3) + '...';
      this.send(call, { typeUrl: t.typeUrl, responseNonce: resp.nonce, errorDetail: { code: NACK_CODE, message } });
      this.log.warn({ typeUrl: t.typeUrl, nonce: resp.nonce, errors }, 'xDS resources rejected; their previous versions stay in use');
      this.emitEvent({ kind: 'nack', typeUrl: t.typeUrl, nonce: resp.nonce, errors });
    }
    if (changed) this.dirty = true;
    if (partial) return;
    if (!t.seen) {
      t.seen = true;
      if (this.synced()) {
        if (this.syncTimer) clearTimeout(this.syncTimer);
        this.log.info({ streams: this.streamsStarted }, 'xDS initial sync complete');
        // Publish before waking the waiters, so that whoever awaited the sync finds the complete state.
        if (this.emitScheduled) clearImmediate(this.emitScheduled);
        this.emitScheduled = undefined;
        this.publish();
        for (const w of this.syncWaiters.splice(0)) w();
      }
    }
    if (changed) this.scheduleEmit();
  }

  private send(call: AdsCall, req: DeltaDiscoveryRequest): void {
    try {
      call.write(req);
    } catch (err) {
      // The stream is going away; its status event will schedule the reconnect.
      this.log.debug({ err: (err as Error).message }, 'xDS write failed');
    }
  }

  // ---- publishing ----

  /** Coalesces the responses of one I/O turn into one snapshot. */
  private scheduleEmit(): void {
    if (this.emitScheduled || !this.running) return;
    if (!this.synced() && !this.syncTimedOut) return;
    if (!this.dirty) return;
    for (const t of this.types.values()) if (t.partial) return; // the rest of a push is on its way
    this.emitScheduled = setImmediate(() => {
      this.emitScheduled = undefined;
      this.publish();
    });
  }

  private publish(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const built = this.state.build();
    if (built.warnings.length > 0) this.log.warn({ warnings: built.warnings }, 'xDS resources are inconsistent with each other');
    const update: XdsUpdate = { snapshot: built.snapshot, warnings: built.warnings };
    this.latest = update;
    const anchors = built.trustAnchors.join('');
    if (anchors !== '' && anchors !== this.lastAnchors) {
      this.lastAnchors = anchors;
      for (const l of this.anchorListeners) this.safely('trust anchors listener', () => l(built.trustAnchors));
    }
    for (const l of this.updateListeners) this.safely('update listener', () => l(update));
    // Between pushes the string-sharing caches of the decoder and parser only hold memory (~2 MiB at 60k resources):
    // what they shared is in the state now. A push still arriving in chunks keeps them.
    let midPush = false;
    for (const t of this.types.values()) if (t.partial) midPush = true;
    if (!midPush) releaseSharingCaches();
  }

  private emitEvent(e: XdsEvent): void {
    for (const l of this.eventListeners) this.safely('event listener', () => l(e));
  }

  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: (err as Error).message, what }, 'xDS listener failed');
    }
  }
}
