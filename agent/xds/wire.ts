// Hand-written protobuf decoders for the high-volume xDS messages (DeltaDiscoveryResponse envelope, istio.workload.Address): straight into the fields the agent reads, no protobufjs toObject.
import { Reader, util } from 'protobufjs';
import { ipv4Text } from '../../core/net/addr';

/** A google.protobuf.Any as the xDS layers pass it: type URL and the encoded message. */
export interface AnyMessage {
  readonly type_url: string;
  readonly value: Uint8Array;
}

// Why: at 50k Address resources, protobufjs decode + toObject (+ the envelope's toObject in grpc-js) made
// two full object trees per resource; these read the wire once and skip every field the agent ignores.
// Semantics follow proto3 as protobufjs applies them: a repeated scalar field appends, a singular field's
// last occurrence wins, unknown fields are skipped, truncated input throws (the caller reports it).

/** The DeltaDiscoveryResponse fields the client reads (absent strings are '', an absent Any is null). */
export interface WireDeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: WireResource[];
  removedResources: string[];
  /** Which control plane instance answered (identifier: istiod's JSON {Component, ID, Info}); null when absent. */
  controlPlane: { identifier: string } | null;
}

export interface WireResource {
  name: string;
  version: string;
  /** Bytes are a view into the received message: decode them before the next response arrives. */
  resource: AnyMessage | null;
}

export interface WirePort {
  servicePort: number;
  targetPort: number;
  /** Istio's app_protocol: enum name ('UNKNOWN', 'HTTP11', …) or the number when unknown. */
  appProtocol: string | number;
  smeshAppProtocol: string;
}

/** The istio.workload.Workload fields the agent reads. */
export interface WireWorkload {
  uid: string;
  name: string;
  namespace: string;
  /** A 4-byte address arrives already formatted (dotted quad): no view object per workload; other lengths as bytes. */
  addresses: Array<string | Uint8Array>;
  /** Enum name ('NONE', 'HBONE', 'LEGACY_ISTIO_MTLS') or the number when unknown. */
  tunnelProtocol: string | number;
  trustDomain: string;
  serviceAccount: string;
  node: string;
  canonicalName: string;
  canonicalRevision: string;
  workloadName: string;
  /** map<string, PortList> in wire order (a repeated key keeps its first position, takes the last value). */
  services: Map<string, { ports: WirePort[] }>;
  authorizationPolicies: string[];
}

/** The istio.workload.Service fields the agent reads. */
export interface WireService {
  name: string;
  namespace: string;
  hostname: string;
  addresses: Array<{ address: Uint8Array }>;
  ports: WirePort[];
}

export type WireAddress = { type: 'workload'; workload: WireWorkload } | { type: 'service'; service: WireService } | { type: null };

/** istio.workload.TunnelProtocol by number (LEGACY_ISTIO_MTLS = 2: a workload with an Istio sidecar). */
const TUNNEL_PROTOCOLS: readonly string[] = ['NONE', 'HBONE', 'LEGACY_ISTIO_MTLS'];
const EMPTY = new Uint8Array(0);

/**
 * Strings that repeat across resources (type URLs, namespaces, nodes, service accounts, service references …),
 * found by their bytes: a value seen before costs a hash over its bytes, no UTF-8 decode and no new string (60k
 * resources carry ~10 of them each). ASCII values up to 128 bytes; anything else is decoded as usual.
 */
const REPEATED_MAX = 65_536; // 10k services: ~20k distinct values (service references, canonical names)
const repeated = new Map<number, string>();

/** Drops the repeated-value table (see releaseSharingCaches in convert.ts). */
export function forgetRepeatedStrings(): void {
  repeated.clear();
}

function repeatedString(r: Reader): string {
  const lenPos = r.pos;
  const len = r.uint32();
  const start = r.pos;
  const end = start + len;
  const buf = r.buf;
  if (len <= 128 && end <= r.len) {
    let h = 0x811c9dc5 ^ len;
    let ascii = true;
    for (let i = start; i < end; i++) {
      const b = buf[i]!;
      if (b >= 0x80) {
        ascii = false;
        break;
      }
      h = Math.imul(h ^ b, 0x01000193);
    }
    if (ascii) {
      h &= 0x3fffffff; // a small integer key (31-bit Smi): no heap number per lookup
      const hit = repeated.get(h);
      if (hit !== undefined && hit.length === len) {
        let same = true;
        for (let i = 0; i < len; i++) {
          if (hit.charCodeAt(i) !== buf[start + i]) {
            same = false;
            break;
          }
        }
        if (same) {
          r.pos = end;
          return hit;
        }
      }
      r.pos = lenPos;
      const s = r.string();
      if (repeated.size >= REPEATED_MAX) repeated.clear();
      repeated.set(h, s);
      return s;
    }
  }
  r.pos = lenPos;
  return r.string();
}

