// Consistent hashing (ring hash and Maglev): key extraction, stickiness, ~1/N movement, weights.
import { describe, expect, it } from 'vitest';
import { affinityKey, cookieValue, queryParameterValue, RingHashPicker, type HashSource } from '../../../../agent/lb/consistent-hash';
import { MaglevPicker, maglevTableSize } from '../../../../agent/lb/maglev';
import type { PickRequest, Picker } from '../../../../agent/lb/picker';
import { counts, ep, picks, seeded, type TestEndpoint } from '../../fixtures/lb';

describe('affinity key', () => {
  const req: PickRequest = {
    headers: { 'x-user': 'alice', 'x-multi': ['1', '2'], cookie: 'theme=dark; session=s%201; empty=', 'x-empty': '' },
    sourceIp: '10.1.2.3',
    path: '/cart?user=bob&x=1&enc=a%20b&bad=%zz#frag',
  };
  it.each<{ hashOn: HashSource[]; want: string | undefined }>([
    { hashOn: [{ type: 'header', name: 'x-user' }], want: 'h:alice' },
    { hashOn: [{ type: 'header', name: 'X-User' }], want: 'h:alice' },
    { hashOn: [{ type: 'header', name: 'x-multi' }], want: 'h:1,2' },
    { hashOn: [{ type: 'cookie', name: 'session' }], want: 'c:s%201' },
    { hashOn: [{ type: 'source_ip' }], want: 'ip:10.1.2.3' },
    { hashOn: [{ type: 'query_parameter', name: 'user' }], want: 'q:bob' },
    { hashOn: [{ type: 'query_parameter', name: 'enc' }], want: 'q:a b' },
    { hashOn: [{ type: 'query_parameter', name: 'bad' }], want: 'q:%zz' },
    { hashOn: [{ type: 'header', name: 'x-missing' }, { type: 'source_ip' }], want: 'ip:10.1.2.3' },
    {
      hashOn: [
        { type: 'header', name: 'x-empty' },
        { type: 'cookie', name: 'empty' },
      ],
      want: undefined,
    },
    { hashOn: [{ type: 'cookie', name: 'missing' }], want: undefined },
    { hashOn: [], want: undefined },
  ])('$hashOn → $want', ({ hashOn, want }) => {
    expect(affinityKey(req, hashOn)).toBe(want);
  });

  it('tolerates absent requests and headers', () => {
    expect(affinityKey(undefined, [{ type: 'source_ip' }])).toBeUndefined();
    expect(cookieValue({ headers: { cookie: ['a=1', 'b=2'] } }, 'b')).toBe('2');
    expect(cookieValue({ headers: { cookie: 'novalue; c=3' } }, 'c')).toBe('3');
    expect(queryParameterValue({ path: '/no-query' }, 'a')).toBeUndefined();
    expect(queryParameterValue({ path: '/?flag' }, 'flag')).toBe('');
  });
});

type Build = (endpoints: readonly TestEndpoint[], random?: () => number) => Picker<TestEndpoint>;
const byHeader: HashSource[] = [{ type: 'header', name: 'x-user' }];
const impls: Array<{ name: string; build: Build; maxMoved: number; strict: boolean }> = [
  { name: 'ring hash', build: (e, random) => new RingHashPicker(e, { hashOn: byHeader, random }), maxMoved: 1.45, strict: true },
  // Maglev trades a little extra movement for an even table; the paper and Envoy accept that.
  { name: 'maglev', build: (e, random) => new MaglevPicker(e, { hashOn: byHeader, random }), maxMoved: 1.6, strict: false },
];
const user = (i: number): PickRequest => ({ headers: { 'x-user': `user-${i}` } });
const names = (n: number) => Array.from({ length: n }, (_, i) => ep(`e${i}`));

