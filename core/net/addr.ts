// IP string ↔ 16-byte BPF map address (network order; IPv4 as v4-mapped ::ffff:a.b.c.d), per bpf/shared/abi.h.
import * as net from 'node:net';

function parseIpv4Bytes(ip: string): number[] | null {
  if (!net.isIPv4(ip)) return null;
  return ip.split('.').map((part) => Number(part));
}

function parseIpv6Bytes(ip: string): number[] | null {
  if (!net.isIPv6(ip) || ip.includes('%')) return null;
  let text = ip;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const v4 = parseIpv4Bytes(text.slice(lastColon + 1));
  if (v4) {
    tail = v4;
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  const words = [...left, ...new Array<number>(fill).fill(0), ...right];
  if (words.length !== 8) return null;
  const bytes = words.flatMap((w) => [(w >> 8) & 0xff, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** 16-byte map key for an IPv4 or IPv6 address string; throws TypeError naming `field` otherwise. */
export function ipToKey(ip: string, field = 'ip'): Buffer {
  if (typeof ip !== 'string') throw new TypeError(`${field} must be an IP address string`);
  const v4 = parseIpv4Bytes(ip);
  if (v4) return Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]);
  const v6 = parseIpv6Bytes(ip);
  if (v6) return Buffer.from(v6);
  throw new TypeError(`${field} must be an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`);
}

/**
 * Writes the 16-byte map key of `ip` into `out` at `offset` (as ipToKey, without a Buffer per address: the
 * reconciler packs 60k of them at once). Dotted IPv4 is parsed inline; anything else goes through ipToKey. `zeroed`: the
 * key's bytes are known to be 0 already (a fresh Buffer.alloc), so only the non-zero ones are written.
 */
export function writeIpKey(out: Buffer, offset: number, ip: string, field = 'ip', zeroed = false): void {
  if (typeof ip === 'string' && ip.length <= 15) {
    let octet = 0;
    let digits = 0;
    let parts = 0;
    let ok = true;
    for (let i = 0; i <= ip.length && ok; i++) {
      const c = i < ip.length ? ip.charCodeAt(i) : 46; // a final '.' closes the last octet
      if (c === 46) {
        ok = digits > 0 && parts < 4;
        if (ok) out[offset + 12 + parts++] = octet;
        octet = digits = 0;
      } else if (c >= 48 && c <= 57 && !(digits === 1 && octet === 0)) {
        octet = octet * 10 + (c - 48);
        ok = ++digits <= 3 && octet <= 255;
      } else ok = false;
    }
    if (ok && parts === 4) {
      if (!zeroed) for (let k = 0; k < 10; k++) out[offset + k] = 0; // (Buffer#fill per 16-byte key cost ~40 ms over 60k keys)
      out[offset + 10] = 0xff;
      out[offset + 11] = 0xff;
      return;
    }
  }
  ipToKey(ip, field).copy(out, offset);
}

/** 4 network-order bytes of an IPv4 address string; throws TypeError naming `field` otherwise. */
export function ipv4Bytes(ip: string, field = 'ip'): Buffer {
  const v4 = typeof ip === 'string' ? parseIpv4Bytes(ip) : null;
  if (!v4) throw new TypeError(`${field} must be an IPv4 address, got ${JSON.stringify(ip)}`);
  return Buffer.from(v4);
}

export function isV4MappedKey(key: Buffer): boolean {
  return key.length === 16 && key.subarray(0, 10).every((b) => b === 0) && key[10] === 0xff && key[11] === 0xff;
}

/** Address string of a 16-byte key: dotted IPv4 for v4-mapped keys, RFC 5952 text otherwise. */
/** Decimal digits of 0…255 as char codes. */
const OCTET_DIGITS: readonly (readonly number[])[] = Array.from({ length: 256 }, (_, n) => Array.from(String(n), (ch) => ch.charCodeAt(0)));
const ipv4Codes: number[] = [];

/**
 * Dotted-quad text of four octets as one flat string. A template literal builds most addresses (13+ characters) as
 * a concatenation of two strings that stays in memory beside its flattened copy once the address is hashed as a key:
 * at 50k workloads that was ~1.2 MiB of the agent's heap.
 */
export function ipv4Text(a: number, b: number, c: number, d: number): string {
  ipv4Codes.length = 0;
  for (const x of OCTET_DIGITS[a]!) ipv4Codes.push(x);
  ipv4Codes.push(46);
  for (const x of OCTET_DIGITS[b]!) ipv4Codes.push(x);
  ipv4Codes.push(46);
  for (const x of OCTET_DIGITS[c]!) ipv4Codes.push(x);
  ipv4Codes.push(46);
  for (const x of OCTET_DIGITS[d]!) ipv4Codes.push(x);
  return String.fromCharCode.apply(null, ipv4Codes);
}

export function keyToIp(key: Buffer): string {
  if (key.length !== 16) throw new TypeError(`address key must be 16 bytes, got ${key.length}`);
  if (isV4MappedKey(key)) return ipv4Text(key[12]!, key[13]!, key[14]!, key[15]!);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(key.readUInt16BE(i));
  return formatIpv6Words(words);
}

/** Eight 16-bit groups → RFC 5952 text (lower case, no leading zeros, the longest run of two or more zero groups as `::`). */
export function formatIpv6Words(words: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: readonly number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}
