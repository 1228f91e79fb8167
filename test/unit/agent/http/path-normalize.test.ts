// Table tests for request-target normalization (Istio pathNormalization BASE = Envoy normalize_path).
import { describe, expect, it } from 'vitest';
import { canonicalizePath, checkMethod, normalizeRequestTarget } from '../../../../agent/http/path-normalize';

describe('normalizeRequestTarget (Istio BASE)', () => {
  // [sent, target forwarded to the app, path matched by policy]
  const normalized: Array<[string, string, string]> = [
    ['/admin', '/admin', '/admin'],
    ['/public/../admin', '/admin', '/admin'],
    ['/%61dmin', '/admin', '/admin'],
    ['/%41DMIN', '/ADMIN', '/ADMIN'], // decoded, never case-folded
    ['/a/./b', '/a/b', '/a/b'],
    ['/a/b/../c', '/a/c', '/a/c'],
    ['/a/b/../../../../c', '/c', '/c'], // never above the root
    ['/..', '/', '/'],
    ['/../a/b', '/a/b', '/a/b'],
    ['/./a/b', '/a/b', '/a/b'],
    ['/a/.', '/a/', '/a/'],
    ['/a/..', '/', '/'],
    ['/a/b/..', '/a/', '/a/'],
    ['//admin', '//admin', '//admin'], // BASE keeps repeated slashes
    ['/a//b', '/a//b', '/a//b'],
    ['//admin/../x', '//x', '//x'],
    ['/%2e%2e/admin', '/admin', '/admin'],
    ['/public/%2e%2e/admin', '/admin', '/admin'],
    ['/public/%2E%2E/admin', '/admin', '/admin'],
    ['/public/%2E./admin', '/admin', '/admin'],
    ['/a/b/%2E/c', '/a/b/c', '/a/b/c'],
    ['/a/.b', '/a/.b', '/a/.b'], // not a dot segment
    ['/a/..b/c', '/a/..b/c', '/a/..b/c'],
    ['/a/b..', '/a/b..', '/a/b..'],
    ['/file%2etxt', '/file.txt', '/file.txt'],
    ['/a\\b', '/a/b', '/a/b'], // backslash is a slash
    ['/a/..\\admin', '/admin', '/admin'],
    ['/some\\data', '/some/data', '/some/data'],
    ['/%2d%5f%7e%30%39', '/-_~09', '/-_~09'], // unreserved: decoded once
    ['/a%2Fb', '/a%2Fb', '/a%2Fb'], // %2F, %5C: kept (only DECODE_AND_MERGE_SLASHES decodes them)
    ['/a/%2F%2f/c', '/a/%2F%2f/c', '/a/%2F%2f/c'],
    ['/%5c%25', '/%5c%25', '/%5c%25'],
    ['/%c0%af', '/%c0%af', '/%c0%af'],
    ['/%2561dmin', '/%2561dmin', '/%2561dmin'], // no double decoding
    ['/%zz', '/%zz', '/%zz'], // not an escape: passed through as Envoy does
    ['/100%', '/100%', '/100%'],
    ['/%4', '/%4', '/%4'],
    ['/%%30%30', '/%2500', '/%2500'], // decoding must not create an escape for the app to decode again
    ['/%%341', '/%2541', '/%2541'],
    ['/a b', '/a%20b', '/a%20b'], // bytes a path may not hold are escaped
    ['/a"<>^`{|}', '/a%22%3C%3E%5E%60%7B%7C%7D', '/a%22%3C%3E%5E%60%7B%7C%7D'],
    ['/caf\u00e9', '/caf%E9', '/caf%E9'],
    ['/\u20ac', '/%E2%82%AC', '/%E2%82%AC'],
    ["/a-b_c~d!$&'()*+,;=:@[]", "/a-b_c~d!$&'()*+,;=:@[]", "/a-b_c~d!$&'()*+,;=:@[]"],
    // The query is kept as sent and not matched; only the path before '?' is normalized.
    ['/public/../admin?x=/../y&%61=1', '/admin?x=/../y&%61=1', '/admin'],
    ['/a?', '/a?', '/a'],
    ['/a??b', '/a??b', '/a'],
    ['/%3F/x', '/%3F/x', '/%3F/x'],
    // A fragment is cut off (Istio: http_reject_path_with_fragment=false → stripped).
    ['/admin#frag', '/admin', '/admin'],
    ['/a?q=1#f', '/a?q=1', '/a'],
    ['/a#f?q=1', '/a', '/a'],
    ['/', '/', '/'],
  ];
  it.each(normalized)('%j → %j', (sent, target, path) => {
    expect(normalizeRequestTarget(sent)).toEqual({ ok: true, target, path });
  });

  const rejected: Array<[string, number, string]> = [
    ['/a%00b', 400, 'nul_in_path'],
    ['/xyz/.%00../abc', 400, 'nul_in_path'],
    ['/xyz/AAAAA%%0000/abc', 400, 'nul_in_path'],
    ['/a\u0000b', 400, 'nul_in_path'],
    ['/ok?q=%00', -1, ''], // the query is not inspected: accepted
    ['', 404, 'missing_path'],
    ['*', 404, 'non_relative_path'],
    ['http://example.com/admin', 404, 'non_relative_path'],
    ['admin', 404, 'non_relative_path'],
    ['\\admin', 404, 'non_relative_path'],
  ];
  it.each(rejected)('%j → %i %s', (sent, status, reason) => {
    const r = normalizeRequestTarget(sent);
    if (status === -1) expect(r.ok).toBe(true);
    else expect(r).toEqual({ ok: false, status, reason });
  });

  it('is idempotent on random targets (a second normalization, e.g. by the destination, changes nothing)', () => {
    const pieces = ['/', '/', '.', '..', '%', '2', 'e', 'E', 'a', 'F', '4', '1', '0', '\\', '?', '#', ' ', '\u00e9', '~', '%2e', '%2F', '%41', '%%', '/./', '/../'];
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let n = 0; n < 20_000; n++) {
      let sent = '/';
      for (let i = Math.floor(rnd() * 12); i > 0; i--) sent += pieces[Math.floor(rnd() * pieces.length)];
      const once = normalizeRequestTarget(sent);
      if (!once.ok) continue;
      expect(normalizeRequestTarget(once.target), sent).toEqual(once);
    }
  });

  it('is idempotent on its own output', () => {
    for (const [sent] of normalized) {
      const once = normalizeRequestTarget(sent);
      if (!once.ok) throw new Error('unexpected rejection');
      expect(normalizeRequestTarget(once.target)).toEqual(once);
    }
  });
});

describe('canonicalizePath', () => {
  it('adds the leading slash Envoy adds to a relative path', () => {
    expect(canonicalizePath('a/b/../c')).toBe('/a/c');
    expect(canonicalizePath('')).toBe('/');
  });
});

describe('checkMethod (Istio: a method not in upper case is refused with 400)', () => {
  it.each(['GET', 'POST', 'PROPFIND', 'M-SEARCH', 'CONNECT'])('%s passes', (m) => expect(checkMethod(m)).toBeUndefined());
  it.each(['get', 'Get', 'pOST'])('%s → 400', (m) => expect(checkMethod(m)).toEqual({ ok: false, status: 400, reason: 'lowercase_method' }));
});
