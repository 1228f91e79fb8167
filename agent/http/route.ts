// HTTP routing, pure: VirtualService match → weighted destination → subset → endpoints, with the endpoint settings that apply there.
import type { EndpointSettings, HttpRouteMatch, RouteDestination, RouteStringMatch, Service, ServicePort, ServiceTrafficPolicy, TrafficRoute, Workload } from '../../core/model/types';

export interface RouteRequest {
  readonly method: string;
  /**
   * Request target (`/path?query`) after path normalization (agent/http/path-normalize.ts), as Envoy
   * routes on the normalized path; matches use the path without the query.
   */
  readonly path: string;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** A service as the router sees it: its endpoints and its policy. */
export interface RoutableService {
  readonly service: Service;
  readonly endpoints: readonly Workload[];
  readonly policy?: ServiceTrafficPolicy;
}

export interface RouteInputs {
  /** The service and port the client connected to. */
  readonly origin: RoutableService;
  readonly port: ServicePort;
  readonly request: RouteRequest;
  /** Another service by key `<ns>/<name>` (route destinations may name one). */
  readonly lookup: (serviceKey: string) => RoutableService | undefined;
  /** Uniform [0, 1) for the weighted split. */
  readonly random: () => number;
}

/** Where one request goes: a concrete backend (service + subset) with its endpoints, before the endpoint pick. */
export interface RouteTarget {
  readonly route?: TrafficRoute;
  readonly routeIndex: number;
  readonly service: Service;
  readonly servicePort: ServicePort;
  /** Port to dial on the endpoint. */
  readonly targetPort: number;
  readonly subset?: string;
  readonly endpoints: readonly Workload[];
  /** Subset > port > service precedence, per group. */
  readonly settings: EndpointSettings;
  readonly policy?: ServiceTrafficPolicy;
}

export type RouteResult = { readonly kind: 'target'; readonly target: RouteTarget } | { readonly kind: 'error'; readonly status: number; readonly reason: string };

function stringMatches(m: RouteStringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  switch (m.kind) {
    case 'exact':
      return value === m.value;
    case 'prefix':
      return value.startsWith(m.value);
    case 'regex':
      try {
        return new RegExp(`^(?:${m.value})$`).test(value);
      } catch {
        return false;
      }
  }
}

function headerValue(headers: RouteRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

export function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q >= 0 ? target.slice(0, q) : target;
}

export function matchHolds(m: HttpRouteMatch, req: RouteRequest, port: number): boolean {
  if (m.port !== undefined && m.port !== port) return false;
  if (m.path && !stringMatches(m.path, pathOf(req.path))) return false;
  if (m.method && !stringMatches(m.method, req.method.toUpperCase())) return false;
  if (m.headers) for (const [name, hm] of Object.entries(m.headers)) if (!stringMatches(hm, headerValue(req.headers, name))) return false;
  return true;
}

/** Index of the first route whose matches hold (empty matches = every request), or -1. */
export function selectRoute(routes: readonly TrafficRoute[], req: RouteRequest, port: number): number {
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (r.matches.length === 0 || r.matches.some((m) => matchHolds(m, req, port))) return i;
  }
  return -1;
}

/** Weighted choice; `u` in [0, 1). Weight-0 destinations are never chosen; all zero → undefined. */
export function chooseDestination(dests: readonly RouteDestination[], u: number): RouteDestination | undefined {
  let total = 0;
  for (const d of dests) total += Math.max(d.weight, 0);
  if (total <= 0) return undefined;
  let x = Math.min(Math.max(u, 0), 0.999999999) * total;
  for (const d of dests) {
    if (d.weight <= 0) continue;
    if (x < d.weight) return d;
    x -= d.weight;
  }
  return dests.filter((d) => d.weight > 0).at(-1);
}

function mergeSettings(policy: ServiceTrafficPolicy | undefined, port: number, subset: string | undefined): EndpointSettings {
  if (!policy) return {};
  const ps = policy.portSettings.find((p) => p.port === port);
  const ss = subset ? policy.subsets.find((s) => s.name === subset) : undefined;
  return {
    loadBalancer: ss?.loadBalancer ?? ps?.loadBalancer ?? policy.loadBalancer,
    connectionPool: ss?.connectionPool ?? ps?.connectionPool ?? policy.connectionPool,
    outlierDetection: ss?.outlierDetection ?? ps?.outlierDetection ?? policy.outlierDetection,
  };
}

/** Pure: the backend for one request. Errors are what the client should see (Envoy: 404 no route, 503 no healthy upstream). */
export function routeRequest(i: RouteInputs): RouteResult {
  const routes = i.origin.policy?.routes ?? [];
  let route: TrafficRoute | undefined;
  let routeIndex = -1;
  if (routes.length > 0) {
    routeIndex = selectRoute(routes, i.request, i.port.port);
    if (routeIndex < 0) return { kind: 'error', status: 404, reason: `no route of ${i.origin.service.key} matches ${i.request.method} ${pathOf(i.request.path)}` };
    route = routes[routeIndex]!;
  }
  let dest: RouteDestination | undefined;
  if (route && route.destinations.length > 0) {
    dest = chooseDestination(route.destinations, i.random());
    if (!dest) return { kind: 'error', status: 503, reason: `route ${route.name ?? routeIndex} of ${i.origin.service.key}: every destination has weight 0` };
  }
  const backend = dest?.service && dest.service !== i.origin.service.key ? i.lookup(dest.service) : i.origin;
  if (!backend) return { kind: 'error', status: 503, reason: `route destination service ${dest!.service} is unknown` };
  const wantPort = dest?.port ?? i.port.port;
  const servicePort = backend === i.origin && wantPort === i.port.port ? i.port : backend.service.ports.find((p) => p.port === wantPort);
  if (!servicePort) return { kind: 'error', status: 503, reason: `service ${backend.service.key} has no port ${wantPort}` };
  let endpoints = backend.endpoints;
  const subsetName = dest?.subset;
  if (subsetName) {
    const subset = backend.policy?.subsets.find((s) => s.name === subsetName);
    if (!subset) return { kind: 'error', status: 503, reason: `service ${backend.service.key} has no subset ${subsetName} (no DestinationRule defines it)` };
    const members = new Set(subset.workloadUids);
    endpoints = endpoints.filter((w) => members.has(w.uid));
  }
  if (endpoints.length === 0) return { kind: 'error', status: 503, reason: `no endpoints for ${backend.service.key}${subsetName ? ` subset ${subsetName}` : ''}` };
  return {
    kind: 'target',
    target: {
      route,
      routeIndex,
      service: backend.service,
      servicePort,
      targetPort: servicePort.targetPort > 0 ? servicePort.targetPort : servicePort.port,
      subset: subsetName,
      endpoints,
      settings: mergeSettings(backend.policy, servicePort.port, subsetName),
      policy: backend.policy,
    },
  };
}
