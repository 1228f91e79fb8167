// Loads smesh's wire contract (delta ADS, Istio workload/authorization/CA, smesh traffic policy) and
// hands out gRPC service definitions and message codecs that agree with proto/generated/ types.
//
// Load options (MESH_PROTO_OPTIONS), and why:
//   keepCase: false   fields are camelCase in TypeScript (`trustDomain`); the wire is unaffected.
//                     Exception: google.protobuf.Any is protobufjs's built-in and keeps
//                     `type_url`/`value`.
//   longs: Number     int64/uint64 decode to `number`. Every 64-bit field here (Duration.seconds,
//                     validity_duration, byte rates, table sizes) stays far below 2^53.
//   enums: String     enums decode to their names (`'HBONE'`); encoding accepts names or numbers.
//   bytes: (default)  bytes decode to Buffer (raw 4/16-byte IPs); encoding accepts Uint8Array.
//   defaults: true    absent scalars/repeated/maps decode to their zero values, absent messages
//                     to null, so readers need no `?? ''` everywhere. Presence is only observable
//                     through message-typed fields (wrappers such as UInt32Value) and oneofs.
//                     Re-encoding a decoded object writes those zero values explicitly (protobufjs
//                     encodes any field that is present); the result decodes the same everywhere.
//   oneofs: true      each oneof gets a discriminator with the set member's name, e.g.
//                     `address.type === 'workload'`.
//   json: false       Any stays `{ type_url, value }`; pack and unpack with the codecs below.
// These must match the flags in mk/proto.mk (the generated `__Output` types assume them).

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';

import type { ProtoGrpcType } from './generated/mesh';
import type { AggregatedDiscoveryServiceDefinition } from './generated/envoy/service/discovery/v3/AggregatedDiscoveryService';
import type { DeltaDiscoveryRequest, DeltaDiscoveryRequest__Output } from './generated/envoy/service/discovery/v3/DeltaDiscoveryRequest';
import type { DeltaDiscoveryResponse, DeltaDiscoveryResponse__Output } from './generated/envoy/service/discovery/v3/DeltaDiscoveryResponse';
import type { IstioCertificateServiceDefinition } from './generated/istio/v1/auth/IstioCertificateService';
import type { IstioCertificateRequest, IstioCertificateRequest__Output } from './generated/istio/v1/auth/IstioCertificateRequest';
import type { IstioCertificateResponse, IstioCertificateResponse__Output } from './generated/istio/v1/auth/IstioCertificateResponse';
import type { Address, Address__Output } from './generated/istio/workload/Address';
import type { Workload, Workload__Output } from './generated/istio/workload/Workload';
import type { Service, Service__Output } from './generated/istio/workload/Service';
import type { Authorization, Authorization__Output } from './generated/istio/security/Authorization';
import type { TrafficPolicy, TrafficPolicy__Output } from './generated/smesh/traffic/v1alpha1/TrafficPolicy';
import type { TrafficShaping, TrafficShaping__Output } from './generated/smesh/traffic/v1alpha1/TrafficShaping';

export type { ProtoGrpcType };

/** Options for both @grpc/proto-loader and the codecs; see the header comment. */
export const MESH_PROTO_OPTIONS: Readonly<protoLoader.Options> = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  json: false,
});

/** The file that imports every other one, relative to the proto directory. */
export const MESH_PROTO_ENTRY = 'smesh/mesh.proto';

const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Type URLs of the resources carried on the delta ADS stream. */
export const TYPE_URL = Object.freeze({
  address: `${TYPE_URL_PREFIX}istio.workload.Address`,
  authorization: `${TYPE_URL_PREFIX}istio.security.Authorization`,
  trafficPolicy: `${TYPE_URL_PREFIX}smesh.traffic.v1alpha1.TrafficPolicy`,
  trafficShaping: `${TYPE_URL_PREFIX}smesh.traffic.v1alpha1.TrafficShaping`,
  node: `${TYPE_URL_PREFIX}smesh.mesh.v1alpha1.Node`,
  localWorkload: `${TYPE_URL_PREFIX}smesh.mesh.v1alpha1.LocalWorkload`,
  meshConfig: `${TYPE_URL_PREFIX}smesh.mesh.v1alpha1.MeshConfig`,
} as const);

