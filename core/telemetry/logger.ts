// Structured logging for the agent (pino JSON lines): one root, per-component children, runtime level changes, key material redacted.
import pino from 'pino';
import { SmeshError } from '../errors';

export type Logger = pino.Logger;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Paths that may hold key material anywhere we log objects; censored, never printed. */
const REDACT_PATHS = ['key', 'keyPem', 'privateKey', 'rootKey', '*.key', '*.keyPem', '*.privateKey', '*.rootKey', '*.*.keyPem', '*.*.privateKey'];

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
  /**
   * Root of the access log: the same destination and base, without the redaction pass (pino's wildcard redaction was
   * ~1/4 of an agent's per-connection CPU in a new-connections profile). Access lines carry fixed fields (addresses,
   * workloads, identities, counts) and never key material.
   */
  private readonly accessRoot: Logger;
  private readonly children = new Set<Logger>();

  constructor(opts: LoggerOptions = {}) {
    const level = opts.level ?? 'info';
    if (!isLogLevel(level)) throw new SmeshError('SMESH_ERR_CONFIG', `log level ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`);
    const destination = opts.destination ?? pino.destination({ dest: 1, sync: false });
    const common = {
      level,
      base: opts.base ?? { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label: string) => ({ level: label }) },
    };
    this.root = pino({ ...common, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
    this.accessRoot = pino(common, destination);
  }

  /** The access log ('connection complete', 'request complete', policy decisions): fixed fields only, not redacted. */
  access(): Logger {
    const c = this.accessRoot.child({ component: 'access' });
    this.children.add(c);
    return c;
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
    this.accessRoot.level = level;
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
