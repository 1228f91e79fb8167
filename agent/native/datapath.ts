// Typed facade over the native datapath: load/attach the BPF programs, enroll pods, mesh destinations, recover original destinations.
import { ADDR_PORT } from './abi';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import { endianness } from 'node:os';
import { SmeshError } from '../../core/errors';
import { ipToKey, ipv4Bytes, isV4MappedKey, keyToIp, writeIpKey } from '../../core/net/addr';
import { loadRawNative, type RawDatapath, type RawNative, type RawNativeError } from './raw';

export interface DatapathOptions {
  bpffsDir: string;
  cgroupPath: string;
  captureIp4: string;
  capturePort: number;
  captureIp6?: string;
  /**
   * The network namespace file of the outbound listener (the agent's own: /proc/self/ns/net). Given, IPv4 redirects
   * are spread over `captureSpread` capture addresses (captureIp4 + [0, n), same port): the datapath makes the capture
   * address's /24 local on that namespace's lo and attaches a pinned sk_lookup program there that hands every capture
   * tuple to the listener registered with `setOutboundListener` (which may be bound anywhere in that namespace). Absent:
   * one tuple, captureIp4:capturePort, served by whatever listens there.
   */
  captureNetns?: string;
  /** Capture tuples when captureNetns is given: 1..254, and captureIp4 + n - 1 must stay at .254 or below. Default 64. */
  captureSpread?: number;
}

/** Capture tuples per node by default: 64 × the ephemeral port range per pod per TIME_WAIT period (issue 12 item 2). */
export const DEFAULT_CAPTURE_SPREAD = 64;

export interface AttachInfo {
  reused: boolean; // pinned links were found and programs swapped in place
  links: string[];
}

/** Inbound mTLS mode of a local pod address (and port) in the kernel: STRICT drops plaintext SYNs, PERMISSIVE counts them. */
/** TRUSTED_SOURCE (port 0 only) marks a node host address whose plaintext (kubelet probes) STRICT lets through. */
export type InboundMode = 'STRICT' | 'PERMISSIVE' | 'TRUSTED_SOURCE';

/** Totals of the kernel's inbound plaintext check (summed over CPUs, since the maps were created). */
export interface InboundCounters {
  strictDropped: number;
  /** Plaintext connections to PERMISSIVE pods: captured into the proxy plus those passed to the app uncaptured. */
  plaintextAccepted: number;
  /** Of those, handed to the node proxy's in-pod listener (sk_lookup). */
  plaintextCaptured?: number;
  /** Of those, passed to the app because no listener was registered for the pod or the kernel refused it. */
  plaintextUncaptured?: number;
}

/** The sk_lookup port key of the plaintext capture listener (bpf/shared/abi.h SMESH_INPOD_PLAINTEXT_PORT). */
export const INPOD_PLAINTEXT_PORT = 15006;
/** The sk_lookup port key of a workload's pod-addressed HBONE listener (bpf/shared/abi.h SMESH_INPOD_HBONE_PORT). */
export const INPOD_HBONE_PORT = 15008;

/** Which in-pod listener: inbound plaintext capture, or the workload's HBONE server on `<pod IP>:15008`. */
export type CaptureKind = 'plaintext' | 'hbone';
const CAPTURE_PORT: Record<CaptureKind, number> = { plaintext: INPOD_PLAINTEXT_PORT, hbone: INPOD_HBONE_PORT };

/** Which way a pod bandwidth limit applies: traffic the pod sends, or traffic sent to it. */
export type BandwidthDirection = 'egress' | 'ingress';
const BANDWIDTH_DIRECTION_CODE: Record<BandwidthDirection, number> = { egress: 1, ingress: 2 };

/** How a device is shaped: departure-time pacing (BPF + fq) or, on a kernel without sch_fq, a token bucket qdisc. */
export type BandwidthMode = 'edt' | 'tbf';

