// Which HTTP service-port connections --http-engine hands to the native HTTP/1.1 engine (engineIneligibility, pure): table over port protocols and the route/policy features the engine path does not do.
import { describe, expect, it } from 'vitest';
import { engineIneligibility } from '../../../../agent/http/engine-outbound';
import { parseAgentArgs } from '../../../../agent/config/options';
import type { Service, ServicePort, ServiceTrafficPolicy, TrafficRoute } from '../../../../core/model/types';

const port = (p: Partial<ServicePort>): ServicePort => ({ port: 80, targetPort: 8080, ...p }) as ServicePort;
const service = { key: 'default/web', name: 'web', namespace: 'default', vips: ['198.19.0.1'], ports: [port({ name: 'http' })] } as unknown as Service;
const policy = (p: Partial<ServiceTrafficPolicy>, key = 'default/web'): ServiceTrafficPolicy => ({ serviceKey: key, subsets: [], portSettings: [], routes: [], ...p });
const route = (r: Partial<TrafficRoute>): TrafficRoute => ({ matches: [], destinations: [], ...r });

describe('engineIneligibility', () => {
  const cases: ReadonlyArray<readonly [string, ServicePort, ServiceTrafficPolicy[], string | undefined]> = [
    ['http port, no policy', port({ name: 'http' }), [], undefined],
    ['http-web port, appProtocol http', port({ name: 'web', appProtocol: 'http' }), [], undefined],
    ['grpc port', port({ name: 'grpc' }), [], 'not_http1_port'],
    ['http2 port', port({ name: 'http2-x' }), [], 'not_http1_port'],
    ['h2c appProtocol', port({ name: 'http', appProtocol: 'kubernetes.io/h2c' }), [], 'not_http1_port'],
    [
      'weighted split, timeout: engine',
      port({ name: 'http' }),
      [
        policy({
          routes: [
            route({
              timeoutMs: 100,
              destinations: [
                { subset: 'v1', weight: 90 },
                { subset: 'v2', weight: 10 },
              ],
            }),
          ],
        }),
      ],
      undefined,
    ],
    ['route retries', port({ name: 'http' }), [policy({ routes: [route({ retries: { attempts: 2, retryOn: ['5xx'] } })] })], 'route_retries'],
    ['route fault', port({ name: 'http' }), [policy({ routes: [route({ fault: { abort: { httpStatus: 500, percent: 10 } } })] })], 'route_fault'],
    ['header hash: engine', port({ name: 'http' }), [policy({ loadBalancer: { consistentHash: { key: { kind: 'header', name: 'x-user' } } } })], undefined],
    [
      'cookie hash on a subset',
      port({ name: 'http' }),
      [policy({ subsets: [{ name: 'v1', labels: {}, workloadUids: [], loadBalancer: { consistentHash: { key: { kind: 'cookie', name: 'c' } } } }] })],
      'cookie_hash',
    ],
    ['maxConnections', port({ name: 'http' }), [policy({ connectionPool: { maxConnections: 4 } })], 'max_connections'],
    ['maxRequests only: engine', port({ name: 'http' }), [policy({ connectionPool: { maxRequests: 4 } })], undefined],
    [
      'cookie hash on a routed-to service',
      port({ name: 'http' }),
      [policy({ routes: [route({ destinations: [{ service: 'default/other', weight: 1 }] })] }), policy({ loadBalancer: { consistentHash: { key: { kind: 'cookie', name: 'c' } } } }, 'default/other')],
      'cookie_hash',
    ],
  ];
  for (const [name, p, policies, want] of cases) {
    it(name, () => {
      expect(engineIneligibility(service, p, new Map(policies.map((x) => [x.serviceKey, x])))).toBe(want);
    });
  }
});

describe('--http-engine', () => {
  const base = ['--standalone', '--config', '/c', '--node', 'n', '--no-bpf'];
  it('is off by default, on with the flag or SMESH_HTTP_ENGINE=1, off with SMESH_HTTP_ENGINE=0', () => {
    expect(parseAgentArgs(base, {}).httpEngine).toBe(false);
    expect(parseAgentArgs([...base, '--http-engine'], {}).httpEngine).toBe(true);
    expect(parseAgentArgs(base, { SMESH_HTTP_ENGINE: '1' }).httpEngine).toBe(true);
    expect(parseAgentArgs(base, { SMESH_HTTP_ENGINE: '0' }).httpEngine).toBe(false);
  });
});
