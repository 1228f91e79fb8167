// Structured logging for the agent (pino JSON lines): one root, per-component children, runtime level changes, key material redacted.
import pino from 'pino';
import { SmeshError } from '../errors';

export type Logger = pino.Logger;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Paths that may hold key material anywhere we log objects; censored, never printed. */
const REDACT_PATHS = [
  'key',
  'keyPem',
  'privateKey',
  'rootKey',
  '*.key',
  '*.keyPem',
  '*.privateKey',
  '*.rootKey',
  '*.*.keyPem',
  '*.*.privateKey',
];

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  /** Where JSON lines go (default stdout). Tests pass a stream. */
  readonly destination?: pino.DestinationStream;
  readonly base?: Record<string, unknown>;
}

/**
 * Root logger plus its component children. pino children copy the level when created, so the
 * hub remembers them and changes all of them together (admin /logging).
 */
export class LogHub {
  readonly root: Logger;
  private readonly children = new Set<Logger>();

  constructor(opts: LoggerOptions = {}) {
    const level = opts.level ?? 'info';
    if (!isLogLevel(level)) throw new SmeshError('SMESH_ERR_CONFIG', `log level ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`);
    this.root = pino(
      {
        level,
        base: opts.base ?? { pid: process.pid },
        redact: { paths: REDACT_PATHS, censor: '[redacted]' },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      opts.destination ?? pino.destination({ dest: 1, sync: false }),
    );
  }

  /** A child logger for one component (e.g. 'outbound'); follows later level changes. */
  child(component: string, bindings: Record<string, unknown> = {}): Logger {
    const c = this.root.child({ component, ...bindings });
    this.children.add(c);
    return c;
  }

  get level(): LogLevel {
    return this.root.level as LogLevel;
  }

  /** Changes the level of the root and every component logger; throws SMESH_ERR_CONFIG for unknown levels. */
  setLevel(level: string): void {
    if (!isLogLevel(level)) throw new SmeshError('SMESH_ERR_CONFIG', `log level ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`);
    this.root.level = level;
    for (const c of this.children) c.level = level;
  }

  flush(): void {
    this.root.flush();
  }
}

/** A logger that drops everything (default for modules constructed without one, e.g. in tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
