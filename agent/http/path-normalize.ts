// Request-target normalization as Istio's default (`pathNormalization: BASE`, Envoy `normalize_path`): the path that policy, routing and the app all see.
//
// Envoy's behaviour, step by step (HTTP connection manager, then its RFC 3986 canonicalizer):
// 1. A target that is empty or does not start with `/` is refused with 404 (absolute-form, `*`).
// 2. A `#fragment` is cut off (Istio runs Envoy with http_reject_path_with_fragment=false).
// 3. Only the part before the first `?` is normalized; the query is kept byte for byte.
// 4. In the path: `\` becomes `/`; `%XX` of an unreserved character (A-Z a-z 0-9 - . _ ~) is decoded
//    once; other escapes stay as written (hex case too: `%2F`, `%2f`, `%5C`, `%25`); `%00` is refused
//    with 400; a `%` that starts no valid escape stays (unless decoding would make it start one —
//    then it becomes `%25`, so nothing can be decoded twice); bytes that may not appear in a path
//    (controls, space, `"` `#` `<` `>` `^` `` ` `` `{` `|` `}`, non-ASCII) are percent-encoded;
//    `.` and `..` segments (also as `%2e`) are resolved, never above the root.
// 5. Repeated slashes are kept (`//admin` stays: BASE does not merge slashes).

/** Why a request target was refused; the status is Envoy's. */
export type PathRejection =
  | { readonly ok: false; readonly status: 404; readonly reason: 'missing_path' | 'non_relative_path' }
  | { readonly ok: false; readonly status: 400; readonly reason: 'nul_in_path' | 'lowercase_method' };

export type PathNormalization =
  | {
      readonly ok: true;
      /** The normalized target (path and query) to match routes and to send upstream. */
      readonly target: string;
      /** The normalized path without the query: what AuthorizationPolicy `paths` match. */
      readonly path: string;
    }
  | PathRejection;

const PASS = 0;
const ESCAPE = 1;
const UNESCAPE = 2;
const INVALID = 3;

// Per byte: what the canonical path does with it raw (ESCAPE/INVALID) and when it arrives as %XX (UNESCAPE).
const CLASS = new Uint8Array(256).fill(ESCAPE);
for (let c = 0x21; c < 0x7f; c++) CLASS[c] = PASS;
for (const ch of ' "#<>?^`{|}') CLASS[ch.charCodeAt(0)] = ESCAPE;
for (const ch of '-_~') CLASS[ch.charCodeAt(0)] = UNESCAPE;
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = UNESCAPE;
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = UNESCAPE;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = UNESCAPE;
CLASS[0] = INVALID;

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** The byte an escape at `i` (`%XX`) stands for, or -1 when `i` starts no valid escape. */
function decodeAt(b: Uint8Array, i: number, end: number): number {
  if (b[i] !== 0x25 || i + 2 >= end) return -1;
  const hi = hexValue(b[i + 1]!);
  const lo = hexValue(b[i + 2]!);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/** Length of a dot at `i`: 1 for `.`, 3 for `%2e`/`%2E`, 0 otherwise. */
function dotAt(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2e) return 1;
  if (b[i] === 0x25 && i + 2 < end && b[i + 1] === 0x32 && (b[i + 2] === 0x65 || b[i + 2] === 0x45)) return 3;
  return 0;
}

function isSlash(c: number | undefined): boolean {
  return c === 0x2f || c === 0x5c;
}

/** The path's bytes: Node hands request targets over as latin1 strings (HTTP/1) or UTF-8 (HTTP/2 beyond U+00FF). */
function bytesOf(s: string): Uint8Array {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return Buffer.from(s, 'utf8');
  return Buffer.from(s, 'latin1');
}

/** The common case, without allocating: a path that starts with `/` and that no rule would change. */
function isCanonical(path: string): boolean {
  if (path.charCodeAt(0) !== 0x2f) return false;
  let prev = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x80 || c === 0x25 || c === 0x5c || (c === 0x2e && prev === 0x2f)) return false;
    const k = CLASS[c];
    if (k === ESCAPE || k === INVALID) return false;
    prev = c;
  }
  return true;
}

