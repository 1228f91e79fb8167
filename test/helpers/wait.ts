// The one polling wait of the test suites: poll a probe until it answers as wanted or a time limit passes. Waits on a state, a metric or a log line — never a fixed sleep standing in for one.

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

/** Polls `cond` every `everyMs` (20 ms unless given); rejects naming `what` when it is still false after `ms`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 20): Promise<void> {
  if (!(await pollUntil(cond, (met) => met, ms, everyMs))) throw new Error(`${what} not met within ${ms} ms`);
}