/** Full gRPC method paths, as they appear on the wire (HTTP/2 :path). */
export const METHOD_PATH = Object.freeze({
  deltaAggregatedResources: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
  streamAggregatedResources: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
  createCertificate: '/istio.v1.auth.IstioCertificateService/CreateCertificate',
} as const);

/** An Any as encoded by the codecs and as decoded with MESH_PROTO_OPTIONS. */
export interface PackedAny {
  type_url: string;
  value: Buffer;
}

/**
 * Encoder/decoder for one message type, with the same conversions the gRPC (de)serializers use:
 * `encode` accepts the permissive input type, `decode` returns the `__Output` type.
 */
export interface MessageCodec<In, Out> {
  /** Fully qualified name, e.g. "istio.workload.Address". */
  readonly typeName: string;
  /** "type.googleapis.com/" + typeName. */
  readonly typeUrl: string;
  encode(value: In): Buffer;
  decode(bytes: Uint8Array): Out;
  /** Wraps a message in an Any with this type's URL. */
  pack(value: In): PackedAny;
  /** Decodes an Any; throws a TypeError if its type URL is not this type's. */
  unpack(any: { type_url: string; value: Uint8Array | string }): Out;
}

export interface MeshCodecs {
  address: MessageCodec<Address, Address__Output>;
  workload: MessageCodec<Workload, Workload__Output>;
  service: MessageCodec<Service, Service__Output>;
  authorization: MessageCodec<Authorization, Authorization__Output>;
  trafficPolicy: MessageCodec<TrafficPolicy, TrafficPolicy__Output>;
  trafficShaping: MessageCodec<TrafficShaping, TrafficShaping__Output>;
  deltaDiscoveryRequest: MessageCodec<DeltaDiscoveryRequest, DeltaDiscoveryRequest__Output>;
  deltaDiscoveryResponse: MessageCodec<DeltaDiscoveryResponse, DeltaDiscoveryResponse__Output>;
  istioCertificateRequest: MessageCodec<IstioCertificateRequest, IstioCertificateRequest__Output>;
  istioCertificateResponse: MessageCodec<IstioCertificateResponse, IstioCertificateResponse__Output>;
}

export interface MeshProtos {
  /** The proto-loader package definition (for grpc.loadPackageDefinition, reflection, …). */
  packageDefinition: protoLoader.PackageDefinition;
  /** Typed view of grpc.loadPackageDefinition(packageDefinition): client constructors by package. */
  grpc: ProtoGrpcType;
  /** For grpc.Server#addService; handlers are typed by AggregatedDiscoveryServiceHandlers. */
  adsService: AggregatedDiscoveryServiceDefinition;
  /** For grpc.Server#addService; handlers are typed by IstioCertificateServiceHandlers. */
  certificateService: IstioCertificateServiceDefinition;
  /** Ready-made codecs for the messages smesh handles directly. */
  codecs: MeshCodecs;
  /** A codec for any other loaded message, by fully qualified name; throws if unknown. */
  codecFor<In = Record<string, unknown>, Out = Record<string, unknown>>(typeName: string): MessageCodec<In, Out>;
}

export interface LoadMeshProtosOptions {
  /**
   * Directory holding the .proto tree. Default: this module's directory when it contains the
   * tree (running from source), else `<repo>/proto` relative to the compiled `dist/proto/`.
   */
  protoDir?: string;
}

const loaded = new Map<string, MeshProtos>();

