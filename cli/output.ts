// Output of the operator commands: aligned tables for a terminal, JSON or YAML for scripts (-o), and their shared flags.
import YAML from 'yaml';
import { SmeshError } from '../core/errors';
import { DEFAULT_ADMIN, parseAdminAddress, type AdminTarget } from './admin-client';

export type OutputFormat = 'table' | 'json' | 'yaml';

export interface OperatorFlags {
  readonly admin: AdminTarget;
  readonly output: OutputFormat;
  /** Positional arguments left after the flags. */
  readonly positional: readonly string[];
  /** `smesh top`: one sample, no refresh. */
  readonly once: boolean;
  /** `smesh top`: seconds between refreshes. */
  readonly intervalSeconds: number;
}

/** `--admin HOST:PORT`, `-o|--output table|json|yaml` (also `-o=json`), `--once`, `--interval SECONDS`. */
export function parseOperatorFlags(command: string, argv: readonly string[]): OperatorFlags {
  let admin = DEFAULT_ADMIN;
  let output: OutputFormat = 'table';
  let once = false;
  let interval = 2;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith('-') && argv[i].includes('=') ? [argv[i].slice(0, argv[i].indexOf('=')), argv[i].slice(argv[i].indexOf('=') + 1)] : [argv[i], undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new SmeshError('SMESH_ERR_CONFIG', `smesh ${command}: ${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--admin':
        admin = value();
        break;
      case '-o':
      case '--output': {
        const v = value();
        if (v !== 'table' && v !== 'json' && v !== 'yaml') throw new SmeshError('SMESH_ERR_CONFIG', `smesh ${command}: ${flag} ${v}: expected table, json or yaml`);
        output = v;
        break;
      }
      case '--once':
        once = true;
        break;
      case '--interval': {
        const v = value();
        interval = Number(v);
        if (!(interval >= 0.2 && interval <= 3600)) throw new SmeshError('SMESH_ERR_CONFIG', `smesh ${command}: --interval ${v}: expected seconds between 0.2 and 3600`);
        break;
      }
      default:
        if (flag.startsWith('-')) throw new SmeshError('SMESH_ERR_CONFIG', `smesh ${command}: unknown flag ${flag}`);
        positional.push(flag);
    }
  }
  return { admin: parseAdminAddress(admin), output, positional, once, intervalSeconds: interval };
}

/** JSON (2-space, one trailing newline) or YAML of a value; tables are the caller's. */
export function formatData(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : YAML.stringify(value);
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** 90061 → "1d1h", 3600 → "1h0m", 59 → "59s"; negative → "expired 5m ago". */
export function formatDuration(seconds: number): string {
  if (seconds < 0) return `expired ${formatDuration(-seconds)} ago`;
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** 1536 → "1.5Ki" (binary units, as kubectl top shows memory). */
export function formatBytes(n: number): string {
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? String(Math.round(v)) : `${v.toFixed(1)}${units[u]}`;
}
