// Child processes for privileged tests: spawn with captured output, wait for a line or for exit, run-to-completion with a deadline.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Captured text is capped so a chatty process cannot exhaust the test runner's memory. */
const MAX_CAPTURE = 8 * 1024 * 1024;

export interface CapturedOutput {
  stdoutText(): string;
  stderrText(): string;
  /** stdout and stderr interleaved in arrival order. */
  outputText(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Exit info once exited, otherwise null. */
  exitInfo(): ExitInfo | null;
  /** Resolves with the first stdout/stderr line matching `re`; rejects on timeout or exit. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string>;
}

export type CapturedProcess = ChildProcess & CapturedOutput;

export interface SpawnCapturedOptions extends Omit<SpawnOptions, 'stdio'> {
  /** Data written to stdin (stdin is closed afterwards). Default: stdin closed. */
  input?: string | Buffer;
}

export function spawnCaptured(cmd: string, args: readonly string[], opts: SpawnCapturedOptions = {}): CapturedProcess {
  const { input, ...spawnOpts } = opts;
  const child = spawn(cmd, args as string[], { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let all = '';
  let exit: ExitInfo | null = null;
  const waiters = new Set<() => void>();
  const append = (which: 'out' | 'err', chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (which === 'out' && out.length < MAX_CAPTURE) out += text;
    if (which === 'err' && err.length < MAX_CAPTURE) err += text;
    if (all.length < MAX_CAPTURE) all += text;
    for (const w of waiters) w();
  };
  child.stdout!.on('data', (c: Buffer) => append('out', c));
  child.stderr!.on('data', (c: Buffer) => append('err', c));
  child.stdin!.on('error', () => undefined);
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();

  const exited = new Promise<ExitInfo>((resolve) => {
    child.on('error', (e) => {
      if (all.length < MAX_CAPTURE) all += `\n[spawn error: ${e.message}]\n`;
      err += `\n[spawn error: ${e.message}]\n`;
      exit = exit ?? { code: -1, signal: null };
      for (const w of waiters) w();
      resolve(exit);
    });
    child.on('close', (code, signal) => {
      exit = { code, signal };
      for (const w of waiters) w();
      resolve(exit);
    });
  });

  const waitForLine = (re: RegExp, timeoutMs: number): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      let scanned = 0;
      let partial = '';
      const check = () => {
        const fresh = partial + all.slice(scanned);
        scanned = all.length;
        const lines = fresh.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (re.test(line)) return done(() => resolve(line));
        }
        if (exit) {
          if (re.test(partial)) return done(() => resolve(partial));
          return done(() => reject(new Error(`${cmd} exited (${JSON.stringify(exit)}) before printing ${re}; output:\n${tail(all)}`)));
        }
        return undefined;
      };
      const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${cmd}; output:\n${tail(all)}`))), timeoutMs);
      const done = (fn: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        fn();
      };
      waiters.add(check);
      check();
    });

  return Object.assign(child, {
    stdoutText: () => out,
    stderrText: () => err,
    outputText: () => all,
    exited,
    exitInfo: () => exit,
    waitForLine,
  });
}

export function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

export interface RunResult extends ExitInfo {
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Waits for exit; after `timeoutMs` sends SIGKILL and reports timedOut. */
export async function waitExit(proc: CapturedProcess, timeoutMs: number): Promise<RunResult> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, timeoutMs);
  const info = await proc.exited;
  clearTimeout(timer);
  return { ...info, stdout: proc.stdoutText(), stderr: proc.stderrText(), timedOut };
}

/** Parses the last JSON object line of a test app's stdout. */
export function lastJsonLine<T = Record<string, unknown>>(stdout: string): T {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON line in output:\n${tail(stdout)}`);
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every JSON object line of a process's output (pino logs), skipping other and partial lines. */
export function jsonRecords(text: string): Array<Record<string, unknown>> {
  const recs: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      recs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* partial line */
    }
  }
  return recs;
}
