// The 64-bit hash used for ring/table positions: published test vectors and a BigInt reference.
import { describe, expect, it } from 'vitest';
import { fmix64, fnv1a64, hash64ToHex, mod64, mul64, stableHash64 } from '../../../../agent/lb/hash';
import { seeded } from '../../fixtures/lb';

const M64 = (1n << 64n) - 1n;
const big = (h: { hi: number; lo: number }): bigint => (BigInt(h.hi) << 32n) | BigInt(h.lo);
const split = (v: bigint) => ({ hi: Number((v >> 32n) & 0xffffffffn), lo: Number(v & 0xffffffffn) });

function fnvRef(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(s)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64;
  return h;
}
function fmixRef(k: bigint): bigint {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & M64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & M64;
  return k ^ (k >> 33n);
}

describe('fnv1a64', () => {
  it.each([
    ['', 'cbf29ce484222325'],
    ['a', 'af63dc4c8601ec8c'],
    ['foobar', '85944171f73967e8'],
  ])('published vector %j', (input, hex) => {
    expect(hash64ToHex(fnv1a64(input))).toBe(hex);
  });

  it.each(['10.0.0.1:8080_0', 'ümlaut', '日本語', '😀 emoji', 'lone \ud800 surrogate', 'x'.repeat(300)])('matches the BigInt reference over UTF-8 for %j', (s) => {
    expect(big(fnv1a64(s))).toBe(fnvRef(s));
  });
});

describe('mul64 / fmix64 / mod64', () => {
  it('agree with BigInt on random inputs', () => {
    const r = seeded(7);
    for (let i = 0; i < 2000; i++) {
      const a = { hi: (r() * 2 ** 32) >>> 0, lo: (r() * 2 ** 32) >>> 0 };
      const b = { hi: (r() * 2 ** 32) >>> 0, lo: (r() * 2 ** 32) >>> 0 };
      expect(big(mul64(a.hi, a.lo, b.hi, b.lo))).toBe((big(a) * big(b)) & M64);
      expect(big(fmix64(a))).toBe(fmixRef(big(a)));
      for (const m of [65537, 5_000_011, 2, 1_000_003]) expect(mod64(a, m)).toBe(Number(big(a) % BigInt(m)));
    }
    expect(split(0n)).toEqual({ hi: 0, lo: 0 });
  });

  it('stableHash64 = fmix64(fnv1a64) and is stable across calls', () => {
    expect(big(stableHash64('abc'))).toBe(fmixRef(fnvRef('abc')));
    expect(stableHash64('abc')).toEqual(stableHash64('abc'));
  });
});
