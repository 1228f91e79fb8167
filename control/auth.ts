// Agent authentication for `smesh control`: bootstrap bearer tokens (token → node name) checked on every RPC, and the tokens file re-read when it changes.
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FileChangeWatch } from './file-watch';
import { basename, dirname } from 'node:path';
import type { Metadata } from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { SmeshError } from '../core/errors';
import { silentLogger, type Logger } from '../core/telemetry/logger';

/** Node names are SPIFFE path segments (they end up in spiffe://<td>/smesh/node/<node>). */
const NODE_NAME_RE = /^[A-Za-z0-9._-]+$/;

type TokenTable = Map<string, { token: Buffer; node: string }>;

function tokenTable(tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string>): TokenTable {
  const table: TokenTable = new Map();
  const entries = tokens instanceof Map ? [...tokens.entries()] : Object.entries(tokens);
  for (const [token, node] of entries) {
    if (typeof token !== 'string' || token.length < 8) throw new SmeshError('SMESH_ERR_CONFIG', 'tokens: every token must be a string of at least 8 characters');
    if (typeof node !== 'string' || !NODE_NAME_RE.test(node) || node === '.' || node === '..') {
      throw new SmeshError('SMESH_ERR_CONFIG', `tokens: node name for a token must match [A-Za-z0-9._-]+, got ${JSON.stringify(node)}`);
    }
    table.set(digest(token), { token: Buffer.from(token), node });
  }
  return table;
}

/** Who a request authenticated as: the node, and an opaque key naming the token (a digest, never the token). */
export interface Authenticated {
  readonly node: string;
  readonly key: string;
}

/**
 * Token → node lookups. The table can be replaced at run time (`replace`, or a TokenFileWatcher):
 * every RPC authenticates against the current table, so a revoked token's next stream or CSR is
 * refused at once, and `onChange` listeners (the ADS server) re-check what they authenticated
 * earlier with `stillValid`, so open streams of a revoked token are cut too.
 */
export class TokenAuthenticator {
  // Keyed by a digest so lookups do not compare secrets with a data-dependent early exit.
  private byDigest: TokenTable;
  private readonly listeners = new Set<() => void>();

  constructor(tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string>) {
    this.byDigest = tokenTable(tokens);
  }

  /** Swaps in a new token set atomically; throws SMESH_ERR_CONFIG (and keeps the old set) if it is invalid. */
  replace(tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string>): { added: number; removed: number; nodes: number } {
    const next = tokenTable(tokens);
    let added = 0;
    let removed = 0;
    for (const [d, e] of next) if (this.byDigest.get(d)?.node !== e.node) added++;
    for (const [d, e] of this.byDigest) if (next.get(d)?.node !== e.node) removed++;
    this.byDigest = next;
    for (const l of [...this.listeners]) l();
    return { added, removed, nodes: new Set([...next.values()].map((e) => e.node)).size };
  }

  /** Called after every `replace` (the table may have lost tokens); returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether a token authenticated earlier (its `key`) still belongs to `node` in the current table. */
  stillValid(auth: Authenticated): boolean {
    return this.byDigest.get(auth.key)?.node === auth.node;
  }

  /** Number of tokens currently accepted. */
  get size(): number {
    return this.byDigest.size;
  }

  /** Reads a YAML or JSON map `token: nodeName`. */
  static fromFile(file: string): TokenAuthenticator {
    return new TokenAuthenticator(readTokensFile(file));
  }

  /** The node a bearer token belongs to, or undefined. */
  nodeForToken(token: string): string | undefined {
    return this.lookup(token)?.node;
  }

  private lookup(token: string): Authenticated | undefined {
    const key = digest(token);
    const hit = this.byDigest.get(key);
    if (!hit) return undefined;
    const given = Buffer.from(token);
    return given.length === hit.token.length && timingSafeEqual(given, hit.token) ? { node: hit.node, key } : undefined;
  }

  /** The node authenticated by `authorization: Bearer <token>` metadata, or undefined. */
  authenticate(metadata: Metadata): string | undefined {
    return this.authenticateKeyed(metadata)?.node;
  }

  /** Like `authenticate`, plus the token's key for a later `stillValid` check (long-lived streams). */
  authenticateKeyed(metadata: Metadata): Authenticated | undefined {
    for (const value of metadata.get('authorization')) {
      const text = typeof value === 'string' ? value : value.toString('utf8');
      const m = /^Bearer\s+(\S+)\s*$/i.exec(text);
      if (m) return this.lookup(m[1]!);
    }
    return undefined;
  }
}

/** Parses a tokens file (YAML or JSON map `token: nodeName`); errors name the file, never quote its text (tokens are secrets). */
export function readTokensFile(file: string): Map<string, string> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new SmeshError('SMESH_ERR_CONFIG', `cannot read tokens file ${file}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new SmeshError('SMESH_ERR_CONFIG', `tokens file ${file}: expected a map of token → node name`);
  }
  const map = new Map(Object.entries(doc as Record<string, string>));
  try {
    tokenTable(map);
  } catch (err) {
    throw new SmeshError('SMESH_ERR_CONFIG', `tokens file ${file}: ${(err as Error).message.replace(/^tokens: /, '')}`, { cause: err });
  }
  return map;
}

export interface TokenFileWatcherOptions {
  /** Poll period (a fallback for file systems and Secret volume swaps fs.watch misses). Default 1000 ms. */
  readonly intervalMs?: number;
  readonly logger?: Logger;
  /** Called after each successful reload (tests, metrics). */
  readonly onReload?: (change: { added: number; removed: number; nodes: number }) => void;
  /** Called for each rejected change (metrics); the message names the file, never a token. */
  readonly onError?: (message: string) => void;
}

/**
 * Keeps a TokenAuthenticator in step with its tokens file: fs.watch on the file's directory (a
 * Kubernetes Secret volume swaps a `..data` symlink, so the directory is what changes) plus a stat
 * poll. A changed file is parsed and swapped in whole; an unreadable or invalid one is logged and
 * the previous tokens stay in force. Token values are never logged.
 */
export class TokenFileWatcher {
  private readonly log: Logger;
  private readonly changes: FileChangeWatch;
  private lastError = '';

  constructor(
    private readonly file: string,
    private readonly auth: TokenAuthenticator,
    private readonly opts: TokenFileWatcherOptions = {},
  ) {
    this.log = opts.logger ?? silentLogger();
    this.changes = new FileChangeWatch({
      dir: dirname(file),
      files: [file],
      relevant: (name) => name === null || name === basename(file) || name.startsWith('..'),
      intervalMs: opts.intervalMs,
      debounceMs: 50,
      onChange: () => void this.reload(),
    });
  }

  start(): this {
    this.changes.start();
    return this;
  }

  /** Re-reads the file now; returns false (previous tokens kept) if it is unreadable or invalid. */
  reload(): boolean {
    this.changes.cancelPending();
    this.changes.seen();
    let change: { added: number; removed: number; nodes: number };
    try {
      change = this.auth.replace(readTokensFile(this.file));
    } catch (err) {
      const message = (err as Error).message;
      this.opts.onError?.(message);
      if (message !== this.lastError) this.log.error({ file: this.file, error: message }, 'tokens file change rejected; the previous tokens stay in force');
      this.lastError = message;
      return false;
    }
    this.lastError = '';
    if (change.added > 0 || change.removed > 0) this.log.info({ file: this.file, ...change }, 'tokens reloaded (revoked tokens are refused and their open xDS streams closed)');
    this.opts.onReload?.(change);
    return true;
  }

  close(): void {
    this.changes.close();
  }
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
