// A small strict validator for Kubernetes-shaped YAML: every field must be known, every value of the expected shape.
import { isIP } from 'node:net';

export type FieldSpec =
  | 'string'
  | 'nonEmptyString'
  | 'integer'
  | 'number'
  | 'boolean'
  | 'port'
  | 'ip'
  | 'stringMap'
  | 'duration'
  | 'ignored'
  | { readonly object: ObjectSpec }
  | { readonly arrayOf: FieldSpec }
  | { readonly oneOf: readonly string[] };

export interface ObjectSpec {
  readonly fields: Readonly<Record<string, FieldSpec>>;
  readonly required?: readonly string[];
}

export interface FieldProblem {
  /** Dotted path of the field, e.g. `spec.ports[0].port`. */
  readonly field: string;
  readonly message: string;
}

const DURATION_RE = /^(\d+(\.\d+)?(ms|s|m|h))+$/;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Checks `value` against `spec`; returns every problem found (empty when valid). */
export function validate(value: unknown, spec: FieldSpec, path: string, problems: FieldProblem[] = []): FieldProblem[] {
  if (spec === 'ignored') return problems;
  if (typeof spec === 'string') {
    checkScalar(value, spec, path, problems);
    return problems;
  }
  if ('oneOf' in spec) {
    if (typeof value !== 'string' || !spec.oneOf.includes(value)) {
      problems.push({ field: path, message: `expected one of ${spec.oneOf.join(', ')}, got ${describe(value)}` });
    }
    return problems;
  }
  if ('arrayOf' in spec) {
    if (!Array.isArray(value)) {
      problems.push({ field: path, message: `expected a list, got ${describe(value)}` });
      return problems;
    }
    value.forEach((item, i) => validate(item, spec.arrayOf, `${path}[${i}]`, problems));
    return problems;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problems.push({ field: path, message: `expected a mapping, got ${describe(value)}` });
    return problems;
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    const fieldSpec = spec.object.fields[key];
    if (fieldSpec === undefined) {
      problems.push({ field: join(path, key), message: 'unknown field' });
      continue;
    }
    if (obj[key] === null || obj[key] === undefined) continue;
    validate(obj[key], fieldSpec, join(path, key), problems);
  }
  for (const key of spec.object.required ?? []) {
    if (obj[key] === undefined || obj[key] === null) problems.push({ field: join(path, key), message: 'required field is missing' });
  }
  return problems;
}

function checkScalar(value: unknown, spec: string, path: string, problems: FieldProblem[]): void {
  switch (spec) {
    case 'string':
      if (typeof value !== 'string') problems.push({ field: path, message: `expected a string, got ${describe(value)}` });
      return;
    case 'nonEmptyString':
      if (typeof value !== 'string' || value.length === 0) problems.push({ field: path, message: `expected a non-empty string, got ${describe(value)}` });
      return;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) problems.push({ field: path, message: `expected an integer, got ${describe(value)}` });
      return;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) problems.push({ field: path, message: `expected a number, got ${describe(value)}` });
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push({ field: path, message: `expected true or false, got ${describe(value)}` });
      return;
    case 'port':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
        problems.push({ field: path, message: `expected a port number 1-65535, got ${describe(value)}` });
      }
      return;
    case 'ip':
      if (typeof value !== 'string' || isIP(value) === 0) problems.push({ field: path, message: `expected an IP address, got ${describe(value)}` });
      return;
    case 'duration':
      if (typeof value !== 'string' || !DURATION_RE.test(value)) problems.push({ field: path, message: `expected a duration like 30s, 5m or 24h, got ${describe(value)}` });
      return;
    case 'stringMap':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        problems.push({ field: path, message: `expected a mapping of strings, got ${describe(value)}` });
        return;
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') problems.push({ field: join(path, k), message: `expected a string value, got ${describe(v)}` });
      }
      return;
    default:
      problems.push({ field: path, message: `internal: unknown field spec ${spec}` });
  }
}

/** Parses a duration such as `24h`, `90s`, `1h30m` into milliseconds. */
export function parseDurationMs(text: string): number {
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    const n = Number(m[1]);
    const unit = m[2];
    total += unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n * 3_600_000;
  }
  return total;
}
