// File source: a directory of YAML resources (control/config/config-dir.ts), watched with fs.watch plus a periodic rescan; invalid edits are reported and ignored.
import { type FSWatcher, readdirSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfigDir, type ConfigParseCache } from '../config/config-dir';
import type { MeshSnapshot } from '../../core/model/types';
import { silentLogger, type Logger } from '../../core/telemetry/logger';
import type { MeshSource, SourceEvents } from './types';

export interface FileSourceOptions {
  readonly dir: string;
  readonly logger?: Logger;
  /** Quiet time after the last fs event before reloading (editors write in bursts). Default 100 ms. */
  readonly debounceMs?: number;
  /** Fallback rescan period for file systems where fs.watch misses events. Default 2000 ms. */
  readonly rescanMs?: number;
}

/** Name, size and mtime of every config file: cheap to compute, changes with any edit. */
function fingerprint(dir: string): string {
  const parts: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
  for (const name of names) {
    if (!/\.ya?ml$/.test(name)) continue;
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) parts.push(`${name}:${st.size}:${st.mtimeMs}`);
    } catch {
      // vanished between readdir and stat: the next scan sees the final state
    }
  }
  return parts.join('|');
}

export class FileSource implements MeshSource {
  readonly kind = 'files';
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private lastFingerprint = '';
  private events: SourceEvents | undefined;
  private closed = false;
  /** Parsed documents per file: a change re-parses only the files whose size/mtime/inode changed. */
  private readonly parsed: ConfigParseCache = new Map();

  constructor(private readonly opts: FileSourceOptions) {
    this.log = opts.logger ?? silentLogger();
    this.debounceMs = opts.debounceMs ?? 100;
    this.rescanMs = opts.rescanMs ?? 2000;
  }

  async start(events: SourceEvents): Promise<MeshSnapshot> {
    this.events = events;
    this.lastFingerprint = fingerprint(this.opts.dir);
    const initial = loadConfigDir(this.opts.dir, this.parsed); // throws ConfigError: a bad start is loud
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, () => this.schedule());
      this.watcher.on('error', (err) => {
        this.log.warn({ err, dir: this.opts.dir }, 'fs.watch failed; relying on the periodic rescan');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn({ err, dir: this.opts.dir }, 'cannot watch the config directory; relying on the periodic rescan');
    }
    this.rescanTimer = setInterval(() => {
      if (fingerprint(this.opts.dir) !== this.lastFingerprint) this.schedule();
    }, this.rescanMs);
    this.rescanTimer.unref();
    return initial;
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => this.reload(), this.debounceMs);
    this.debounceTimer.unref();
  }

  private reload(): void {
    this.debounceTimer = undefined;
    if (this.closed || !this.events) return;
    const fp = fingerprint(this.opts.dir);
    this.lastFingerprint = fp;
    let snapshot: MeshSnapshot;
    try {
      snapshot = loadConfigDir(this.opts.dir, this.parsed);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : undefined;
      this.log.error({ dir: this.opts.dir, problems, error: (err as Error).message }, 'rejected configuration change; still serving the previous configuration');
      this.events.onError?.(err as Error);
      return;
    }
    this.log.info({ dir: this.opts.dir, workloads: snapshot.workloads.size, services: snapshot.services.size, nodes: snapshot.nodes.size }, 'configuration reloaded');
    this.events.onSnapshot(snapshot);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
  }
}
