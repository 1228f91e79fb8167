// The operational HTTP server of `smesh control` (--metrics-listen, default 0.0.0.0:15014): Prometheus /metrics and /healthz/ready.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { boundAddress, listenOrFail } from '../core/telemetry/listen';
import { silentLogger, type Logger } from '../core/telemetry/logger';
import type { ControlMetrics } from './metrics';

export const DEFAULT_CONTROL_METRICS_LISTEN = '0.0.0.0:15014';

export interface ControlAdminOptions {
  readonly metrics: ControlMetrics;
  readonly host: string;
  /** 0 picks a free port (see `port()`). */
  readonly port: number;
  /** /healthz/ready answers 200 while this returns true. */
  readonly ready: () => boolean;
  readonly logger?: Logger;
}

function send(res: http.ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** One HTTP server: GET /metrics (the control plane's private prom-client registry) and GET /healthz/ready. */
export class ControlAdminServer {
  private server?: http.Server;
  private readonly log: Logger;

  constructor(private readonly opts: ControlAdminOptions) {
    this.log = opts.logger ?? silentLogger();
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    await listenOrFail(server, this.opts.host, this.opts.port, 'control metrics server', 'is another smesh control running, or the port in use? see --metrics-listen', this.log);
    this.server = server;
    this.log.info({ address: boundAddress(server) }, 'metrics server listening');
  }

  port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a !== 'string' ? (a as AddressInfo).port : undefined;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
    switch (path) {
      case '/metrics':
      case '/stats/prometheus':
        this.opts.metrics.registry.metrics().then(
          (body) => send(res, 200, body, this.opts.metrics.registry.contentType),
          (err: Error) => send(res, 500, `metrics collection failed: ${err.message}\n`),
        );
        return;
      case '/healthz/ready':
        return this.opts.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
      case '/':
        return send(res, 200, 'smesh control: /metrics /healthz/ready\n');
      default:
        return send(res, 404, 'not found\n');
    }
  }
}