/** A pod's devices for bandwidth pacing: its own interface (in its namespace) and the veth peer in the agent's (0: none). */
export interface PodDevices {
  readonly ifindex: number;
  readonly ifname: string;
  readonly peerIfindex: number;
  readonly peerIfname: string;
}

export interface Datapath {
  readonly attachInfo: AttachInfo;
  enrollPod(netnsCookie: bigint, workloadId: number): void;
  unenrollPod(netnsCookie: bigint): void;
  enrolledPods(): Array<{ cookie: bigint; workloadId: number }>;
  addMeshedDestination(ip: string, port: number): void; // port 0 = every port of that IP
  removeMeshedDestination(ip: string, port: number): void;
  meshedDestinations(): Array<{ ip: string; port: number }>;
  /** Many destinations in one map operation (BPF_MAP_UPDATE_BATCH); all validated before any is written. */
  addMeshedDestinations(dests: ReadonlyArray<{ ip: string; port: number }>): void;
  /** Many destinations at once; absent ones are skipped. Returns how many were removed. */
  removeMeshedDestinations(dests: ReadonlyArray<{ ip: string; port: number }>): number;
  /** connect() of `workloadId` to ip:port (port 0 = every port) fails at once with ECONNREFUSED. */
  addConnectDeny(workloadId: number, ip: string, port: number): void;
  removeConnectDeny(workloadId: number, ip: string, port: number): void;
  connectDenies(): Array<{ workloadId: number; ip: string; port: number }>;
  /** Inbound mode of a local pod address; port 0 = every port, an exact port overrides it. */
  setInboundMode(ip: string, port: number, mode: InboundMode): void;
  removeInboundMode(ip: string, port: number): void;
  inboundModes(): Array<{ ip: string; port: number; mode: InboundMode }>;
  inboundCounters(): InboundCounters;
  /** BPF_PROG_TEST_RUN of a loaded sk_lookup program on one synthetic lookup (tests): verdict and assigned socket cookie. */
  testSkLookup(
    program: string,
    lookup: { readonly protocol?: 'tcp' | 'udp'; readonly remote: string; readonly remotePort: number; readonly local: string; readonly localPort: number },
  ): { verdict: 'pass' | 'drop'; cookie: bigint };
  /**
   * Attaches the inbound plaintext capture (sk_lookup) to a pod's network namespace, pinned under the bpffs dir so
   * that it outlives an agent restart (a pinned link of that namespace is reused). `releaseInboundCapture` detaches it.
   */
  attachInboundCapture(netnsPath: string): { fd: number; pin: string };
  /** Unpins (and so detaches) a capture link; `fd`, when given, is closed too. */
  releaseInboundCapture(pin: string, fd?: number): void;
  /** Pins of capture links under the bpffs dir (links/inpod-<netns inode>), live or stale. */
  inboundCapturePins(): string[];
  /** Marks a local pod address as captured: while no listener is registered its plaintext SYNs are dropped silently. */
  holdPlaintext(ip: string): void;
  releasePlaintext(ip: string): void;
  heldPlaintext(): string[];
  /** Plaintext (or, kind 'hbone', TCP to port 15008) to the local pod address `ip` is handed to the listening socket `fd` (made in the pod's namespace). */
  setCaptureListener(ip: string, fd: number, kind?: CaptureKind): void;
  removeCaptureListener(ip: string, kind?: CaptureKind): void;
  captureListeners(kind?: CaptureKind): string[];
  /** How many capture tuples redirected IPv4 connections are spread over (1 = the capture address alone). */
  readonly captureSpread: number;
  /** The outbound listener (a listening TCP socket fd) that connections to every capture tuple are handed to. */
  setOutboundListener(fd: number): void;
  /** Connections the kernel refused at connect() (connect-time deny), per (workload, destination, port) entry; totals. */
  connectDenyCounts(): Array<{ workloadId: number; ip: string; port: number; count: number }>;
  /** Plaintext connections STRICT dropped in the kernel, per (source address, local pod address, port); totals. */
  strictDropCounts(): Array<{ sourceIp: string; ip: string; port: number; count: number }>;
  /** The pod address's aggregate rate in a direction (bits per second, ≥ 8); packets of it are paced where attached. */
  setBandwidth(ip: string, direction: BandwidthDirection, bitsPerSecond: number): void;
  removeBandwidth(ip: string, direction: BandwidthDirection): void;
  /** Rates in the kernel map, with packets dropped for being too far over the rate (past the 2 s horizon). */
  bandwidths(): Array<{ ip: string; direction: BandwidthDirection; bitsPerSecond: number; dropped: number }>;
  /**
   * fq as root qdisc plus the direction's pacing program (tc egress) on the device `ifindex` of `netnsPath` ('' = the
   * agent's namespace): egress on the pod's own interface, ingress on its host-side veth. Re-attaching replaces in place.
   * 'edt': paced by departure time at the rate in the map (a rate change is one map write). 'tbf': the kernel has no
   * sch_fq, so a token bucket qdisc at `bitsPerSecond` shapes the device instead (a rate change needs a new attach).
   */
  attachBandwidth(direction: BandwidthDirection, netnsPath: string, ifindex: number, bitsPerSecond: number): BandwidthMode;
  close(): void; // closes fds; pinned links/maps stay (restart keeps redirecting)
  destroy(): void; // unpins and detaches everything (uninstall / test cleanup)
}

