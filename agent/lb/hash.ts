// Stable 64-bit string hash for consistent hashing: FNV-1a 64 over UTF-8, then MurmurHash3's fmix64 finalizer.
//
// Both are published definitions. FNV-1a alone spreads near-identical keys ("10.0.0.1:80_0",
// "…_1") poorly across the top bits a ring sorts on; fmix64 gives full avalanche. Arithmetic is done
// in two unsigned 32-bit halves so hashing a key allocates nothing but the result and needs no
// BigInt; the result is identical on every proxy and every run (ring positions must agree).

/** An unsigned 64-bit value as two unsigned 32-bit halves. */
export interface Hash64 {
  readonly hi: number;
  readonly lo: number;
}

const TWO_32 = 4294967296;

/** Low 64 bits of a × b, all as 32-bit halves. */
export function mul64(ahi: number, alo: number, bhi: number, blo: number): Hash64 {
  const a0 = alo & 0xffff;
  const a1 = alo >>> 16;
  const b0 = blo & 0xffff;
  const b1 = blo >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  const carry = Math.floor(low / TWO_32);
  const hi = a1 * b1 + Math.floor(mid / 65536) + carry + Math.imul(ahi, blo) + Math.imul(alo, bhi);
  return { hi: hi >>> 0, lo: low >>> 0 };
}

/** FNV-1a 64 of the UTF-8 bytes of `s` (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
export function fnv1a64(s: string): Hash64 {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  const step = (byte: number): void => {
    lo = (lo ^ byte) >>> 0;
    // × 0x100000001b3 = × 0x1b3 + (× 1) << 40
    const l = lo * 0x1b3; // < 2^41, exact
    hi = (hi * 0x1b3 + Math.floor(l / TWO_32) + ((lo << 8) >>> 0)) >>> 0;
    lo = l >>> 0;
  };
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) step(c);
    else if (c < 0x800) {
      step(0xc0 | (c >> 6));
      step(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      // Lone surrogates encode as U+FFFD, as TextEncoder does.
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      step(0xe0 | (c >> 12));
      step(0x80 | ((c >> 6) & 0x3f));
      step(0x80 | (c & 0x3f));
    } else {
      step(0xf0 | (c >> 18));
      step(0x80 | ((c >> 12) & 0x3f));
      step(0x80 | ((c >> 6) & 0x3f));
      step(0x80 | (c & 0x3f));
    }
  }
  return { hi, lo };
}

/** MurmurHash3 fmix64: k ^= k>>33; k *= 0xff51afd7ed558ccd; k ^= k>>33; k *= 0xc4ceb9fe1a85ec53; k ^= k>>33. */
export function fmix64(h: Hash64): Hash64 {
  let hi = h.hi;
  let lo = (h.lo ^ (hi >>> 1)) >>> 0;
  let m = mul64(hi, lo, 0xff51afd7, 0xed558ccd);
  hi = m.hi;
  lo = (m.lo ^ (hi >>> 1)) >>> 0;
  m = mul64(hi, lo, 0xc4ceb9fe, 0x1a85ec53);
  return { hi: m.hi, lo: (m.lo ^ (m.hi >>> 1)) >>> 0 };
}

/** The hash smesh uses for ring positions and request keys. */
export function stableHash64(s: string): Hash64 {
  return fmix64(fnv1a64(s));
}

/** The top 53 bits as an exact JavaScript number, for sorting and binary search. */
export function hashTop53(h: Hash64): number {
  return h.hi * 2097152 + (h.lo >>> 11);
}

export function hash64ToHex(h: Hash64): string {
  return h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0');
}

/**
 * A second, independent uniform value in [0, 1) from a key's hash (the halves swapped, one
 * perturbed, and remixed), for choosing something else by the same key (a locality tier) without
 * correlating with where the key lands in a ring or table.
 */
export function derivedUnit(h: Hash64): number {
  return hashTop53(fmix64({ hi: (h.lo ^ 0x9e3779b9) >>> 0, lo: h.hi })) / 9007199254740992;
}

/** The full 64-bit value modulo m (m < 2^26 keeps every intermediate exact). */
export function mod64(h: Hash64, m: number): number {
  return ((((h.hi % m) * (4294967296 % m)) % m) + h.lo) % m;
}