function reader(bytes: Uint8Array): Reader {
  return Reader.create(bytes);
}

/** Bounds of a length-delimited sub-message starting at the reader's position. */
function subEnd(r: Reader): number {
  const len = r.uint32();
  const end = r.pos + len;
  if (end > r.len) throw new RangeError(`index out of range: ${r.pos} + ${len} > ${r.len}`);
  return end;
}

/**
 * A google.protobuf.Any whose value stays where it is in the received message: `value` makes a view of it when
 * read, and decodeAddressOf reads it in place (no Buffer object per resource).
 */
export class WireAny implements AnyMessage {
  constructor(
    readonly type_url: string,
    readonly buf: Uint8Array,
    readonly start: number,
    readonly end: number,
  ) {}

  get value(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }
}

function decodeAny(r: Reader, end: number): WireAny {
  let typeUrl = '';
  let start = 0;
  let stop = 0;
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        typeUrl = repeatedString(r);
        break;
      case 2:
        stop = subEnd(r);
        start = r.pos;
        r.pos = stop;
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return new WireAny(typeUrl, r.buf, start, stop);
}

function decodeResource(r: Reader, end: number): WireResource {
  const out: WireResource = { name: '', version: '', resource: null };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        out.version = r.string();
        break;
      case 2:
        out.resource = decodeAny(r, subEnd(r));
        break;
      case 3:
        out.name = r.string();
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return out;
}

/** envoy.service.discovery.v3.DeltaDiscoveryResponse → the fields the xDS client uses. */
export function decodeDeltaResponse(bytes: Uint8Array): WireDeltaResponse {
  const r = reader(bytes);
  const out: WireDeltaResponse = { systemVersionInfo: '', typeUrl: '', nonce: '', resources: [], removedResources: [], controlPlane: null };
  while (r.pos < r.len) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        out.systemVersionInfo = r.string();
        break;
      case 2:
        out.resources.push(decodeResource(r, subEnd(r)));
        break;
      case 4:
        out.typeUrl = r.string();
        break;
      case 5:
        out.nonce = r.string();
        break;
      case 6:
        out.removedResources.push(r.string());
        break;
      case 7:
        out.controlPlane = { identifier: decodeControlPlaneIdentifier(r, subEnd(r), out.controlPlane?.identifier ?? '') };
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return out;
}

/** envoy.config.core.v3.ControlPlane → its identifier (a repeated message merges: the last identifier wins). */
function decodeControlPlaneIdentifier(r: Reader, end: number, previous: string): string {
  let identifier = previous;
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === 1) identifier = r.string();
    else r.skipType(tag & 7);
  }
  return identifier;
}

const APP_PROTOCOLS: readonly string[] = ['UNKNOWN', 'HTTP11', 'HTTP2', 'GRPC', 'TCP', 'TLS'];

function decodePort(r: Reader, end: number): WirePort {
  const p: WirePort = { servicePort: 0, targetPort: 0, appProtocol: 'UNKNOWN', smeshAppProtocol: '' };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        p.servicePort = r.uint32();
        break;
      case 2:
        p.targetPort = r.uint32();
        break;
      case 3: {
        const n = r.int32();
        p.appProtocol = APP_PROTOCOLS[n] ?? n;
        break;
      }
      case 1000:
        p.smeshAppProtocol = repeatedString(r);
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return p;
}

function decodePortList(r: Reader, end: number): { ports: WirePort[] } {
  const ports: WirePort[] = [];
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === 1) ports.push(decodePort(r, subEnd(r)));
    else r.skipType(tag & 7);
  }
  return { ports };
}

/** True when the length-delimited bytes at the reader's position spell `s` (ASCII compare, no decode). */
function bytesEqual(buf: Uint8Array, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) if (buf[start + i] !== s.charCodeAt(i)) return false;
  return true;
}

/** UTF-8 bytes [start, end) as a string, the way protobufjs's readers decode strings. */
function utf8At(buf: Uint8Array, start: number, end: number): string {
  const b = buf as Uint8Array & { utf8Slice?: (start: number, end: number) => string };
  return b.utf8Slice ? b.utf8Slice(start, end) : util.utf8.read(buf, start, end);
}

