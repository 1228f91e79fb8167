// Parsing a namespace's local addresses from /proc/<pid>/net/fib_trie and if_inet6, on text captured from a real netns (kernel 6.18).
import { describe, expect, it } from 'vitest';
import { addressKey, ipv6FromHex, parseFibTrieLocal, parseIfInet6 } from '../../../../agent/discovery/proc-net';

// `ip netns add X; ip -n X link add v0 type veth peer name v1; 198.18.77.5/24 on v0, 198.18.77.9/32 on v1,
// fd00:5::5/64 on v0 (nodad)`, then `cat /proc/<pid of a process in X>/net/fib_trie` and `.../if_inet6`.
const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 2 0 2
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 198.18.77.0/24 2 0 2
        +-- 198.18.77.0/28 2 0 1
           |-- 198.18.77.0
              /24 link UNICAST
           |-- 198.18.77.5
              /32 host LOCAL
           |-- 198.18.77.9
              /32 host LOCAL
        |-- 198.18.77.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 2 0 2
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 198.18.77.0/24 2 0 2
        +-- 198.18.77.0/28 2 0 1
           |-- 198.18.77.0
              /24 link UNICAST
           |-- 198.18.77.5
              /32 host LOCAL
           |-- 198.18.77.9
              /32 host LOCAL
        |-- 198.18.77.255
           /32 link BROADCAST
`;

const IF_INET6 = `00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000018cb54fffe0244fa 03 40 20 80       v0
fd000005000000000000000000000005 03 40 00 82       v0
fe800000000000004cb6f3fffee741ff 02 40 20 c0       v1
`;

// A fresh namespace with only lo up (captured the same way): nothing but loopback.
const FIB_TRIE_LO_ONLY = `Main:
  +-- 127.0.0.0/8 2 0 2
     +-- 127.0.0.0/31 1 0 0
        |-- 127.0.0.0
           /8 host LOCAL
        |-- 127.0.0.1
           /32 host LOCAL
     |-- 127.255.255.255
        /32 link BROADCAST
Local:
  +-- 127.0.0.0/8 2 0 2
     +-- 127.0.0.0/31 1 0 0
        |-- 127.0.0.0
           /8 host LOCAL
        |-- 127.0.0.1
           /32 host LOCAL
     |-- 127.255.255.255
        /32 link BROADCAST
`;

describe('fib_trie', () => {
  it('returns each /32 host LOCAL address once, without loopback, network or broadcast entries', () => {
    expect(parseFibTrieLocal(FIB_TRIE)).toEqual(['198.18.77.5', '198.18.77.9']);
  });

  it('a namespace with only loopback has no addresses', () => {
    expect(parseFibTrieLocal(FIB_TRIE_LO_ONLY)).toEqual([]);
    expect(parseFibTrieLocal('')).toEqual([]);
  });

  it('a leaf with several entries counts when one of them is /32 host LOCAL', () => {
    const text = `Local:
  +-- 198.18.0.0/16 2 0 2
     |-- 198.18.4.0
        /24 link UNICAST
        /32 host LOCAL
     |-- 198.18.4.255
        /32 link BROADCAST
`;
    expect(parseFibTrieLocal(text)).toEqual(['198.18.4.0']);
  });

  it('an entry line after a "+--" node is not attributed to the previous leaf', () => {
    const text = `Local:
  +-- 198.18.0.0/16 2 0 2
     |-- 198.18.4.1
        /24 link UNICAST
     +-- 198.18.5.0/24 1 0 0
        /32 host LOCAL
`;
    expect(parseFibTrieLocal(text)).toEqual([]);
  });

  it('ignores garbage lines and leaves that are not IPv4 addresses', () => {
    expect(parseFibTrieLocal('|-- 999.1.2.3\n   /32 host LOCAL\n|-- not-an-ip\n   /32 host LOCAL\nrandom text\n')).toEqual([]);
  });
});

describe('if_inet6', () => {
  it('keeps global and ULA addresses, drops loopback and link-local', () => {
    expect(parseIfInet6(IF_INET6)).toEqual(['fd00:5::5']);
  });

  it('keeps a global address and tolerates malformed lines', () => {
    expect(parseIfInet6('20010002000000000000000000000007 04 40 00 80 eth0\nshort line\nzz 01 02 03\n')).toEqual(['2001:2::7']);
  });

  it('formats addresses as RFC 5952 text', () => {
    expect(ipv6FromHex('00000000000000000000000000000001')).toBe('::1');
    expect(ipv6FromHex('20010db8000000000001000000000001')).toBe('2001:db8::1:0:0:1');
    expect(ipv6FromHex('20010db8000100010001000100010001')).toBe('2001:db8:1:1:1:1:1:1');
    expect(ipv6FromHex('20010db8000000010000000000000000')).toBe('2001:db8:0:1::');
    expect(ipv6FromHex('00000000000000000000000000000000')).toBe('::');
    expect(ipv6FromHex('20010db800000001000000000000abcd')).toBe('2001:db8:0:1::abcd');
  });

  it('address keys compare spellings of one address as equal', () => {
    expect(addressKey('2001:2:0:0::7')).toBe(addressKey('2001:2::7'));
    expect(addressKey('2001:0002::0007')).toBe(addressKey(ipv6FromHex('20010002000000000000000000000007')));
    expect(addressKey('198.18.1.10')).not.toBe(addressKey('198.18.1.11'));
    expect(addressKey('not-an-ip')).toBeUndefined();
  });
});
