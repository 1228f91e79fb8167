// Test helpers for components that log and change asynchronously: a pino logger whose JSON lines the test reads, and a polling wait that names what it waited for.
import pino from 'pino';

/** A real pino logger (JSON lines) writing into `lines`. */
export function captureLogs(level: pino.Level = 'debug'): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level }, { write: (l: string) => void lines.push(l) }), lines };
}

/** Polls `cond` every 20 ms; rejects naming `what` when it is still false after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
