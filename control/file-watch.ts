// Change detection for files the control plane reloads without a restart (tokens, --ca-dir): fs.watch on their directory plus a stat poll, debounced.
import { type FSWatcher, statSync, watch } from 'node:fs';

/** Identity of a file's current content as stat sees it (follows symlinks: a Secret update changes the target's inode). */
export function fileStamp(file: string): string {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch (err) {
    return `-${(err as NodeJS.ErrnoException).code ?? 'unknown'}`;
  }
}

export interface FileChangeWatchOptions {
  /** Directory to fs.watch (a Kubernetes Secret volume swaps a `..data` symlink there: the directory is what changes). */
  readonly dir: string;
  /** The files whose stamps the poll compares. */
  readonly files: readonly string[];
  /** fs.watch events to act on, by file name (null: unknown); default all. */
  readonly relevant?: (name: string | null) => boolean;
  /** Stat poll period (fs.watch misses some changes, e.g. on network file systems). Default 1000 ms. */
  readonly intervalMs?: number;
  /** Quiet time after the last change before `onChange` runs (files are often replaced in steps). */
  readonly debounceMs: number;
  readonly onChange: () => void;
}

/**
 * Calls `onChange` once things settle after the watched files change. The owner reads the files in `onChange` and
 * records the stamp it read with `seen()`; the poll only fires for stamps not seen yet.
 */
export class FileChangeWatch {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastSeen: string;
  private closed = false;

  constructor(private readonly opts: FileChangeWatchOptions) {
    this.lastSeen = this.stamp();
  }

  /** The files' combined stamp now. */
  stamp(): string {
    return this.opts.files.map(fileStamp).join('|');
  }

  /** Records `stamp` (default: now) as handled. */
  seen(stamp = this.stamp()): void {
    this.lastSeen = stamp;
  }

  start(): this {
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, (_event, name) => {
        if (!this.opts.relevant || this.opts.relevant(name === null ? null : String(name))) this.schedule();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // polling alone still picks changes up
    }
    this.timer = setInterval(() => {
      if (this.stamp() !== this.lastSeen) this.schedule();
    }, this.opts.intervalMs ?? 1000);
    this.timer.unref();
    return this;
  }

  /** Runs `onChange` after the debounce (restarted by every further call). */
  schedule(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.opts.onChange();
    }, this.opts.debounceMs);
    this.debounce.unref();
  }

  /** Drops a pending debounced call (the owner is reading now anyway). */
  cancelPending(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearInterval(this.timer);
    this.cancelPending();
  }
}
