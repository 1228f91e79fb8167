// The only loader of build/native/Release/smesh_native.node: finds it from this file's location and types its raw surface.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

/** Result of a raw open(): the links' pin paths and whether pinned links were reused. */
export interface RawAttachInfo {
  reused: boolean;
  links: string[];
}

/** A loaded and attached datapath (native object). Addresses are 16-byte v4-mapped/IPv6 buffers, ports host order. */
export interface RawDatapath {
  attachInfo(): RawAttachInfo;
  podUpdate(netnsCookie: bigint, workloadId: number): void;
  podDelete(netnsCookie: bigint): boolean;
  pods(): Array<{ cookie: bigint; workloadId: number }>;
  destUpdate(addr: Buffer, port: number): void;
  destDelete(addr: Buffer, port: number): boolean;
  dests(): Array<{ addr: Buffer; port: number }>;
  /** Many entries per syscall; `keys` packs struct smesh_addr_port (16-byte addr, host-order u16 port, u16 pad 0). Absent from addons built before batching. */
  destUpdateBatch?(keys: Buffer): void;
  /** As destUpdateBatch; absent keys are skipped; returns how many were deleted. */
  destDeleteBatch?(keys: Buffer): number;
  denyUpdate(workloadId: number, addr: Buffer, port: number): void;
  denyDelete(workloadId: number, addr: Buffer, port: number): boolean;
  denies(): Array<{ workloadId: number; addr: Buffer; port: number }>;
  /** mode: 1 = STRICT, 2 = PERMISSIVE (bpf/shared/abi.h SMESH_INBOUND_*). */
  strictUpdate(addr: Buffer, port: number, mode: number): void;
  strictDelete(addr: Buffer, port: number): boolean;
  stricts(): Array<{ addr: Buffer; port: number; mode: number }>;
  strictCounters(): { dropped: number; plaintext: number };
  connsPinPath(): string;
  /** Attaches the sk_lookup capture program to a network namespace and pins the link (or swaps the program of a pinned one); returns its fd. */
  attachNetnsLookup(netnsPath: string, pinPath: string): number;
  /** smesh_inpod_listeners[(addr, port)] = the listening socket `fd` (the map takes its own reference). */
  inpodListenerUpdate(addr: Buffer, port: number, fd: number): void;
  inpodListenerDelete(addr: Buffer, port: number): boolean;
  /** smesh_capture_listener[0] = the outbound listening socket `fd` that the capture-tuple steering (node netns sk_lookup) hands to. */
  captureListenerUpdate(fd: number): void;
  inpodListeners(): Array<{ addr: Buffer; port: number }>;
  inpodCounters(): { captured: number; noListener: number; assignFailed: number };
  /** BPF_PROG_TEST_RUN of a loaded sk_lookup program (tests): its verdict and the cookie of the socket it assigned (0n: none). */
  skLookupTestRun(program: string, family: 4 | 6, protocol: number, remoteAddr: Buffer, remotePort: number, localAddr: Buffer, localPort: number): { verdict: 'pass' | 'drop'; cookie: bigint };
  /** smesh_inpod_pods: pod addresses whose plaintext is captured (held back in the kernel while no listener is registered). */
  inpodPodUpdate(addr: Buffer): void;
  inpodPodDelete(addr: Buffer): boolean;
  inpodPods(): Buffer[];
  /** Refused connect() calls per smesh_deny entry (port 0 when the every-port entry matched). */
  denyStats(): Array<{ workloadId: number; addr: Buffer; port: number; count: number }>;
  /** STRICT-dropped connections (first SYN of each flow) per (source, local pod, port). */
  strictDropStats(): Array<{ src: Buffer; dst: Buffer; port: number; count: number }>;
  /** smesh_bandwidth: a pod address's rate in one direction (1 egress, 2 ingress), in bytes per second. */
  bandwidthUpdate(addr: Buffer, direction: number, bytesPerSec: number): void;
  bandwidthDelete(addr: Buffer, direction: number): boolean;
  bandwidths(): Array<{ addr: Buffer; direction: number; bytesPerSec: number; dropped: number }>;
  /** fq as root qdisc + the direction's pacing program as tc egress filter on `ifindex` of `netnsPath` ('' = this namespace); 'tbf' when the kernel has no sch_fq. */
  attachBandwidth(direction: number, netnsPath: string, ifindex: number, bytesPerSec: number): 'edt' | 'tbf';
  close(): void;
  destroy(): void;
}

