// Test helpers for components that log: a pino logger whose JSON lines the test reads (the polling waits are in ./wait.ts, re-exported here).
import pino from 'pino';

/** A real pino logger (JSON lines) writing into `lines`. */
export function captureLogs(level: pino.Level = 'debug'): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level }, { write: (l: string) => void lines.push(l) }), lines };
}

// The polling waits live in ./wait.ts; re-exported here for the files that import them from this module.
export { pollUntil, waitUntil } from './wait';
