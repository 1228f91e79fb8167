// Request headers as Istio's policy sees them: every value of a repeated header, none dropped (Envoy joins them with ',').
//
// Node's parsers keep only the first value of some headers (user-agent, authorization, referer, …) and join
// the others with ", "; a `request.headers[...]` condition must see what Envoy's RBAC sees, or a repeated
// header can slip past it. The evaluator joins these lists with ',' (agent/policy/evaluate.ts headerValue).

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