describe.each(impls)('$name', ({ build, maxMoved, strict }) => {
  it('same key → same endpoint while the set is stable, whatever order endpoints arrive in', () => {
    const set = names(8);
    const a = picks(build(set), 2000, user);
    expect(picks(build(set), 2000, user)).toEqual(a);
    expect(picks(build([...set].reverse()), 2000, user)).toEqual(a);
    const p = build(set);
    for (let round = 0; round < 3; round++) expect(picks(p, 2000, user)).toEqual(a);
  });

  it('spreads keys evenly (10k keys over 10 endpoints)', () => {
    const c = counts(picks(build(names(10)), 10_000, user));
    for (const n of Object.values(c)) {
      expect(n).toBeGreaterThan(1000 * 0.75);
      expect(n).toBeLessThan(1000 * 1.25);
    }
  });

  it('adding an endpoint moves ~1/N of the keys, only to the new endpoint', () => {
    const before = picks(build(names(10)), 10_000, user);
    const after = picks(build(names(11)), 10_000, user);
    const moved = before.map((b, i) => (b !== after[i] ? after[i] : undefined)).filter((x) => x !== undefined);
    const expected = 10_000 / 11;
    expect(moved.length).toBeGreaterThan(expected * 0.6);
    expect(moved.length).toBeLessThan(expected * maxMoved);
    const toNew = moved.filter((m) => m === 'e10').length;
    if (strict) expect(toNew).toBe(moved.length);
    else expect(toNew / moved.length).toBeGreaterThan(0.6);
  });

  it('ejecting an endpoint moves its keys and (almost) nothing else', () => {
    const set = names(10);
    const before = picks(build(set), 10_000, user);
    const after = picks(build(set.map((e) => (e.name === 'e3' ? { ...e, ejected: true } : e))), 10_000, user);
    expect(after).not.toContain('e3');
    const movedOthers = before.filter((b, i) => b !== 'e3' && b !== after[i]).length;
    if (strict) expect(movedOthers).toBe(0);
    else expect(movedOthers).toBeLessThan(10_000 * 0.1);
  });

  it('shares follow weights', () => {
    const c = counts(picks(build([ep('a'), ep('b'), ep('c', { weight: 2 })]), 10_000, user));
    expect(c.c! / 10_000).toBeGreaterThan(0.45);
    expect(c.c! / 10_000).toBeLessThan(0.55);
    expect(c.a! / 10_000).toBeGreaterThan(0.21);
    expect(c.a! / 10_000).toBeLessThan(0.29);
  });

  it('a request without a key lands at a random point (the injected source)', () => {
    const c = counts(picks(build(names(4), seeded(11)), 8000, () => ({ headers: {} })));
    expect(Object.keys(c).sort()).toEqual(['e0', 'e1', 'e2', 'e3']);
    for (const n of Object.values(c)) expect(n).toBeGreaterThan(1300);
  });

  it('affinity is stable per key, in [0, 1), undefined without a key', () => {
    const p = build(names(3));
    const a = p.affinity!(user(1));
    expect(a).toBe(p.affinity!(user(1)));
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThan(1);
    expect(p.affinity!({})).toBeUndefined();
  });

  it('empty or all-ejected input is a transient failure, not a throw', () => {
    expect(build([]).pick(user(1)).kind).toBe('transient_failure');
    expect(build([ep('a', { ejected: true })]).pick(user(1)).kind).toBe('transient_failure');
  });
});

describe('ring and table sizes', () => {
  it('ring: entries per unit weight, independent of the rest of the set', () => {
    expect(new RingHashPicker(names(3), { hashOn: byHeader }).ringSize).toBe(480);
    expect(new RingHashPicker([ep('a'), ep('b', { weight: 3 })], { hashOn: byHeader }).ringSize).toBe(640);
    expect(new RingHashPicker([ep('a', { weight: 0.001 })], { hashOn: byHeader }).ringSize).toBe(1);
    expect(new RingHashPicker(names(3), { hashOn: byHeader, entriesPerWeight: 2 }).ringSize).toBe(6);
    expect(new RingHashPicker(names(3), { hashOn: byHeader, maxRingSize: 300 }).ringSize).toBe(300);
  });
  it('maglev: table size rounds up to a prime', () => {
    expect(maglevTableSize(undefined)).toBe(65537);
    expect(maglevTableSize(100)).toBe(101);
    expect(maglevTableSize(0)).toBe(2);
    expect(maglevTableSize(1e12)).toBe(5_000_011);
    expect(new MaglevPicker(names(3), { hashOn: byHeader, tableSize: 1000 }).tableSize).toBe(1009);
  });
});
