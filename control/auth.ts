// Agent authentication for `smesh control`: bootstrap bearer tokens (token → node name) checked on every RPC.
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { SmeshError } from '../agent/errors';

/** Node names are SPIFFE path segments (they end up in spiffe://<td>/smesh/node/<node>). */
const NODE_NAME_RE = /^[A-Za-z0-9._-]+$/;

export class TokenAuthenticator {
  // Keyed by a digest so lookups do not compare secrets with a data-dependent early exit.
  private readonly byDigest = new Map<string, { token: Buffer; node: string }>();

  constructor(tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string>) {
    const entries = tokens instanceof Map ? [...tokens.entries()] : Object.entries(tokens);
    for (const [token, node] of entries) {
      if (typeof token !== 'string' || token.length < 8) throw new SmeshError('SMESH_ERR_CONFIG', 'tokens: every token must be a string of at least 8 characters');
      if (typeof node !== 'string' || !NODE_NAME_RE.test(node) || node === '.' || node === '..') {
        throw new SmeshError('SMESH_ERR_CONFIG', `tokens: node name for a token must match [A-Za-z0-9._-]+, got ${JSON.stringify(node)}`);
      }
      this.byDigest.set(digest(token), { token: Buffer.from(token), node });
    }
  }

  /** Reads a YAML or JSON map `token: nodeName`. */
  static fromFile(file: string): TokenAuthenticator {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new SmeshError('SMESH_ERR_CONFIG', `cannot read tokens file ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new SmeshError('SMESH_ERR_CONFIG', `tokens file ${file}: expected a map of token → node name`);
    }
    try {
      return new TokenAuthenticator(doc as Record<string, string>);
    } catch (err) {
      throw new SmeshError('SMESH_ERR_CONFIG', `tokens file ${file}: ${(err as Error).message.replace(/^tokens: /, '')}`, { cause: err });
    }
  }

  /** The node a bearer token belongs to, or undefined. */
  nodeForToken(token: string): string | undefined {
    const hit = this.byDigest.get(digest(token));
    if (!hit) return undefined;
    const given = Buffer.from(token);
    return given.length === hit.token.length && timingSafeEqual(given, hit.token) ? hit.node : undefined;
  }

  /** The node authenticated by `authorization: Bearer <token>` metadata, or undefined. */
  authenticate(metadata: Metadata): string | undefined {
    for (const value of metadata.get('authorization')) {
      const text = typeof value === 'string' ? value : value.toString('utf8');
      const m = /^Bearer\s+(\S+)\s*$/i.exec(text);
      if (m) return this.nodeForToken(m[1]!);
    }
    return undefined;
  }
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