/**
 * `name`: the resource's name; a uid with the same bytes (the normal case) takes that string instead of a decoded
 * copy. workload_name is decoded only when canonical_name is empty (it is only read then).
 */
function decodeWorkload(r: Reader, end: number, name?: string): WireWorkload {
  const w: WireWorkload = {
    uid: '',
    name: '',
    namespace: '',
    addresses: [],
    tunnelProtocol: 'NONE',
    trustDomain: '',
    serviceAccount: '',
    node: '',
    canonicalName: '',
    canonicalRevision: '',
    workloadName: '',
    services: new Map(),
    authorizationPolicies: [],
  };
  let workloadNameStart = -1;
  let workloadNameEnd = -1;
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 20: {
        const stop = subEnd(r);
        if (name !== undefined && bytesEqual(r.buf, r.pos, stop, name)) w.uid = name;
        else w.uid = utf8At(r.buf, r.pos, stop);
        r.pos = stop;
        break;
      }
      case 1:
        w.name = r.string();
        break;
      case 2:
        w.namespace = repeatedString(r);
        break;
      case 3: {
        const stop = subEnd(r);
        const b = r.buf;
        const p = r.pos;
        w.addresses.push(stop - p === 4 ? ipv4Text(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!) : b.subarray(p, stop));
        r.pos = stop;
        break;
      }
      case 5: {
        const n = r.int32();
        w.tunnelProtocol = TUNNEL_PROTOCOLS[n] ?? n;
        break;
      }
      case 6:
        w.trustDomain = repeatedString(r);
        break;
      case 7:
        w.serviceAccount = repeatedString(r);
        break;
      case 9:
        w.node = repeatedString(r);
        break;
      case 10:
        w.canonicalName = repeatedString(r);
        break;
      case 11:
        w.canonicalRevision = repeatedString(r);
        break;
      case 13:
        workloadNameEnd = subEnd(r);
        workloadNameStart = r.pos;
        r.pos = workloadNameEnd;
        break;
      case 22: {
        // map<string, PortList>: each entry is {1: key, 2: value}; a repeated key replaces the earlier entry.
        const entryEnd = subEnd(r);
        let key = '';
        let value: { ports: WirePort[] } = { ports: [] };
        while (r.pos < entryEnd) {
          const t = r.uint32();
          if (t >>> 3 === 1) key = repeatedString(r);
          else if (t >>> 3 === 2) value = decodePortList(r, subEnd(r));
          else r.skipType(t & 7);
        }
        w.services.set(key, value);
        break;
      }
      case 16:
        w.authorizationPolicies.push(repeatedString(r));
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  if (workloadNameStart >= 0 && w.canonicalName === '') w.workloadName = utf8At(r.buf, workloadNameStart, workloadNameEnd);
  return w;
}

function decodeNetworkAddress(r: Reader, end: number): { address: Uint8Array } {
  let address: Uint8Array = EMPTY;
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === 2) address = r.bytes();
    else r.skipType(tag & 7);
  }
  return { address };
}

function decodeService(r: Reader, end: number): WireService {
  const s: WireService = { name: '', namespace: '', hostname: '', addresses: [], ports: [] };
  while (r.pos < end) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        s.name = r.string();
        break;
      case 2:
        s.namespace = repeatedString(r);
        break;
      case 3:
        s.hostname = r.string();
        break;
      case 4:
        s.addresses.push(decodeNetworkAddress(r, subEnd(r)));
        break;
      case 5:
        s.ports.push(decodePort(r, subEnd(r)));
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return s;
}

/** istio.workload.Address → its workload or service (the oneof member that came last on the wire). */
export function decodeAddress(bytes: Uint8Array): WireAddress {
  return decodeAddressFrom(reader(bytes));
}

/** decodeAddress of an Any's value, read in place when it came from decodeDeltaResponse. */
export function decodeAddressOf(any: AnyMessage, name?: string): WireAddress {
  if (!(any instanceof WireAny)) return decodeAddressFrom(reader(any.value), name);
  const r = reader(any.buf);
  r.pos = any.start;
  r.len = any.end;
  return decodeAddressFrom(r, name);
}

function decodeAddressFrom(r: Reader, name?: string): WireAddress {
  let out: WireAddress = { type: null };
  while (r.pos < r.len) {
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        out = { type: 'workload', workload: decodeWorkload(r, subEnd(r), name) };
        break;
      case 2:
        out = { type: 'service', service: decodeService(r, subEnd(r)) };
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return out;
}
