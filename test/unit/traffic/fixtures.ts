// Shared file config for the traffic tests: services with two versions, and rules using every supported field.
export const BASE = `
apiVersion: v1
kind: Node
metadata: {name: node1}
status: {addresses: [{type: InternalIP, address: 198.18.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, namespace: default, labels: {app: reviews, version: v1}}
spec: {nodeName: node1}
status: {podIP: 198.18.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-2, namespace: default, labels: {app: reviews, version: v2}}
spec: {nodeName: node1}
status: {podIP: 198.18.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-1, namespace: data, labels: {app: ratings}}
spec: {nodeName: node1}
status: {podIP: 198.18.1.3}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {clusterIP: 10.96.0.10, selector: {app: reviews}, ports: [{port: 9080}, {port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: data}
spec: {clusterIP: 10.96.0.11, selector: {app: ratings}, ports: [{port: 8080}]}
`;

export const GOOD = `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: session, ttl: 1h}, maglev: {tableSize: 65537}}
      localityLbSetting: {enabled: true, failover: [{from: us-east, to: us-west}]}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 5, maxRetries: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 7, consecutiveGatewayErrors: 0, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: ratings, namespace: data, annotations: {smesh.io/load-balancer: PEAK_EWMA, smesh.io/ewma-decay: 5s}}
spec:
  host: ratings.data.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, consecutiveLocalOriginFailures: 2, splitExternalLocalOriginErrors: true}
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default]
  http:
  - name: canary
    match:
    - uri: {prefix: /api}
      method: {exact: GET}
      headers: {x-canary: {regex: "yes|true"}}
    - port: 9090
    route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews.default.svc.cluster.local, subset: v2, port: {number: 9080}}
      weight: 10
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure,503"}
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 1.5}}
      abort: {httpStatus: 503}
  - route:
    - destination: {host: ratings.data}
    retries: {attempts: 0}
`;
