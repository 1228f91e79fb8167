// The agent's operational HTTP servers: Prometheus /metrics (15020), readiness /healthz/ready (15021), localhost admin (15000).
import * as http from 'node:http';
import * as v8 from 'node:v8';
import type { AddressInfo } from 'node:net';
import { boundAddress, listenOrFail } from '../../core/telemetry/listen';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshMetrics } from '../telemetry/metrics';

export type ReadinessComponent = 'bpf' | 'listeners' | 'certificates' | (string & {});
export const DEFAULT_READINESS_COMPONENTS: readonly ReadinessComponent[] = ['bpf', 'listeners', 'certificates'];

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface AdminServersOptions {
  readonly metrics: MeshMetrics;
  /** Default 0.0.0.0:15020. */
  readonly metricsListen?: ListenAddress;
  /** Default 0.0.0.0:15021. */
  readonly readyListen?: ListenAddress;
  /** Default 127.0.0.1:15000 (never expose it beyond localhost). */
  readonly adminListen?: ListenAddress;
  /** Components that must all be marked ready before /healthz/ready answers 200. */
  readonly requiredComponents?: readonly ReadinessComponent[];
  /** JSON-serialisable view of the agent's state for /config_dump (no key material). */
  readonly configDump: () => unknown;
  /** Runtime log level control (LogHub). */
  readonly logging: { readonly level: string; setLevel(level: string): void };
  /** Called once on POST /quitquitquit, after the response is sent. */
  readonly onQuit: () => void;
  /** The idle-time memory reclaim's state (last RSS before/after) for /memory. */
  readonly memoryReclaim?: () => unknown;
  readonly logger?: Logger;
}

/** Metrics, readiness and admin servers; bind all in `start()` before reporting readiness. */
export class AdminServers {
  private readonly servers: Array<{ name: string; server: http.Server; listen: ListenAddress }> = [];
  private readonly required: Set<string>;
  private readonly ready = new Set<string>();
  private readonly log: Logger;
  private quitting = false;

  constructor(private readonly opts: AdminServersOptions) {
    this.required = new Set(opts.requiredComponents ?? DEFAULT_READINESS_COMPONENTS);
    this.log = opts.logger ?? silentLogger();
  }

  markReady(component: ReadinessComponent): void {
    if (!this.ready.has(component)) this.log.info({ component }, 'component ready');
    this.ready.add(component);
  }

  markNotReady(component: ReadinessComponent): void {
    this.ready.delete(component);
  }

  isReady(): boolean {
    for (const c of this.required) if (!this.ready.has(c)) return false;
    return true;
  }

  /** Components still missing for readiness. */
  notReady(): string[] {
    return [...this.required].filter((c) => !this.ready.has(c));
  }

  /** Readiness as /ready shows it: every required component and whether it is ready; process facts for `smesh status`. */
  readiness(): { ready: boolean; components: Record<string, boolean>; pid: number; uptimeSeconds: number; nodeVersion: string } {
    const components: Record<string, boolean> = {};
    for (const c of this.required) components[c] = this.ready.has(c);
    return { ready: this.isReady(), components, pid: process.pid, uptimeSeconds: Math.round(process.uptime()), nodeVersion: process.version };
  }

  /** Bound addresses by server name ('metrics' | 'ready' | 'admin'). */
  addresses(): Record<string, AddressInfo> {
    const out: Record<string, AddressInfo> = {};
    for (const s of this.servers) {
      const a = s.server.address();
      if (a && typeof a !== 'string') out[s.name] = a;
    }
    return out;
  }

  async start(): Promise<void> {
    const metricsListen = this.opts.metricsListen ?? { host: '0.0.0.0', port: 15020 };
    const readyListen = this.opts.readyListen ?? { host: '0.0.0.0', port: 15021 };
    const adminListen = this.opts.adminListen ?? { host: '127.0.0.1', port: 15000 };
    try {
      await this.bind('metrics', metricsListen, (req, res) => this.handleMetrics(req, res));
      await this.bind('ready', readyListen, (req, res) => this.handleReady(req, res));
      await this.bind('admin', adminListen, (req, res) => this.handleAdmin(req, res));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const all = this.servers.splice(0);
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((r) => {
            s.server.close(() => r());
            s.server.closeAllConnections();
          }),
      ),
    );
  }

  private async bind(name: string, listen: ListenAddress, handler: http.RequestListener): Promise<void> {
    const server = http.createServer((req, res) => {
      try {
        handler(req, res);
      } catch (err) {
        this.log.error({ err: (err as Error).message, url: req.url }, `${name} handler failed`);
        if (!res.headersSent) send(res, 500, 'internal error\n');
      }
    });
    server.keepAliveTimeout = 5_000;
    await listenOrFail(server, listen.host, listen.port, `${name} server`, 'is another agent running, or the port in use?', this.log);
    this.servers.push({ name, server, listen });
    this.log.info({ server: name, address: boundAddress(server) }, 'listening');
  }

  private handleMetrics(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz/ready') return this.handleReady(req, res);
    if (path !== '/metrics' && path !== '/stats/prometheus') return send(res, 404, 'not found\n');
    this.serveMetrics(res);
  }

  private serveMetrics(res: http.ServerResponse): void {
    this.opts.metrics.text().then(
      (body) => send(res, 200, body, this.opts.metrics.contentType),
      (err: Error) => send(res, 500, `metrics collection failed: ${err.message}\n`),
    );
  }

  private handleReady(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz/ready') return send(res, 404, 'not found\n');
    if (this.isReady()) return send(res, 200, 'ready\n');
    return send(res, 503, `not ready: waiting for ${this.notReady().join(', ')}\n`);
  }

  private handleAdmin(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    switch (url.pathname) {
      case '/config_dump':
        return send(res, 200, JSON.stringify(this.opts.configDump(), jsonReplacer, 2) + '\n', 'application/json');
      case '/logging': {
        const level = url.searchParams.get('level');
        if (level === null) return send(res, 200, `current log level: ${this.opts.logging.level}\n`);
        try {
          this.opts.logging.setLevel(level);
        } catch (err) {
          return send(res, 400, `${(err as Error).message}\n`);
        }
        this.log.info({ level }, 'log level changed');
        return send(res, 200, `log level: ${level}\n`);
      }
      case '/quitquitquit':
        if (req.method !== 'POST') return send(res, 405, 'use POST\n');
        send(res, 200, 'OK\n');
        if (!this.quitting) {
          this.quitting = true;
          this.log.info('quit requested via admin /quitquitquit');
          setImmediate(() => this.opts.onQuit());
        }
        return;
      case '/memory':
        return send(res, 200, JSON.stringify({ ...memoryReport(), reclaim: this.opts.memoryReclaim?.() }, null, 2) + '\n', 'application/json');
      // Read-only views for `smesh status` / `smesh top`, so that operator commands need only this localhost port.
      case '/ready':
        return send(res, 200, JSON.stringify(this.readiness()) + '\n', 'application/json');
      case '/stats/prometheus':
        return this.serveMetrics(res);
      case '/':
        return send(res, 200, 'smesh admin: /config_dump /memory /ready /stats/prometheus /logging?level= /quitquitquit (POST)\n');
      default:
        return send(res, 404, 'not found\n');
    }
  }
}

/** Envoy's /memory, for a Node process: where the resident memory is (bytes). */
function memoryReport(): Record<string, unknown> {
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    heapSpaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((sp) => [sp.space_name, { size: sp.space_size, used: sp.space_used_size }])),
  };
}

function send(res: http.ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Maps and bigints appear in state; render them as JSON values. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  if (typeof value === 'bigint') return value.toString();
  return value;
}