const INBOUND_MODE_CODE: Record<InboundMode, number> = { STRICT: 1, PERMISSIVE: 2, TRUSTED_SOURCE: 3 };
const INBOUND_MODE_NAME: Readonly<Record<number, InboundMode>> = { 1: 'STRICT', 2: 'PERMISSIVE', 3: 'TRUSTED_SOURCE' };

/** The native operations this facade needs; tests substitute a fake via `createDatapathApi`. */
export interface DatapathApi {
  openDatapath(opts: DatapathOptions): Promise<Datapath>;
  netnsCookie(netnsPath: string): Promise<bigint>;
  netnsListener(netnsPath: string, family?: 4 | 6): Promise<number>;
  originalDestination(fd: number, bpffsDir?: string): { ip: string; port: number } | null;
  socketCookie(fd: number): bigint;
}

function bandwidthCode(direction: BandwidthDirection): number {
  const code = BANDWIDTH_DIRECTION_CODE[direction];
  if (code === undefined) throw new TypeError(`direction must be 'egress' or 'ingress', got ${String(direction)}`);
  return code;
}

const U64_MAX = (1n << 64n) - 1n;

function checkCookie(cookie: bigint): void {
  if (typeof cookie !== 'bigint' || cookie < 0n || cookie > U64_MAX) throw new TypeError(`netnsCookie must be a bigint in 0..2^64-1, got ${String(cookie)}`);
}

function checkPort(port: number, field: string, allowZero: boolean): void {
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(port) || port < min || port > 65535) throw new TypeError(`${field} must be an integer ${min}..65535, got ${String(port)}`);
}

function checkWorkloadId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new TypeError(`workloadId must be an integer 0..4294967295, got ${String(id)}`);
}