export interface RawOpenOptions {
  bpffsDir: string;
  cgroupPath: string;
  captureIp4: Buffer; // 4 bytes, network order
  capturePort: number;
  captureIp6?: Buffer; // 16 bytes
  /** Capture tuples (IPv4 addresses captureIp4 + [0, n), 1..254, within its /24); above 1 needs captureNetns. Default 1. */
  captureSpread?: number;
  /** The network namespace of the outbound listener (the agent's): capture /24 made local, steering sk_lookup attached. */
  captureNetns?: string;
  pods?: Array<{ cookie: bigint; workloadId: number }>;
  dests?: Array<{ addr: Buffer; port: number }>;
}

export interface RawOriginalDst {
  addr: Buffer; // 16 bytes, v4-mapped for IPv4
  port: number;
  via: 'getsockopt' | 'map';
}

/** Errors from the addon carry the errno name (`code`, e.g. 'ENOENT') when there is one. */
export interface RawNativeError extends Error {
  code?: string;
  errno?: number;
}

export interface RawNative {
  open(options: RawOpenOptions): Promise<RawDatapath>;
  netnsCookie(netnsPath: string): Promise<bigint>;
  /** A listening TCP socket on 127.0.0.1:0 (family 4, default) or [::1]:0 (6, IPv6 only) inside the namespace (the caller owns the fd). */
  netnsListener(netnsPath: string, backlog?: number, family?: 4 | 6): Promise<number>;
  originalDestination(fd: number, connsPinPath?: string): RawOriginalDst | null;
  /** How the addon's compiler lays out bpf/shared/abi.h: struct name → size and member byte offsets. */
  abiLayout(): Record<string, { size: number; members: Record<string, number> }>;
  /** SO_COOKIE of a socket. */
  socketCookie(fd: number): bigint;
  /** The interface holding `addr` in the namespace and its veth peer in `peerNetnsPath` ('' = this one; peerIfindex 0: none there). */
  podDevices(netnsPath: string, addr: Buffer, peerNetnsPath?: string): { ifindex: number; ifname: string; peerIfindex: number; peerIfname: string };
  /** Removes the pacing filter and the root fq qdisc of `ifindex` in `netnsPath` ('' = this namespace); absent is fine. */
  detachBandwidth(netnsPath: string, ifindex: number): void;
  /** glibc malloc_trim(0): free pages of every malloc arena back to the OS; true when something was released (false off glibc). */
  mallocTrim(): boolean;
  /**
   * A TCP socket with SO_REUSEADDR + SO_REUSEPORT bound to host:port in this process's namespace, listening when
   * backlog > 0 (0: bound only); the caller owns the fd. Throws with errno/code (EADDRINUSE, EADDRNOTAVAIL) on failure.
   */
  reusePortSocket(host: string, port: number, backlog?: number): number;
}

const ADDON_RELATIVE_PATH = path.join('build', 'native', 'Release', 'smesh_native.node');

/** Walks up from this file (agent/native/ in source, dist/agent/native/ after tsc) to the repo root's build output. */
export function addonPath(startDir: string = __dirname): string {
  let dir = startDir;
  for (let depth = 0; depth < 6; depth++) {
    const candidate = path.join(dir, ADDON_RELATIVE_PATH);
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`native addon ${ADDON_RELATIVE_PATH} not found above ${startDir}; build it with \`make -f mk/datapath.mk native\``);
}

let cached: RawNative | undefined;
let pathOverride: string | undefined;

/**
 * Loads another build of the addon instead of build/native (e.g. the sanitizer build, build/native-asan/Release/
 * smesh_native.node); only before the first load. The caller decides where the path comes from (config, a test's env).
 */
export function useAddonPath(file: string): void {
  if (cached) throw new Error(`native addon already loaded; useAddonPath(${file}) must come before the first use`);
  if (!fs.existsSync(file)) throw new Error(`native addon ${file} does not exist`);
  pathOverride = path.resolve(file);
}

/** Loads the addon once per process. Throws when it is not built. */
export function loadRawNative(): RawNative {
  if (!cached) {
    const requireNative = createRequire(__filename);
    cached = requireNative(pathOverride ?? addonPath()) as RawNative;
  }
  return cached;
}
