// Maps a service's LoadBalancerSettings (state types, from DestinationRule) to a load-balancer policy for createPicker.
import type { HashKey, LoadBalancerSettings } from '../../core/model/types';
import type { HashSource } from './consistent-hash';
import type { LbPolicy } from './registry';

/** The algorithm when a service sets none (LoadBalancerSettings.algorithm's documented default). */
export const DEFAULT_LB_POLICY: LbPolicy = { type: 'least_request' };

function hashSource(key: HashKey): HashSource {
  switch (key.kind) {
    case 'header':
      return { type: 'header', name: key.name };
    case 'cookie':
      // path/ttl describe the cookie the HTTP layer sets when the request has none; the picker only reads it.
      return { type: 'cookie', name: key.name };
    case 'sourceIp':
      return { type: 'source_ip' };
    case 'queryParameter':
      return { type: 'query_parameter', name: key.name };
  }
}

/**
 * consistentHash → maglev; algorithm ROUND_ROBIN | RANDOM | LEAST_REQUEST | PEAK_EWMA → the same
 * strategy; locality → wrapped in locality_failover. `ewmaDecayMs` is not part of the picker: it is
 * the time constant of the EndpointLoadTracker that feeds peak_ewma.
 */
export function lbPolicyFromSettings(settings: LoadBalancerSettings | undefined): LbPolicy {
  let policy: LbPolicy;
  if (settings?.consistentHash) {
    policy = { type: 'maglev', hashOn: [hashSource(settings.consistentHash.key)], tableSize: settings.consistentHash.tableSize };
  } else {
    switch (settings?.algorithm) {
      case 'ROUND_ROBIN':
        policy = { type: 'round_robin' };
        break;
      case 'RANDOM':
        policy = { type: 'random' };
        break;
      case 'PEAK_EWMA':
        policy = { type: 'peak_ewma' };
        break;
      case 'LEAST_REQUEST':
        policy = { type: 'least_request', choiceCount: settings.choiceCount };
        break;
      case undefined:
        policy = settings?.choiceCount !== undefined ? { type: 'least_request', choiceCount: settings.choiceCount } : DEFAULT_LB_POLICY;
        break;
    }
  }
  const loc = settings?.locality;
  if (!loc) return policy;
  return { type: 'locality_failover', prefer: loc.prefer, failover: loc.failover, strict: loc.strict, inner: policy };
}
