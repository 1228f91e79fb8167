// Pod bandwidth annotations (kubernetes.io/egress-bandwidth, kubernetes.io/ingress-bandwidth) read as the kubelet reads them: Kubernetes resource quantities in bits per second.

export const EGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/egress-bandwidth';
export const INGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/ingress-bandwidth';

/** The kubelet's bounds (pkg/util/bandwidth validateBandwidthIsReasonable): 1 kbit/s ≤ rate ≤ 1 Pbit/s. */
export const MIN_BANDWIDTH_BPS = 1e3;
export const MAX_BANDWIDTH_BPS = 1e15;

const BINARY_SHIFT: Record<string, bigint> = { Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n };
const DECIMAL_EXP: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
/** Kubernetes' quantity grammar: signed decimal number, then a binary-SI, decimal-SI or decimal-exponent suffix. */
const QUANTITY_RE = /^([+-]?)(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** A quantity's value as a number (Quantity.Value(): rounded up to an integer, exactly), or an error message. */
export function parseQuantity(text: string): { value: number } | { error: string } {
  const m = QUANTITY_RE.exec(text);
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) {
    return { error: `expected a Kubernetes quantity such as 10M, 1G, 500k, 100Mi or 1000000, got ${JSON.stringify(text)}` };
  }
  const [, sign, whole = '', fraction = '', suffix = ''] = m;
  // value = mantissa × 2^shift × 10^exp, in integers so 1.1k is 1100 and 1G is 1000000000 exactly.
  let mantissa = BigInt((whole + fraction).replace(/^0+(?=\d)/, '') || '0');
  let exp = -fraction.length;
  if (suffix in BINARY_SHIFT) mantissa <<= BINARY_SHIFT[suffix]!;
  else exp += suffix in DECIMAL_EXP ? DECIMAL_EXP[suffix]! : Number(suffix.slice(1));
  let value: number;
  if (mantissa === 0n) value = 0;
  else if (exp > 40)
    value = Infinity; // beyond any bound checked below
  else if (exp >= 0) value = Number(mantissa * 10n ** BigInt(exp));
  else if (exp < -60) value = 1;
  else {
    const div = 10n ** BigInt(-exp);
    value = Number(mantissa / div + (mantissa % div === 0n ? 0n : 1n));
  }
  return { value: sign === '-' ? -value : value };
}

/** One annotation's rate in bits per second, or why it is refused (too small, too large, not a quantity). */
export function parseBandwidth(text: string): { bitsPerSecond: number } | { error: string } {
  const q = parseQuantity(text);
  if ('error' in q) return q;
  if (!(q.value >= MIN_BANDWIDTH_BPS)) return { error: `${JSON.stringify(text)} is unreasonably small (< 1kbit/s; the value is in bits per second)` };
  if (q.value > MAX_BANDWIDTH_BPS) return { error: `${JSON.stringify(text)} is unreasonably large (> 1Pbit/s)` };
  return { bitsPerSecond: q.value };
}

export interface PodBandwidth {
  readonly egressBandwidthBps?: number;
  readonly ingressBandwidthBps?: number;
}

/** Both annotations of a pod; a bad one is reported by its field and left out (the other still applies). */
export function podBandwidth(annotations: Readonly<Record<string, unknown>> | undefined): { bandwidth: PodBandwidth; problems: Array<{ field: string; message: string }> } {
  const problems: Array<{ field: string; message: string }> = [];
  const read = (name: string): number | undefined => {
    const raw = annotations?.[name];
    if (raw === undefined) return undefined;
    const field = `metadata.annotations[${name}]`;
    if (typeof raw !== 'string') {
      problems.push({ field, message: `expected a string quantity in bits per second, got ${JSON.stringify(raw)}` });
      return undefined;
    }
    const r = parseBandwidth(raw);
    if ('error' in r) {
      problems.push({ field, message: r.error });
      return undefined;
    }
    return r.bitsPerSecond;
  };
  const egress = read(EGRESS_BANDWIDTH_ANNOTATION);
  const ingress = read(INGRESS_BANDWIDTH_ANNOTATION);
  return { bandwidth: { ...(egress !== undefined ? { egressBandwidthBps: egress } : {}), ...(ingress !== undefined ? { ingressBandwidthBps: ingress } : {}) }, problems };
}
