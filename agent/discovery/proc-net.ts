// Parsers for a network namespace's local addresses as /proc/<pid>/net shows them (fib_trie for IPv4, if_inet6 for IPv6).
import { formatIpv6Words, ipToKey } from '../../core/net/addr';

/**
 * IPv4 addresses local to the namespace: leaves of /proc/<pid>/net/fib_trie carrying a `/32 host LOCAL` entry.
 * Loopback (127.0.0.0/8) is left out: every namespace has it, so it can never tell one pod from another.
 * The same leaf appears under both the Main and Local tables; each address is returned once, in first-seen order.
 */
export function parseFibTrieLocal(text: string): string[] {
  const out = new Set<string>();
  let leaf: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('|--')) {
      leaf = line.slice(3).trim();
      continue;
    }
    if (line.startsWith('/')) {
      // "/32 host LOCAL": prefix length, scope, route type; any number of these follow one leaf.
      const [len, scope, type] = line.split(/\s+/);
      if (leaf && len === '/32' && scope === 'host' && type === 'LOCAL' && isIpv4(leaf) && !leaf.startsWith('127.')) out.add(leaf);
      continue;
    }
    leaf = undefined; // a "+--" node or a table header: the next entries belong to another leaf
  }
  return [...out];
}

// if_inet6 prints the address type's scope bits: 0x00 global, 0x10 loopback (::1), 0x20 link-local (fe80::/10), 0x40 site.
const PROC_SCOPE_HOST = 0x10;
const PROC_SCOPE_LINK = 0x20;

/**
 * IPv6 addresses of the namespace from /proc/<pid>/net/if_inet6 ("<32 hex> <ifindex> <plen> <scope> <flags> <dev>"),
 * without loopback and link-local ones (never a pod address). Returned in RFC 5952 text form.
 */
export function parseIfInet6(text: string): string[] {
  const out = new Set<string>();
  for (const raw of text.split('\n')) {
    const fields = raw.trim().split(/\s+/);
    if (fields.length < 4 || !/^[0-9a-fA-F]{32}$/.test(fields[0]!)) continue;
    const scope = parseInt(fields[3]!, 16);
    if (scope === PROC_SCOPE_HOST || scope === PROC_SCOPE_LINK) continue;
    out.add(ipv6FromHex(fields[0]!));
  }
  return [...out];
}

function isIpv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** 32 hex digits → RFC 5952 text (lower case, no leading zeros, the longest run of two or more zero groups as `::`). */
export function ipv6FromHex(hex: string): string {
  const groups: number[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(hex.slice(i, i + 4), 16));
  return formatIpv6Words(groups);
}

/** One comparable key per address whatever its spelling (IPv4, IPv6, compressed or not); undefined when not an IP. */
export function addressKey(ip: string): string | undefined {
  try {
    return ipToKey(ip).toString('hex');
  } catch {
    return undefined;
  }
}
