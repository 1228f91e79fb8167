// Real @grpc/grpc-js server and clients on 127.0.0.1: delta ADS bidi stream carrying an istio.workload.Address, and the unary CreateCertificate.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMeshProtos, METHOD_PATH, TYPE_URL } from '../../../proto';
import type { AggregatedDiscoveryServiceClient, AggregatedDiscoveryServiceHandlers } from '../../../proto/generated/envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { DeltaDiscoveryRequest__Output } from '../../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { DeltaDiscoveryResponse__Output } from '../../../proto/generated/envoy/service/discovery/v3/DeltaDiscoveryResponse';
import type { IstioCertificateServiceHandlers } from '../../../proto/generated/istio/v1/auth/IstioCertificateService';
import type { IstioCertificateResponse__Output } from '../../../proto/generated/istio/v1/auth/IstioCertificateResponse';

const protos = loadMeshProtos();
const { codecs } = protos;
const DEADLINE_MS = 5_000;
const deadline = (): Date => new Date(Date.now() + DEADLINE_MS);

describe('proto: gRPC services over 127.0.0.1', () => {
  let server: grpc.Server;
  let target: string;
  const adsRequests: DeltaDiscoveryRequest__Output[] = [];
  const certMetadata: Array<string | undefined> = [];

  const ads: AggregatedDiscoveryServiceHandlers = {
    StreamAggregatedResources: (call) => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta only' });
    },
    DeltaAggregatedResources: (call) => {
      call.on('data', (req: DeltaDiscoveryRequest__Output) => {
        adsRequests.push(req);
        if (req.responseNonce) {
          // The ACK of our one response: done.
          call.end();
          return;
        }
        call.write({
          typeUrl: req.typeUrl,
          nonce: 'nonce-1',
          systemVersionInfo: 'v1',
          resources: [
            {
              name: 'cluster//Pod/default/web-0',
              version: '1',
              resource: codecs.address.pack({
                workload: {
                  uid: 'cluster//Pod/default/web-0',
                  name: 'web-0',
                  namespace: 'default',
                  addresses: [Buffer.from([10, 244, 1, 7])],
                  tunnelProtocol: 'HBONE',
                  serviceAccount: 'web',
                  node: req.node?.id ?? '',
                },
              }),
            },
          ],
        });
      });
      call.on('end', () => call.end());
    },
  };

  const ca: IstioCertificateServiceHandlers = {
    CreateCertificate: (call, callback) => {
      certMetadata.push(call.request.metadata?.fields.ClusterID?.stringValue);
      if (!call.request.csr.startsWith('-----BEGIN CERTIFICATE REQUEST-----')) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: 'csr is not PEM' });
        return;
      }
      callback(null, { certChain: [`leaf for ${call.request.validityDuration}s`, 'root'] });
    },
  };

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(protos.adsService, ads);
    server.addService(protos.certificateService, ca);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    target = `127.0.0.1:${port}`;
  });

  afterAll(() => {
    server?.forceShutdown();
  });

  it('service definitions carry the Istio/Envoy method paths', () => {
    expect(protos.adsService.DeltaAggregatedResources.path).toBe(METHOD_PATH.deltaAggregatedResources);
    expect(protos.adsService.DeltaAggregatedResources.requestStream).toBe(true);
    expect(protos.adsService.DeltaAggregatedResources.responseStream).toBe(true);
    expect(protos.adsService.StreamAggregatedResources.path).toBe(METHOD_PATH.streamAggregatedResources);
    expect(protos.certificateService.CreateCertificate.path).toBe(METHOD_PATH.createCertificate);
  });

  it('DeltaAggregatedResources: subscribe, receive one Address, ACK', async () => {
    const Client = protos.grpc.envoy.service.discovery.v3.AggregatedDiscoveryService;
    const client: AggregatedDiscoveryServiceClient = new Client(target, grpc.credentials.createInsecure());
    try {
      const call = client.DeltaAggregatedResources({ deadline: deadline() });
      const responses: DeltaDiscoveryResponse__Output[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (resp: DeltaDiscoveryResponse__Output) => {
          responses.push(resp);
          call.write({ typeUrl: resp.typeUrl, responseNonce: resp.nonce });
          call.end();
        });
        call.on('error', reject);
        call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
      });
      call.write({
        node: { id: 'node-a', userAgentName: 'smesh' },
        typeUrl: TYPE_URL.address,
        resourceNamesSubscribe: ['*'],
      });
      await done;

      expect(responses).toHaveLength(1);
      const resp = responses[0]!;
      expect(resp.typeUrl).toBe(TYPE_URL.address);
      expect(resp.nonce).toBe('nonce-1');
      expect(resp.resources).toHaveLength(1);
      const resource = resp.resources[0]!;
      expect(resource.name).toBe('cluster//Pod/default/web-0');
      expect(resource.resource?.type_url).toBe(TYPE_URL.address);
      const address = codecs.address.unpack(resource.resource!);
      expect(address.type).toBe('workload');
      expect(address.workload).toMatchObject({
        uid: 'cluster//Pod/default/web-0',
        tunnelProtocol: 'HBONE',
        serviceAccount: 'web',
        node: 'node-a',
      });
      expect([...address.workload!.addresses[0]!]).toEqual([10, 244, 1, 7]);

      expect(adsRequests.map((r) => [r.typeUrl, r.responseNonce])).toEqual([
        [TYPE_URL.address, ''],
        [TYPE_URL.address, 'nonce-1'],
      ]);
      expect(adsRequests[0]?.node?.id).toBe('node-a');
      expect(adsRequests[0]?.resourceNamesSubscribe).toEqual(['*']);
    } finally {
      client.close();
    }
  });

  it('CreateCertificate: unary call through the typed client and through the raw method path', async () => {
    const Client = protos.grpc.istio.v1.auth.IstioCertificateService;
    const client = new Client(target, grpc.credentials.createInsecure());
    // A generic client that names the method only by its wire path, with our codecs.
    const raw = new grpc.Client(target, grpc.credentials.createInsecure());
    try {
      const typed = await new Promise<IstioCertificateResponse__Output | undefined>((resolve, reject) =>
        client.CreateCertificate(
          {
            csr: '-----BEGIN CERTIFICATE REQUEST-----\n...',
            validityDuration: 86400,
            metadata: { fields: { ClusterID: { stringValue: 'c1' } } },
          },
          { deadline: deadline() },
          (err, resp) => (err ? reject(err) : resolve(resp)),
        ),
      );
      expect(typed?.certChain).toEqual(['leaf for 86400s', 'root']);
      expect(typed?.rootCert).toBeNull();
      expect(certMetadata).toEqual(['c1']);

      const viaPath = await new Promise<IstioCertificateResponse__Output | undefined>((resolve, reject) =>
        raw.makeUnaryRequest(
          METHOD_PATH.createCertificate,
          (req: Parameters<typeof codecs.istioCertificateRequest.encode>[0]) => codecs.istioCertificateRequest.encode(req),
          (buf: Buffer) => codecs.istioCertificateResponse.decode(buf),
          { csr: '-----BEGIN CERTIFICATE REQUEST-----\n...', validityDuration: 3600 },
          new grpc.Metadata(),
          { deadline: deadline() },
          (err, resp) => (err ? reject(err) : resolve(resp)),
        ),
      );
      expect(viaPath?.certChain).toEqual(['leaf for 3600s', 'root']);

      const rejected = await new Promise<grpc.ServiceError>((resolve, reject) =>
        client.CreateCertificate({ csr: 'junk' }, { deadline: deadline() }, (err) => (err ? resolve(err) : reject(new Error('expected INVALID_ARGUMENT')))),
      );
      expect(rejected.code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
      raw.close();
    }
  });
});
