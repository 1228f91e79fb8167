// The HTTP/1.1 engine's own counters (--http-engine), shared by its outbound and inbound users: one registration per metrics registry.
import type { MeshMetrics } from '../telemetry/metrics';
import { Counter, type Registry } from '../../core/telemetry/prom';

export interface HttpEngineCounters {
  /** Requests the engine served, by direction (outbound: source side, inbound: destination side) and outcome. */
  readonly served: Counter<'direction' | 'outcome'>;
  /** Connections of HTTP ports kept on node:http, by direction and reason. */
  readonly fallbacks: Counter<'direction' | 'reason'>;
  /** Upstream connections the outbound's bridge carried into a tunnel, by who relays their bytes (native: the HBONE engine, js: the agent's thread) and how they reach it (loopback TCP, or an engine socketpair). */
  readonly bridgeConnections: Counter<'relay' | 'via'>;
  /** Bytes the loopback bridge carried, by relay and direction (to_tunnel: requests, from_tunnel: responses). */
  readonly bridgeBytes: Counter<'relay' | 'direction'>;
}

const byRegistry = new WeakMap<Registry, HttpEngineCounters>();

/** The engine counters on `metrics`' registry (created on first use); undefined without metrics. */
export function httpEngineCounters(metrics: MeshMetrics | undefined): HttpEngineCounters | undefined {
  if (!metrics) return undefined;
  let c = byRegistry.get(metrics.registry);
  if (!c) {
    const registers = [metrics.registry];
    c = {
      served: new Counter({
        name: 'smesh_http_engine_requests_total',
        help: 'HTTP/1.1 requests served by the native HTTP/1.1 engine (--http-engine), by direction and outcome',
        labelNames: ['direction', 'outcome'],
        registers,
      }),
      fallbacks: new Counter({
        name: 'smesh_http_engine_fallbacks_total',
        help: 'HTTP-port connections kept on node:http with --http-engine, by direction and reason',
        labelNames: ['direction', 'reason'],
        registers,
      }),
      bridgeConnections: new Counter({
        name: 'smesh_http_engine_bridge_connections_total',
        help: 'Upstream connections of the HTTP/1.1 engine carried into HBONE or sidecar mTLS tunnels, by relay (native: the HBONE engine moves the bytes, js: the agent thread does) and via (loopback: a 127.0.0.1 bridge listener, socketpair: handed from engine to engine)',
        labelNames: ['relay', 'via'],
        registers,
      }),
      bridgeBytes: new Counter({
        name: 'smesh_http_engine_bridge_bytes_total',
        help: 'Bytes the HTTP/1.1 engine bridge carried into and out of tunnels, by relay (native, js) and direction (to_tunnel, from_tunnel)',
        labelNames: ['relay', 'direction'],
        registers,
      }),
    };
    byRegistry.set(metrics.registry, c);
  }
  return c;
}
