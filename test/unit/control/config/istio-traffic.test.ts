// DestinationRule / VirtualService file config: the supported subset compiles into per-service policies; every error names file, resource and field.
import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';

import { BASE, GOOD } from '../../fixtures/traffic';

function load(extra: string): { problems: ConfigProblem[]; snapshot: ReturnType<typeof buildSnapshot> } {
  const problems: ConfigProblem[] = [];
  const snapshot = buildSnapshot(parseConfigText('traffic.yaml', BASE + extra, problems), problems);
  return { problems, snapshot };
}

function problemsOf(extra: string): string[] {
  return load(extra).problems.map((p) => `${p.resource}: ${p.field}: ${p.message}`);
}

describe('DestinationRule + VirtualService → ServiceTrafficPolicy', () => {
  it('compiles the supported subset', () => {
    const { problems, snapshot } = load(GOOD);
    expect(problems).toEqual([]);
    expect([...snapshot.trafficPolicies!.keys()]).toEqual(['data/ratings', 'default/reviews']);
    expect(snapshot.trafficPolicies!.get('default/reviews')).toEqual({
      serviceKey: 'default/reviews',
      loadBalancer: {
        consistentHash: { key: { kind: 'cookie', name: 'session', ttlMs: 3_600_000 }, tableSize: 65537 },
        locality: { prefer: ['REGION', 'ZONE', 'SUBZONE'], failover: [{ from: 'us-east', to: 'us-west' }], strict: false },
      },
      connectionPool: { maxConnections: 100, connectTimeoutMs: 250, maxPendingRequests: 10, maxRequests: 1000, maxRequestsPerConnection: 5, maxRetries: 3, idleTimeoutMs: 30_000 },
      outlierDetection: { consecutiveServerErrors: 7, consecutiveGatewayErrors: 0, consecutiveConnectFailures: 7, intervalMs: 5000, baseEjectionTimeMs: 60_000, maxEjectionPercent: 50 },
      portSettings: [{ port: 9090, loadBalancer: { algorithm: 'ROUND_ROBIN' } }],
      subsets: [
        { name: 'v1', labels: { version: 'v1' }, workloadUids: ['default/reviews-1'] },
        { name: 'v2', labels: { version: 'v2' }, workloadUids: ['default/reviews-2'], loadBalancer: { algorithm: 'RANDOM' } },
      ],
      routes: [
        {
          name: 'canary',
          matches: [{ path: { kind: 'prefix', value: '/api' }, method: { kind: 'exact', value: 'GET' }, headers: { 'x-canary': { kind: 'regex', value: 'yes|true' } } }, { port: 9090 }],
          destinations: [
            { subset: 'v1', weight: 90 },
            { subset: 'v2', port: 9080, weight: 10 },
          ],
          timeoutMs: 2000,
          retries: { attempts: 3, perTryTimeoutMs: 500, retryOn: ['5xx', 'connect-failure', '503'] },
          fault: { delay: { fixedDelayMs: 100, percent: 1.5 }, abort: { httpStatus: 503, percent: 100 } },
        },
        { matches: [], destinations: [{ service: 'data/ratings', weight: 100 }], retries: { attempts: 0, retryOn: [] } },
      ],
    });
    expect(snapshot.trafficPolicies!.get('data/ratings')).toEqual({
      serviceKey: 'data/ratings',
      loadBalancer: { algorithm: 'PEAK_EWMA', ewmaDecayMs: 5000 },
      outlierDetection: { consecutiveServerErrors: 3, consecutiveConnectFailures: 2 },
      subsets: [],
      portSettings: [],
      routes: [],
    });
  });

  it('leaves trafficPolicies absent without rules', () => {
    expect(load('').snapshot.trafficPolicies).toBeUndefined();
  });

  const dr = (spec: string, meta = '{name: r, namespace: default}') => `\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: ${meta}\nspec:\n${spec}\n`;
  const vs = (spec: string, name = 'v') => `\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n${spec}\n`;
  const subsets = dr('  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]', '{name: subsets, namespace: default}');
  const DR = 'DestinationRule default/r';
  const VS = 'VirtualService default/v';

  const cases: Array<[string, string, string]> = [
    ['unknown field', dr('  host: reviews\n  trafficPolicy: {loadBalancr: {simple: RANDOM}}'), `${DR}: spec.trafficPolicy.loadBalancr: unknown field`],
    ['missing host', dr('  subsets: []'), `${DR}: spec.host: required field is missing`],
    [
      'bad enum',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {simple: FASTEST}}'),
      `${DR}: spec.trafficPolicy.loadBalancer.simple: expected one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST, got string "FASTEST"`,
    ],
    [
      'PASSTHROUGH',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}'),
      `${DR}: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not supported by smesh (the node proxy always balances over the known endpoints); use ROUND_ROBIN, LEAST_REQUEST or RANDOM`,
    ],
    [
      'simple and consistentHash',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}'),
      `${DR}: spec.trafficPolicy.loadBalancer: set either simple or consistentHash, not both`,
    ],
    [
      'two hash keys',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x-user}}}'),
      `${DR}: spec.trafficPolicy.loadBalancer.consistentHash: expected exactly one of httpHeaderName, httpCookie, useSourceIp: true, httpQueryParameterName; got 2`,
    ],
    [
      'unsupported Istio field',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: []}}}'),
      `${DR}: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute: not supported by smesh: weighted locality distribution is not implemented; use failover`,
    ],
    [
      'bad duration',
      dr('  host: reviews\n  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 5 seconds}}}'),
      `${DR}: spec.trafficPolicy.connectionPool.tcp.connectTimeout: expected a duration like 30s, 5m or 24h, got string "5 seconds"`,
    ],
    ['zero duration', dr('  host: reviews\n  trafficPolicy: {outlierDetection: {interval: 0s}}'), `${DR}: spec.trafficPolicy.outlierDetection.interval: expected a duration of at least 1ms, got "0s"`],
    [
      'duration under 1ms',
      dr('  host: reviews\n  trafficPolicy: {outlierDetection: {interval: 0.5ms}}'),
      `${DR}: spec.trafficPolicy.outlierDetection.interval: expected a duration of at least 1ms, got "0.5ms"`,
    ],
    [
      'duration finer than 1ms',
      dr('  host: reviews\n  trafficPolicy: {outlierDetection: {baseEjectionTime: 1.5ms}}'),
      `${DR}: spec.trafficPolicy.outlierDetection.baseEjectionTime: only durations to ms precision are supported, got "1.5ms"`,
    ],
    [
      'negative limit',
      dr('  host: reviews\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}'),
      `${DR}: spec.trafficPolicy.connectionPool.tcp.maxConnections: expected a non-negative integer, got -1`,
    ],
    [
      'ejection percent',
      dr('  host: reviews\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}'),
      `${DR}: spec.trafficPolicy.outlierDetection.maxEjectionPercent: expected a percentage 0-100, got 150`,
    ],
    [
      'local origin without split',
      dr('  host: reviews\n  trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 2}}'),
      `${DR}: spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: only applies with splitExternalLocalOriginErrors: true (otherwise connect failures count as 5xx errors)`,
    ],
    [
      'tls other than ISTIO_MUTUAL',
      dr('  host: reviews\n  trafficPolicy: {tls: {mode: SIMPLE}}'),
      `${DR}: spec.trafficPolicy.tls: not supported by smesh: mesh traffic is always HBONE mTLS; only {mode: ISTIO_MUTUAL} (a no-op) is accepted`,
    ],
    ['unknown host', dr('  host: details'), `${DR}: spec.host: no Service default/details (host "details")`],
    ['wildcard host', dr('  host: "*.default.svc.cluster.local"'), `${DR}: spec.host: wildcard hosts are not supported by smesh; name one Service (got "*.default.svc.cluster.local")`],
    [
      'external host',
      dr('  host: www.example.com'),
      `${DR}: spec.host: expected a Service: name, name.namespace or name.namespace.svc.cluster.local (external hosts are not supported yet), got "www.example.com"`,
    ],
    [
      'port not on service',
      dr('  host: reviews\n  trafficPolicy: {portLevelSettings: [{port: {number: 7000}, loadBalancer: {simple: RANDOM}}]}'),
      `${DR}: spec.trafficPolicy.portLevelSettings[0].port.number: Service default/reviews has no port 7000 (ports: 9080, 9090)`,
    ],
    ['duplicate subset', dr('  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v1}]'), `${DR}: spec.subsets[1].name: subset "v1" is already defined by subsets[0]`],
    [
      'subset port settings',
      dr('  host: reviews\n  subsets: [{name: v1, trafficPolicy: {portLevelSettings: []}}]'),
      `${DR}: spec.subsets[0].trafficPolicy.portLevelSettings: not supported by smesh inside a subset; set portLevelSettings on spec.trafficPolicy`,
    ],
    [
      'bad annotation value',
      dr('  host: reviews', '{name: r, namespace: default, annotations: {smesh.io/load-balancer: FASTEST}}'),
      `${DR}: metadata.annotations[smesh.io/load-balancer]: expected one of PEAK_EWMA, LEAST_REQUEST, ROUND_ROBIN, RANDOM, got "FASTEST"`,
    ],
    [
      'unknown smesh annotation',
      dr('  host: reviews', '{name: r, namespace: default, annotations: {smesh.io/lb: PEAK_EWMA}}'),
      `${DR}: metadata.annotations[smesh.io/lb]: unknown smesh annotation on a DestinationRule; expected one of smesh.io/load-balancer, smesh.io/ewma-decay, smesh.io/least-request-choices`,
    ],
    [
      'ewma decay without PEAK_EWMA',
      dr('  host: reviews', '{name: r, namespace: default, annotations: {smesh.io/ewma-decay: 5s}}'),
      `${DR}: metadata.annotations[smesh.io/ewma-decay]: only applies with smesh.io/load-balancer: PEAK_EWMA`,
    ],
    [
      'second rule for a host',
      dr('  host: reviews') + dr('  host: reviews.default', '{name: s, namespace: default}'),
      'DestinationRule default/s: spec.host: Service default/reviews is already configured by DestinationRule default/r; merge them into one',
    ],
    [
      'weights not 100',
      subsets + vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v1}, weight: 50}, {destination: {host: reviews}, weight: 40}]}]'),
      `${VS}: spec.http[0].route: weights must sum to 100, got 90`,
    ],
    [
      'single weight not 100',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}, weight: 50}]}]'),
      `${VS}: spec.http[0].route[0].weight: a single destination takes all traffic: expected 100 or no weight, got 50`,
    ],
    [
      'missing subset',
      subsets + vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v3}}]}]'),
      `${VS}: spec.http[0].route[0].destination.subset: DestinationRule default/subsets for default/reviews defines no subset "v3"`,
    ],
    [
      'subset without rule',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: ratings.data, subset: v1}}]}]'),
      `${VS}: spec.http[0].route[0].destination.subset: no DestinationRule defines subsets for Service data/ratings`,
    ],
    [
      'unknown destination',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: details}}]}]'),
      `${VS}: spec.http[0].route[0].destination.host: no Service default/details (host "details")`,
    ],
    [
      'destination port',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, port: {number: 1}}}]}]'),
      `${VS}: spec.http[0].route[0].destination.port.number: Service default/reviews has no port 1`,
    ],
    [
      'two string matches',
      vs('  hosts: [reviews]\n  http: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].uri: expected exactly one of exact, prefix, regex; got exact and prefix`,
    ],
    [
      'bad regex',
      vs('  hosts: [reviews]\n  http: [{match: [{uri: {regex: "(a"}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].uri.regex: invalid regular expression: Invalid regular expression: /^(?:(a)$/: Unterminated group`,
    ],
    [
      'upper-case header',
      vs('  hosts: [reviews]\n  http: [{match: [{headers: {X-User: {exact: a}}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].headers[X-User]: expected a lower-case HTTP header name, got "X-User"`,
    ],
    [
      'unsupported match field',
      vs('  hosts: [reviews]\n  http: [{match: [{queryParams: {a: {exact: b}}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].queryParams: not supported by smesh`,
    ],
    [
      'retry condition',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], retries: {attempts: 2, retryOn: "5xx,unavailable"}}]'),
      `${VS}: spec.http[0].retries.retryOn: unsupported retry condition "unavailable"; expected a status code or one of 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx`,
    ],
    [
      'abort status',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], fault: {abort: {httpStatus: 700}}}]'),
      `${VS}: spec.http[0].fault.abort.httpStatus: expected an HTTP status 200-599, got 700`,
    ],
    [
      'fault percentage',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], fault: {delay: {fixedDelay: 1s, percentage: {value: 101}}}}]'),
      `${VS}: spec.http[0].fault.delay.percentage.value: expected a percentage 0-100, got 101`,
    ],
    [
      'delay without fixedDelay',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], fault: {delay: {percentage: {value: 1}}}}]'),
      `${VS}: spec.http[0].fault.delay.fixedDelay: required field is missing`,
    ],
    [
      'tcp routes',
      vs('  hosts: [reviews]\n  tcp: [{route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.tcp: not supported by smesh: TCP traffic goes to the whole service; only http routes are supported`,
    ],
    [
      'gateways',
      vs('  hosts: [reviews]\n  gateways: [my-gateway]\n  http: [{route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.gateways: not supported by smesh: it has no gateways; only ["mesh"] is accepted, got ["my-gateway"]`,
    ],
    ['redirect', vs('  hosts: [reviews]\n  http: [{redirect: {uri: /x}, route: [{destination: {host: reviews}}]}]'), `${VS}: spec.http[0].redirect: not supported by smesh`],
    ['no route', vs('  hosts: [reviews]\n  http: [{name: empty}]'), `${VS}: spec.http[0].route: expected at least one destination`],
    [
      'second VirtualService for a host',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]') + vs('  hosts: [reviews.default.svc]\n  http: [{route: [{destination: {host: reviews}}]}]', 'w'),
      'VirtualService default/w: spec.hosts[0]: Service default/reviews is already routed by VirtualService default/v; merge them into one',
    ],
    // Istio's own validation (webhook and CRD rules), by field.
    ['DR host not a domain', dr('  host: reviews_v1'), `${DR}: spec.host: domain name "reviews_v1" invalid (label "reviews_v1" invalid)`],
    [
      'subset name not a DNS label',
      dr('  host: reviews\n  subsets: [{name: v1_x, labels: {version: v1}}]'),
      `${DR}: spec.subsets[0].name: expected a DNS-1123 label (letters, digits and '-', at most 63), got "v1_x"`,
    ],
    [
      'subset name with a dot',
      dr('  host: reviews\n  subsets: [{name: v1.2, labels: {version: v1}}]'),
      `${DR}: spec.subsets[0].name: expected a DNS-1123 label (letters, digits and '-', at most 63), got "v1.2"`,
    ],
    [
      'wildcard in a subset label value',
      dr('  host: reviews\n  subsets: [{name: v1, labels: {version: "v*"}}]'),
      `${DR}: spec.subsets[0].labels[version]: invalid label value "v*": expected empty or alphanumeric with '-', '_' or '.' inside (no wildcards)`,
    ],
    [
      'bad subset label key',
      dr('  host: reviews\n  subsets: [{name: v1, labels: {"-version": v1}}]'),
      `${DR}: spec.subsets[0].labels[-version]: invalid label key "-version": expected [prefix/]name, the name alphanumeric with '-', '_' or '.' inside`,
    ],
    [
      'empty trafficPolicy',
      dr('  host: reviews\n  trafficPolicy: {}'),
      `${DR}: spec.trafficPolicy: traffic policy must have at least one field (loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings, tunnel, proxyProtocol)`,
    ],
    [
      'empty subset trafficPolicy',
      dr('  host: reviews\n  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {}}]'),
      `${DR}: spec.subsets[0].trafficPolicy: traffic policy must have at least one field (loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings, tunnel, proxyProtocol)`,
    ],
    ['empty connectionPool', dr('  host: reviews\n  trafficPolicy: {connectionPool: {}}'), `${DR}: spec.trafficPolicy.connectionPool: connection pool must have at least one field (tcp or http)`],
    [
      'empty port policy',
      dr('  host: reviews\n  trafficPolicy: {portLevelSettings: [{port: {number: 9080}}]}'),
      `${DR}: spec.trafficPolicy.portLevelSettings[0]: port traffic policy must have at least one field (loadBalancer, connectionPool, outlierDetection, tls)`,
    ],
    [
      'maglev table not prime',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}}'),
      `${DR}: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: expected a prime below 5000011 (e.g. 65537), got 65536`,
    ],
    [
      'cookie without name',
      dr('  host: reviews\n  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 1s}}}}'),
      `${DR}: spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: required field is missing`,
    ],
    [
      'dry-run on a DestinationRule',
      dr('  host: reviews', '{name: r, namespace: default, annotations: {istio.io/dry-run: "true"}}'),
      `${DR}: metadata.annotations[istio.io/dry-run]: unsupported annotation on a DestinationRule; Istio accepts it on AuthorizationPolicy only`,
    ],
    ['VirtualService without routes', vs('  hosts: [reviews]'), `${VS}: spec.http: http, tcp or tls routes must be provided (smesh supports http)`],
    ['duplicate hosts', vs('  hosts: [reviews, reviews]\n  http: [{route: [{destination: {host: reviews}}]}]'), `${VS}: spec.hosts[1]: duplicate host "reviews" (also hosts[0])`],
    ['host *', vs('  hosts: ["*"]\n  http: [{route: [{destination: {host: reviews}}]}]'), `${VS}: spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh`],
    ['host not a domain', vs('  hosts: [reviews_v1]\n  http: [{route: [{destination: {host: reviews}}]}]'), `${VS}: spec.hosts[0]: domain name "reviews_v1" invalid (label "reviews_v1" invalid)`],
    ['destination host *', vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: "*"}}]}]'), `${VS}: spec.http[0].route[0].destination.host: invalid destination host *`],
    [
      'destination subset not a DNS label',
      subsets + vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v1_x}}]}]'),
      `${VS}: spec.http[0].route[0].destination.subset: expected a DNS-1123 label (letters, digits and '-', at most 63), got "v1_x"`,
    ],
    ['timeout 0s', vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], timeout: 0s}]'), `${VS}: spec.http[0].timeout: expected a duration of at least 1ms, got "0s"`],
    [
      'retry settings with 0 attempts',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], retries: {attempts: 0, perTryTimeout: 1s}}]'),
      `${VS}: spec.http[0].retries: retry policy configured while attempts is 0 (retries disabled); remove perTryTimeout/retryOn or set attempts`,
    ],
    ['empty fault', vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], fault: {}}]'), `${VS}: spec.http[0].fault: fault injection must have an abort and/or a delay`],
    [
      'fixedDelay 0s',
      vs('  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}], fault: {delay: {fixedDelay: 0s}}}]'),
      `${VS}: spec.http[0].fault.delay.fixedDelay: expected a duration of at least 1ms, got "0s"`,
    ],
    [
      'empty method prefix',
      vs('  hosts: [reviews]\n  http: [{match: [{method: {prefix: ""}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].method.prefix: prefix string match should not be empty`,
    ],
    [
      'empty header prefix',
      vs('  hosts: [reviews]\n  http: [{match: [{headers: {x-user: {prefix: ""}}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].headers[x-user].prefix: prefix string match should not be empty`,
    ],
    [
      'empty uri regex',
      vs('  hosts: [reviews]\n  http: [{match: [{uri: {regex: ""}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].uri.regex: regex string match should not be empty`,
    ],
    [
      'regex over 1024 characters',
      vs(`  hosts: [reviews]\n  http: [{match: [{uri: {regex: "${'a'.repeat(1025)}"}}], route: [{destination: {host: reviews}}]}]`),
      `${VS}: spec.http[0].match[0].uri.regex: regex is too large, max length allowed is 1024 (got 1025)`,
    ],
    [
      'lookahead (not RE2)',
      vs('  hosts: [reviews]\n  http: [{match: [{uri: {regex: "/api(?!/admin).*"}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].uri.regex: not RE2 syntax (Istio's regex engine has no lookaround or backreferences), got "/api(?!/admin).*"`,
    ],
    [
      'backreference (not RE2)',
      vs('  hosts: [reviews]\n  http: [{match: [{headers: {x-a: {regex: "(a)\\\\1"}}}], route: [{destination: {host: reviews}}]}]'),
      `${VS}: spec.http[0].match[0].headers[x-a].regex: not RE2 syntax (Istio's regex engine has no lookaround or backreferences), got ${JSON.stringify('(a)\\1')}`,
    ],
    [
      'wrong apiVersion',
      '\n---\napiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: v, namespace: default}\nspec: {hosts: [reviews]}\n',
      `${VS}: apiVersion: expected networking.istio.io/v1 or networking.istio.io/v1beta1 or networking.istio.io/v1alpha3 for kind VirtualService, got "networking.istio.io/v2"`,
    ],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`refuses: ${name}`, () => {
      expect(problemsOf(yaml)).toEqual([expected]);
    });
  }

  it('accepts an empty uri prefix (Envoy allows it) and an escaped backslash before a digit in a regex', () => {
    expect(problemsOf(vs('  hosts: [reviews]\n  http: [{match: [{uri: {prefix: ""}}, {uri: {regex: "/a\\\\\\\\1"}}], route: [{destination: {host: reviews}}]}]'))).toEqual([]);
  });

  it('names the file and line of the resource', () => {
    const { problems } = load(dr('  host: details'));
    expect(problems[0]).toMatchObject({ file: 'traffic.yaml', resource: DR, field: 'spec.host' });
    expect(problems[0]!.line).toBeGreaterThan(30);
  });
});