function checkPath(value: string, field: string): void {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${field} must be a non-empty path`);
}

/** sizeof(struct smesh_addr_port) (bpf/shared/abi.h; agent/native/abi.ts): 16-byte address, u16 port in host order, u16 pad. */
const ADDR_PORT_SIZE = ADDR_PORT.size;
const ADDR_PORT_PORT = ADDR_PORT.members.port;
const HOST_LE = endianness() === 'LE';

/** Packs destinations as an array of struct smesh_addr_port, validating every entry first. */
function packAddrPorts(dests: ReadonlyArray<{ ip: string; port: number }>): Buffer {
  const out = Buffer.alloc(dests.length * ADDR_PORT_SIZE);
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    // (field names for errors are built only on an error: 60k template strings were a third of this loop)
    if (!Number.isInteger(d.port) || d.port < 0 || d.port > 65535) checkPort(d.port, `dests[${i}].port`, true);
    const off = i * ADDR_PORT_SIZE;
    try {
      writeIpKey(out, off, d.ip, 'ip', true);
    } catch {
      writeIpKey(out, off, d.ip, `dests[${i}].ip`); // throws again, naming the entry
    }
    if (HOST_LE) out.writeUInt16LE(d.port, off + ADDR_PORT_PORT);
    else out.writeUInt16BE(d.port, off + ADDR_PORT_PORT);
  }
  return out;
}

function bpfError(err: unknown): unknown {
  if (err instanceof TypeError || err instanceof SmeshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SmeshError('SMESH_ERR_BPF', message, { cause: err as RawNativeError });
}

function wrapSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw bpfError(err);
  }
}

class NativeDatapath implements Datapath {
  readonly attachInfo: AttachInfo;
  private closed = false;

  constructor(
    private readonly raw: RawDatapath,
    readonly bpffsDir: string,
    readonly captureSpread: number,
    private readonly onClose: (dp: NativeDatapath) => void,
  ) {
    const info = raw.attachInfo();
    this.attachInfo = { reused: info.reused, links: [...info.links] };
  }

  connsPinPath(): string {
    return this.raw.connsPinPath();
  }

  enrollPod(netnsCookie: bigint, workloadId: number): void {
    checkCookie(netnsCookie);
    checkWorkloadId(workloadId);
    wrapSync(() => this.raw.podUpdate(netnsCookie, workloadId));
  }

  unenrollPod(netnsCookie: bigint): void {
    checkCookie(netnsCookie);
    wrapSync(() => this.raw.podDelete(netnsCookie));
  }

  enrolledPods(): Array<{ cookie: bigint; workloadId: number }> {
    return wrapSync(() => this.raw.pods());
  }

  addMeshedDestination(ip: string, port: number): void {
    const key = ipToKey(ip);
    checkPort(port, 'port', true);
    wrapSync(() => this.raw.destUpdate(key, port));
  }

  removeMeshedDestination(ip: string, port: number): void {
    const key = ipToKey(ip);
    checkPort(port, 'port', true);
    wrapSync(() => this.raw.destDelete(key, port));
  }

  addMeshedDestinations(dests: ReadonlyArray<{ ip: string; port: number }>): void {
    if (dests.length === 0) return;
    const keys = packAddrPorts(dests);
    const batch = this.raw.destUpdateBatch;
    if (batch) {
      wrapSync(() => batch.call(this.raw, keys));
      return;
    }
    for (let i = 0; i < dests.length; i++) {
      const off = i * ADDR_PORT_SIZE;
      wrapSync(() => this.raw.destUpdate(keys.subarray(off, off + 16), dests[i]!.port));
    }
  }

  removeMeshedDestinations(dests: ReadonlyArray<{ ip: string; port: number }>): number {
    if (dests.length === 0) return 0;
    const keys = packAddrPorts(dests);
    const batch = this.raw.destDeleteBatch;
    if (batch) return wrapSync(() => batch.call(this.raw, keys));
    let removed = 0;
    for (let i = 0; i < dests.length; i++) {
      const off = i * ADDR_PORT_SIZE;
      if (wrapSync(() => this.raw.destDelete(keys.subarray(off, off + 16), dests[i]!.port))) removed++;
    }
    return removed;
  }

  meshedDestinations(): Array<{ ip: string; port: number }> {
    return wrapSync(() => this.raw.dests()).map((d) => ({ ip: keyToIp(d.addr), port: d.port }));
  }

  addConnectDeny(workloadId: number, ip: string, port: number): void {
    checkWorkloadId(workloadId);
    const key = ipToKey(ip);
    checkPort(port, 'port', true);
    wrapSync(() => this.raw.denyUpdate(workloadId, key, port));
  }

  removeConnectDeny(workloadId: number, ip: string, port: number): void {
    checkWorkloadId(workloadId);
    const key = ipToKey(ip);
    checkPort(port, 'port', true);
    wrapSync(() => this.raw.denyDelete(workloadId, key, port));
  }

  connectDenies(): Array<{ workloadId: number; ip: string; port: number }> {
    return wrapSync(() => this.raw.denies()).map((d) => ({ workloadId: d.workloadId, ip: keyToIp(d.addr), port: d.port }));
  }

  setInboundMode(ip: string, port: number, mode: InboundMode): void {
    const key = ipToKey(ip);
    checkPort(port, 'port', true);
    const code = INBOUND_MODE_CODE[mode];
    if (code === undefined) throw new TypeError(`mode must be STRICT, PERMISSIVE or TRUSTED_SOURCE, got ${String(mode)}`);
    wrapSync(() => this.raw.strictUpdate(key, port, code));
  }

  removeInboundMode(ip: string, port: number): void {
    const key = ipToKey(ip);
    checkPort(port, 'port', true);
    wrapSync(() => this.raw.strictDelete(key, port));
  }

  inboundModes(): Array<{ ip: string; port: number; mode: InboundMode }> {
    return wrapSync(() => this.raw.stricts()).map((e) => ({ ip: keyToIp(e.addr), port: e.port, mode: INBOUND_MODE_NAME[e.mode] ?? 'PERMISSIVE' }));
  }

  /**
   * Runs a loaded sk_lookup program (`smesh_inbound_lookup`, `smesh_capture_lookup`) on one synthetic lookup with
   * BPF_PROG_TEST_RUN, for table-driven tests of its decision: its verdict and the cookie of the socket it assigned
   * (0n: none; compare with socketCookie()).
   */
  testSkLookup(
    program: string,
    lookup: { readonly protocol?: 'tcp' | 'udp'; readonly remote: string; readonly remotePort: number; readonly local: string; readonly localPort: number },
  ): { verdict: 'pass' | 'drop'; cookie: bigint } {
    const remote = ipToKey(lookup.remote, 'remote');
    const local = ipToKey(lookup.local, 'local');
    const family = isV4MappedKey(local) ? 4 : 6;
    return wrapSync(() => this.raw.skLookupTestRun(program, family, lookup.protocol === 'udp' ? 17 : 6, remote, lookup.remotePort, local, lookup.localPort));
  }

  inboundCounters(): InboundCounters {
    const c = wrapSync(() => this.raw.strictCounters());
    const p = wrapSync(() => this.raw.inpodCounters());
    // SYNs the capture took never reach the pod's listener, where the strict program counts plaintext.
    return {
      strictDropped: c.dropped,
      plaintextAccepted: c.plaintext + p.captured,
      plaintextCaptured: p.captured,
      plaintextUncaptured: p.noListener + p.assignFailed,
    };
  }

  attachInboundCapture(netnsPath: string): { fd: number; pin: string } {
    checkPath(netnsPath, 'netnsPath');
    const pin = path.join(this.bpffsDir, 'links', `inpod-${fs.statSync(netnsPath).ino}`);
    return { fd: wrapSync(() => this.raw.attachNetnsLookup(netnsPath, pin)), pin };
  }

  releaseInboundCapture(pin: string, fd?: number): void {
    if (path.dirname(pin) !== path.join(this.bpffsDir, 'links') || !path.basename(pin).startsWith('inpod-')) throw new TypeError(`not a capture link pin of this datapath: ${pin}`);
    try {
      fs.unlinkSync(pin);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
  }

  holdPlaintext(ip: string): void {
    const key = ipToKey(ip);
    wrapSync(() => this.raw.inpodPodUpdate(key));
  }

  releasePlaintext(ip: string): void {
    const key = ipToKey(ip);
    wrapSync(() => this.raw.inpodPodDelete(key));
  }

  heldPlaintext(): string[] {
    return wrapSync(() => this.raw.inpodPods()).map((k) => keyToIp(k));
  }

  setBandwidth(ip: string, direction: BandwidthDirection, bitsPerSecond: number): void {
    const key = ipToKey(ip);
    const code = bandwidthCode(direction);
    if (!Number.isFinite(bitsPerSecond) || bitsPerSecond < 8 || bitsPerSecond > 7.2e16) throw new TypeError(`bitsPerSecond must be a number in 8..7.2e16, got ${String(bitsPerSecond)}`);
    wrapSync(() => this.raw.bandwidthUpdate(key, code, Math.floor(bitsPerSecond / 8)));
  }

  removeBandwidth(ip: string, direction: BandwidthDirection): void {
    const key = ipToKey(ip);
    const code = bandwidthCode(direction);
    wrapSync(() => this.raw.bandwidthDelete(key, code));
  }

  bandwidths(): Array<{ ip: string; direction: BandwidthDirection; bitsPerSecond: number; dropped: number }> {
    return wrapSync(() => this.raw.bandwidths()).map((e) => ({
      ip: keyToIp(e.addr),
      direction: e.direction === 2 ? 'ingress' : 'egress',
      bitsPerSecond: e.bytesPerSec * 8,
      dropped: e.dropped,
    }));
  }

  attachBandwidth(direction: BandwidthDirection, netnsPath: string, ifindex: number, bitsPerSecond: number): BandwidthMode {
    const code = bandwidthCode(direction);
    if (typeof netnsPath !== 'string') throw new TypeError("netnsPath must be a string (empty: the agent's namespace)");
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new TypeError(`ifindex must be a positive integer, got ${String(ifindex)}`);
    if (!Number.isFinite(bitsPerSecond) || bitsPerSecond < 8 || bitsPerSecond > 7.2e16) throw new TypeError(`bitsPerSecond must be a number in 8..7.2e16, got ${String(bitsPerSecond)}`);
    return wrapSync(() => this.raw.attachBandwidth(code, netnsPath, ifindex, Math.floor(bitsPerSecond / 8)));
  }

  inboundCapturePins(): string[] {
    const dir = path.join(this.bpffsDir, 'links');
    try {
      return fs
        .readdirSync(dir)
        .filter((n) => n.startsWith('inpod-'))
        .map((n) => path.join(dir, n));
    } catch {
      return [];
    }
  }

  setCaptureListener(ip: string, fd: number, kind: CaptureKind = 'plaintext'): void {
    const key = ipToKey(ip);
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${String(fd)}`);
    wrapSync(() => this.raw.inpodListenerUpdate(key, CAPTURE_PORT[kind], fd));
  }

  removeCaptureListener(ip: string, kind: CaptureKind = 'plaintext'): void {
    const key = ipToKey(ip);
    wrapSync(() => this.raw.inpodListenerDelete(key, CAPTURE_PORT[kind]));
  }

  captureListeners(kind: CaptureKind = 'plaintext'): string[] {
    return wrapSync(() => this.raw.inpodListeners())
      .filter((e) => e.port === CAPTURE_PORT[kind])
      .map((e) => keyToIp(e.addr));
  }

  setOutboundListener(fd: number): void {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${String(fd)}`);
    wrapSync(() => this.raw.captureListenerUpdate(fd));
  }

  connectDenyCounts(): Array<{ workloadId: number; ip: string; port: number; count: number }> {
    return wrapSync(() => this.raw.denyStats()).map((e) => ({ workloadId: e.workloadId, ip: keyToIp(e.addr), port: e.port, count: e.count }));
  }

  strictDropCounts(): Array<{ sourceIp: string; ip: string; port: number; count: number }> {
    return wrapSync(() => this.raw.strictDropStats()).map((e) => ({ sourceIp: keyToIp(e.src), ip: keyToIp(e.dst), port: e.port, count: e.count }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.close();
    this.onClose(this);
  }

  destroy(): void {
    this.closed = true;
    this.onClose(this);
    wrapSync(() => this.raw.destroy());
  }
}

/** Builds the facade over a raw surface (the real addon, or a fake in tests). */
export function createDatapathApi(loadRaw: () => RawNative): DatapathApi {
  // Open datapaths of this process, newest last: originalDestination's map fallback uses the newest.
  const open: NativeDatapath[] = [];
  const forget = (dp: NativeDatapath): void => {
    const i = open.indexOf(dp);
    if (i >= 0) open.splice(i, 1);
  };

  return {
    openDatapath(opts: DatapathOptions): Promise<Datapath> {
      if (typeof opts !== 'object' || opts === null) throw new TypeError('openDatapath(options) needs an options object');
      checkPath(opts.bpffsDir, 'bpffsDir');
      checkPath(opts.cgroupPath, 'cgroupPath');
      const captureIp4 = ipv4Bytes(opts.captureIp4, 'captureIp4');
      checkPort(opts.capturePort, 'capturePort', false);
      let captureIp6: Buffer | undefined;
      if (opts.captureIp6 !== undefined) {
        captureIp6 = ipToKey(opts.captureIp6, 'captureIp6');
        if (isV4MappedKey(captureIp6)) throw new TypeError(`captureIp6 must be an IPv6 address, got ${opts.captureIp6}`);
      }
      let captureSpread = 1;
      if (opts.captureNetns !== undefined) {
        checkPath(opts.captureNetns, 'captureNetns');
        captureSpread = opts.captureSpread ?? DEFAULT_CAPTURE_SPREAD;
        const last = captureIp4[3]!;
        if (!Number.isInteger(captureSpread) || captureSpread < 1 || captureSpread > 254 || last + captureSpread - 1 > 254)
          throw new TypeError(
            `captureSpread must be an integer 1..${254 - last + 1} for capture address ${opts.captureIp4} (its tuples stay in its /24, at .254 or below), got ${String(opts.captureSpread)}`,
          );
      } else if (opts.captureSpread !== undefined && opts.captureSpread !== 1) {
        throw new TypeError(`captureSpread ${String(opts.captureSpread)} needs captureNetns (the outbound listener's network namespace)`);
      }
      const raw = loadRaw();
      return raw.open({ bpffsDir: opts.bpffsDir, cgroupPath: opts.cgroupPath, captureIp4, capturePort: opts.capturePort, captureIp6, captureSpread, captureNetns: opts.captureNetns }).then(
        (handle) => {
          const dp = new NativeDatapath(handle, opts.bpffsDir, captureSpread, forget);
          open.push(dp);
          return dp;
        },
        (err: unknown) => {
          throw bpfError(err);
        },
      );
    },

    netnsCookie(netnsPath: string): Promise<bigint> {
      checkPath(netnsPath, 'netnsPath');
      return loadRaw()
        .netnsCookie(netnsPath)
        .catch((err: unknown) => {
          throw bpfError(err);
        });
    },

    netnsListener(netnsPath: string, family: 4 | 6 = 4): Promise<number> {
      checkPath(netnsPath, 'netnsPath');
      if (family !== 4 && family !== 6) throw new TypeError(`family must be 4 or 6, got ${String(family)}`);
      return loadRaw()
        .netnsListener(netnsPath, undefined, family)
        .catch((err: unknown) => {
          throw bpfError(err);
        });
    },

    originalDestination(fd: number, bpffsDir?: string): { ip: string; port: number } | null {
      if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${String(fd)}`);
      let pin: string | undefined;
      if (bpffsDir !== undefined) pin = `${bpffsDir.replace(/\/+$/, '')}/maps/smesh_conns_v2`;
      else if (open.length > 0) pin = open[open.length - 1].connsPinPath();
      const found = wrapSync(() => loadRaw().originalDestination(fd, pin));
      return found ? { ip: keyToIp(found.addr), port: found.port } : null;
    },

    socketCookie(fd: number): bigint {
      if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${String(fd)}`);
      return wrapSync(() => loadRaw().socketCookie(fd));
    },
  };
}

