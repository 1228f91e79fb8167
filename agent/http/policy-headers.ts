// Request headers as Istio's policy sees them: every value of a repeated header, none dropped (Envoy joins them with ',').
//
// Node's parsers keep only the first value of some headers (user-agent, authorization, referer, …) and join
// the others with ", "; a `request.headers[...]` condition must see what Envoy's RBAC sees, or a repeated
// header can slip past it. The evaluator joins these lists with ',' (core/policy/evaluate.ts headerValue).

import type { IncomingHttpHeaders } from 'node:http';

/** Lower-case name → every value, from a flat `[name, value, name, value, …]` list (HTTP/2 raw headers); pseudo-headers left out. */
export function headerLists(raw: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name.startsWith(':')) continue;
    (out[name] ??= []).push(raw[i + 1]!);
  }
  return out;
}

/** Header fields of an engine-parsed request (name, value pairs in order) as node:http presents them (joined; set-cookie and cookie as node does) and distinct. */
export function engineHeaderViews(headers: readonly (readonly [string, string])[]): { joined: IncomingHttpHeaders; distinct: Record<string, string[]> } {
  const distinct: Record<string, string[]> = {};
  for (const [name, value] of headers) (distinct[name] ??= []).push(value);
  const joined: IncomingHttpHeaders = {};
  for (const [name, values] of Object.entries(distinct)) {
    if (name === 'set-cookie') joined[name] = values;
    else joined[name] = values.join(name === 'cookie' ? '; ' : ', ');
  }
  return { joined, distinct };
}
