// L4 endpoint choice for the outbound capture: the service's DestinationRule loadBalancer (agent/lb) per connection, round robin when it sets none.
import type { LbEndpoint } from '../lb/endpoint';
import { EndpointLoadTracker } from '../lb/load';
import { RoundRobinPickers, type PickResult } from '../lb/picker';
import { lbPolicyFromSettings } from '../lb/policy';
import { LoadBalancerRegistry, PickerCache, registerBuiltinLoadBalancers, type LbPolicy } from '../lb/registry';
import type { RandomSource } from '../lb/sampling';
import type { ConnectionPoolSettings, LoadBalancerSettings, Service, ServicePort, ServiceTrafficPolicy, Workload } from '../../core/model/types';

interface WorkloadEndpoint extends LbEndpoint {
  readonly workload: Workload;
}

export interface ConnectionBalancerOptions {
  /** The current traffic policies (MeshSnapshot.trafficPolicies); read on every pick. */
  readonly policies: () => ReadonlyMap<string, ServiceTrafficPolicy> | undefined;
  /** Uniform [0, 1) for random, least-request and locality draws; default Math.random. */
  readonly random?: RandomSource;
}

/**
 * The load-balancer settings for connections to one service port: the port-level settings, else
 * the service-level ones (subsets need a route, which L4 has not). Undefined: the DestinationRule
 * sets no loadBalancer for it (or there is none).
 */
export function l4LoadBalancerSettings(policy: ServiceTrafficPolicy | undefined, port: number): LoadBalancerSettings | undefined {
  if (!policy) return undefined;
  return policy.portSettings.find((p) => p.port === port)?.loadBalancer ?? policy.loadBalancer;
}

/** The connectionPool settings for connections to one service port: port-level, else service-level (as for loadBalancer). */
export function l4ConnectionPoolSettings(policy: ServiceTrafficPolicy | undefined, port: number): ConnectionPoolSettings | undefined {
  if (!policy) return undefined;
  return policy.portSettings.find((p) => p.port === port)?.connectionPool ?? policy.connectionPool;
}

/**
 * Picks a service endpoint per connection and counts open connections per endpoint.
 *
 * - No loadBalancer settings for the port: round robin per service, as before DestinationRules
 *   (not LoadBalancerSettings' LEAST_REQUEST default, which applies once a rule sets a loadBalancer).
 * - Otherwise lbPolicyFromSettings: LEAST_REQUEST compares open connections (open() / close);
 *   PEAK_EWMA has no latency samples on L4 (a connection's lifetime is not a round trip), so it
 *   ranks by open connections at the default RTT; consistentHash can only hash on the source IP:
 *   header, cookie and query-parameter keys are absent on L4 and the picker falls back to a random
 *   choice, as it does for a request without the key.
 */
export class ConnectionBalancer {
  private readonly registry = new LoadBalancerRegistry();
  /** Open connections per endpoint (workload uid); shared by all pickers, so it survives rebuilds. */
  readonly load = new EndpointLoadTracker();
  private readonly pickers: PickerCache<WorkloadEndpoint>;
  private readonly roundRobin = new RoundRobinPickers<Workload>();
  /** The picker cache rebuilds on a new policy or endpoint array: derive each once per source object. */
  private readonly policyOf = new WeakMap<LoadBalancerSettings, LbPolicy>();
  private readonly endpointsOf = new WeakMap<readonly Workload[], readonly WorkloadEndpoint[]>();

  constructor(private readonly opts: ConnectionBalancerOptions) {
    registerBuiltinLoadBalancers(this.registry);
    this.pickers = new PickerCache(this.registry, { load: this.load, random: opts.random });
  }

  pick(service: Service, port: ServicePort, endpoints: readonly Workload[], sourceIp: string | undefined): PickResult<Workload> {
    const settings = l4LoadBalancerSettings(this.opts.policies()?.get(service.key), port.port);
    if (!settings) return this.roundRobin.pick(service.key, endpoints);
    let policy = this.policyOf.get(settings);
    if (!policy) this.policyOf.set(settings, (policy = lbPolicyFromSettings(settings)));
    let eps = this.endpointsOf.get(endpoints);
    if (!eps) this.endpointsOf.set(endpoints, (eps = endpoints.map((w) => ({ key: w.uid, node: w.node, workload: w }))));
    const picked = this.pickers.picker(`${service.key}|${port.port}`, policy, eps).pick({ sourceIp });
    return picked.kind === 'complete' ? { kind: 'complete', endpoint: picked.endpoint.workload } : picked;
  }

  /** Counts a connection to `w` as open; the returned function closes it (idempotent). */
  open(w: Workload): () => void {
    const ep = { key: w.uid };
    this.load.begin(ep);
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.load.cancel(ep);
    };
  }
}