const api = createDatapathApi(loadRawNative);

/** open → configure → set pin paths (reuse pinned maps) → load → fill → attach (or swap pinned links) → pin. */
export function openDatapath(opts: DatapathOptions): Promise<Datapath> {
  return api.openDatapath(opts);
}

/** SO_NETNS_COOKIE of a socket made inside the network namespace at `netnsPath` (e.g. /run/netns/NAME). */
export function netnsCookie(netnsPath: string): Promise<bigint> {
  return api.netnsCookie(netnsPath);
}

/** A listening TCP socket (127.0.0.1 or, family 6, [::1]; port 0) made inside the network namespace at `netnsPath`; the caller owns the fd. */
export function netnsListener(netnsPath: string, family: 4 | 6 = 4): Promise<number> {
  return api.netnsListener(netnsPath, family);
}

/**
 * A TCP socket bound to host:port with SO_REUSEADDR + SO_REUSEPORT (listening when backlog > 0; 0: bound only, the
 * listen() of whoever gets the fd joins it to the port's reuseport group). Another process of the same uid can bind
 * the same address while this one listens: a surge agent pod beside the old one. The caller owns the fd.
 * Throws SmeshError SMESH_ERR_BIND naming the address and the errno (EADDRINUSE: a socket without SO_REUSEPORT or of
 * another uid holds it; EADDRNOTAVAIL: the address is not local).
 */