/** Loads (once per directory) and returns the mesh's service definitions and codecs. */
export function loadMeshProtos(options: LoadMeshProtosOptions = {}): MeshProtos {
  const protoDir = path.resolve(options.protoDir ?? defaultProtoDir());
  const cached = loaded.get(protoDir);
  if (cached) return cached;
  const protos = buildMeshProtos(protoDir);
  loaded.set(protoDir, protos);
  return protos;
}

function defaultProtoDir(): string {
  const candidates = [__dirname, path.resolve(__dirname, '..', '..', 'proto')];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, MESH_PROTO_ENTRY))) return dir;
  }
  throw new Error(`cannot find ${MESH_PROTO_ENTRY} in ${candidates.join(' or ')}; pass protoDir to loadMeshProtos()`);
}

function buildMeshProtos(protoDir: string): MeshProtos {
  const entry = path.join(protoDir, MESH_PROTO_ENTRY);
  if (!fs.existsSync(entry)) {
    throw new Error(`cannot find ${MESH_PROTO_ENTRY} under protoDir ${protoDir}`);
  }
  // One protobufjs root serves both the codecs and (via its JSON form) the gRPC definitions.
  // google/protobuf/* imports are protobufjs built-ins and never reach resolvePath.
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => (path.isAbsolute(target) ? target : path.join(protoDir, target));
  root.loadSync(entry, { keepCase: MESH_PROTO_OPTIONS.keepCase });
  root.resolveAll();

  const packageDefinition = protoLoader.fromJSON(root.toJSON(), { ...MESH_PROTO_OPTIONS });
  const grpcObject = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType;

  const codecFor = <In, Out>(typeName: string): MessageCodec<In, Out> => makeCodec<In, Out>(root, typeName);

  return {
    packageDefinition,
    grpc: grpcObject,
    adsService: grpcObject.envoy.service.discovery.v3.AggregatedDiscoveryService.service,
    certificateService: grpcObject.istio.v1.auth.IstioCertificateService.service,
    codecs: {
      address: codecFor('istio.workload.Address'),
      workload: codecFor('istio.workload.Workload'),
      service: codecFor('istio.workload.Service'),
      authorization: codecFor('istio.security.Authorization'),
      trafficPolicy: codecFor('smesh.traffic.v1alpha1.TrafficPolicy'),
      trafficShaping: codecFor('smesh.traffic.v1alpha1.TrafficShaping'),
      deltaDiscoveryRequest: codecFor('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
      deltaDiscoveryResponse: codecFor('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
      istioCertificateRequest: codecFor('istio.v1.auth.IstioCertificateRequest'),
      istioCertificateResponse: codecFor('istio.v1.auth.IstioCertificateResponse'),
    },
    codecFor,
  };
}

function makeCodec<In, Out>(root: protobuf.Root, typeName: string): MessageCodec<In, Out> {
  let type: protobuf.Type;
  try {
    type = root.lookupType(typeName);
  } catch (err) {
    throw new Error(`unknown protobuf message type ${typeName}`, { cause: err });
  }
  const typeUrl = TYPE_URL_PREFIX + typeName;
  // Same steps as @grpc/proto-loader's serializer and deserializer.
  const encode = (value: In): Buffer => {
    const bytes = type.encode(type.fromObject(value as { [k: string]: unknown })).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  const decode = (bytes: Uint8Array): Out => type.toObject(type.decode(bytes), MESH_PROTO_OPTIONS as protobuf.IConversionOptions) as Out;
  return {
    typeName,
    typeUrl,
    encode,
    decode,
    pack: (value) => ({ type_url: typeUrl, value: encode(value) }),
    unpack: (any) => {
      if (any.type_url !== typeUrl) {
        throw new TypeError(`expected an Any of type ${typeUrl}, got ${JSON.stringify(any.type_url)}`);
      }
      const value = typeof any.value === 'string' ? Buffer.from(any.value, 'base64') : any.value;
      return decode(value);
    },
  };
}
