// Test helpers for components that log and change asynchronously: a pino logger whose JSON lines the test reads, and polling waits that name what they waited for.
import pino from 'pino';

/** A real pino logger (JSON lines) writing into `lines`. */
export function captureLogs(level: pino.Level = 'debug'): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level }, { write: (l: string) => void lines.push(l) }), lines };
}

/** Polls `cond` every 20 ms; rejects naming `what` when it is still false after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  if (!(await pollUntil(cond, (met) => met, ms, 20))) throw new Error(`${what} not met within ${ms} ms`);
}

/**
 * Runs `probe` until `done(value)` holds or `ms` have passed, pausing `everyMs` between probes, and returns the last
 * value either way: the caller asserts on it, so a timeout fails with what was actually seen.
 */
export async function pollUntil<T>(probe: () => Promise<T> | T, done: (value: T) => boolean, ms: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