export function reusePortSocket(host: string, port: number, backlog = 0): number {
  try {
    return loadRawNative().reusePortSocket(host, port, backlog);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SmeshError('SMESH_ERR_BIND', `cannot bind ${host.includes(':') ? `[${host}]` : host}:${port} with SO_REUSEPORT: ${e.code ?? e.message}`, { cause: err });
  }
}

/**
 * Original destination of a connection the proxy accepted: SO_ORIGINAL_DST (answered by cgroup/getsockopt
 * when the socket belongs to the attached cgroup), else a lookup of the (peer, local) addresses in the pinned
 * smesh_conns_v2 map of `bpffsDir` (default: the newest datapath opened by this process). null when unknown.
 */
export function originalDestination(fd: number, bpffsDir?: string): { ip: string; port: number } | null {
  return api.originalDestination(fd, bpffsDir);
}

/** The OS file descriptor behind a connected net.Socket (-1 if it has none). */
export function socketFd(sock: Socket): number {
  const handle = (sock as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

/**
 * The interface holding pod address `ip` in the namespace at `netnsPath`, and its veth peer in `peerNetnsPath` (default
 * '': the agent's own namespace, where a CNI puts the host side); peerIfindex 0 when the peer is not there.
 */
export function podDevices(netnsPath: string, ip: string, peerNetnsPath = ''): PodDevices {
  checkPath(netnsPath, 'netnsPath');
  const key = ipToKey(ip);
  return wrapSync(() => loadRawNative().podDevices(netnsPath, key, peerNetnsPath));
}

/** Removes smesh's pacing filter and the root fq qdisc from `ifindex` in `netnsPath` ('' = the agent's namespace). */
export function detachBandwidth(netnsPath: string, ifindex: number): void {
  if (typeof netnsPath !== 'string') throw new TypeError("netnsPath must be a string (empty: the agent's namespace)");
  if (!Number.isInteger(ifindex) || ifindex <= 0) throw new TypeError(`ifindex must be a positive integer, got ${String(ifindex)}`);
  wrapSync(() => loadRawNative().detachBandwidth(netnsPath, ifindex));
}

/** SO_COOKIE of a socket fd (what an sk_lookup program's assignment reports). */
export function socketCookie(fd: number): bigint {
  return api.socketCookie(fd);
}