/** Canonical form of one path (no query); undefined when it holds `%00` or a NUL byte. */
export function canonicalizePath(path: string): string | undefined {
  if (isCanonical(path)) return path;
  const b = bytesOf(path);
  const end = b.length;
  const out: number[] = [];
  let ok = true;
  // Output index of a literal '%' that started no valid escape (see below); -Infinity when none is near.
  let strayPercent = -Infinity;
  const pushEscaped = (c: number) => out.push(0x25, HEX.charCodeAt(c >> 4), HEX.charCodeAt(c & 15));
  if (!isSlash(b[0])) out.push(0x2f);
  for (let i = 0; i < end; i++) {
    const c = b[i]!;
    const dot = dotAt(b, i, end);
    if (dot > 0) {
      if (out.length > 0 && out[out.length - 1] === 0x2f) {
        const after = i + dot;
        if (after === end || isSlash(b[after])) {
          // `.` segment: dropped with its slash.
          i = after === end ? after - 1 : after;
          continue;
        }
        const dot2 = dotAt(b, after, end);
        if (dot2 > 0 && (after + dot2 === end || isSlash(b[after + dot2]))) {
          // `..` segment: back up to the previous slash, never above the first.
          if (out.length > 1) {
            let j = out.length - 2;
            while (j > 0 && out[j] !== 0x2f) j--;
            out.length = j + 1;
          }
          i = after + dot2 === end ? after + dot2 - 1 : after + dot2;
          continue;
        }
      }
      out.push(0x2e);
      i += dot - 1;
      continue;
    }
    if (c === 0x5c) {
      out.push(0x2f);
      continue;
    }
    if (c === 0x25) {
      const v = decodeAt(b, i, end);
      if (v < 0) {
        strayPercent = out.length;
        out.push(0x25);
        continue;
      }
      if (CLASS[v] === UNESCAPE) {
        out.push(v);
        // "%%30" → "%0": had the stray '%' and what follows become a valid escape, a second decoding
        // (by the app) would see a different path. Escape that '%' instead.
        if (strayPercent >= out.length - 3) neutralizeStrayPercent(out, strayPercent, b, i + 3, end);
      } else {
        out.push(0x25, b[i + 1]!, b[i + 2]!);
        if (CLASS[v] === INVALID) ok = false;
      }
      i += 2;
      continue;
    }
    switch (CLASS[c]) {
      case INVALID:
        pushEscaped(c);
        ok = false;
        break;
      case ESCAPE:
        pushEscaped(c);
        break;
      default:
        out.push(c);
    }
  }
  return ok ? Buffer.from(out).toString('latin1') : undefined;
}

/**
 * `out` ends with a stray '%' (at `at`) followed by one or two characters, the last just decoded.
 * When that spells a valid escape (taking the next input byte if only one character follows),
 * the '%' becomes "%25".
 */
function neutralizeStrayPercent(out: number[], at: number, b: Uint8Array, next: number, end: number): void {
  const oneFollows = at === out.length - 2;
  const hi = out[at + 1]!;
  let lo: number;
  if (oneFollows) {
    if (next >= end || b[next]! >= 0x80) return;
    lo = b[next]!;
  } else lo = out[at + 2]!;
  if (hexValue(hi) < 0 || hexValue(lo) < 0) return;
  const tail = out.splice(at + 1);
  out.push(0x32, 0x35, ...tail);
}

/**
 * Normalizes one request target (`:path` or the HTTP/1 request-target) as Envoy does for Istio's
 * BASE normalization. Pure; callers refuse a rejection with its status and count it.
 */
export function normalizeRequestTarget(target: string): PathNormalization {
  if (target === '') return { ok: false, status: 404, reason: 'missing_path' };
  if (target.charCodeAt(0) !== 0x2f) return { ok: false, status: 404, reason: 'non_relative_path' };
  const hash = target.indexOf('#');
  const noFragment = hash === -1 ? target : target.slice(0, hash);
  const q = noFragment.indexOf('?');
  const rawPath = q === -1 ? noFragment : noFragment.slice(0, q);
  const query = q === -1 ? '' : noFragment.slice(q);
  const path = canonicalizePath(rawPath);
  if (path === undefined) return { ok: false, status: 400, reason: 'nul_in_path' };
  return { ok: true, target: path + query, path };
}

/**
 * Istio refuses (400) a request whose method is not upper case, so that `methods: [GET]` cannot be
 * side-stepped with `get`. HTTP/1 parsers refuse such methods already; HTTP/2 carries any token.
 */
export function checkMethod(method: string): PathRejection | undefined {
  return /[a-z]/.test(method) ? { ok: false, status: 400, reason: 'lowercase_method' } : undefined;
}
