// Address text helpers of core/net/addr.ts that the xDS decoder uses for every workload.
import { describe, expect, it } from 'vitest';
import { ipToKey, ipv4Text, keyToIp } from '../../../../core/net/addr';

describe('ipv4Text', () => {
  it('formats any four octets like the dotted-quad literal, and round-trips through the map key form', () => {
    let seed = 7;
    const octet = () => (seed = (seed * 1103515245 + 12345) >>> 0) % 256;
    const cases = [
      [0, 0, 0, 0],
      [255, 255, 255, 255],
      [10, 0, 0, 1],
      [198, 18, 45, 123],
      [1, 22, 100, 9],
    ];
    for (let i = 0; i < 5000; i++) cases.push([octet(), octet(), octet(), octet()]);
    for (const [a, b, c, d] of cases) {
      const text = ipv4Text(a!, b!, c!, d!);
      expect(text).toBe(`${a}.${b}.${c}.${d}`);
      expect(keyToIp(ipToKey(text))).toBe(text);
    }
  });
});
