// The header lists policy matches: every value of a repeated header, names lower-cased, pseudo-headers left out.
import { describe, expect, it } from 'vitest';
import { headerLists } from '../../../../agent/http/policy-headers';
import { evaluate } from '../../../../core/policy/evaluate';
import { convertAuthorizationPolicy } from '../../../../control/config/authorization';

describe('headerLists', () => {
  it('keeps every value in order, lower-cases names, drops pseudo-headers', () => {
    expect(headerLists([':method', 'GET', ':path', '/', 'User-Agent', 'ok', 'x-a', '1', 'user-agent', 'evil', 'X-A', '2'])).toEqual({ 'user-agent': ['ok', 'evil'], 'x-a': ['1', '2'] });
    expect(headerLists([])).toEqual({});
  });

  it('a repeated header matches as Envoy joins it: values with ","', () => {
    const { policy } = convertAuthorizationPolicy('p', 'default', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[user-agent]', values: ['*evil'] }] }] });
    const req = (headers: Record<string, string[]>) => ({ destinationIp: '10.0.0.1', destinationPort: 80, http: { method: 'GET', path: '/', host: 'h', headers } });
    expect(evaluate([policy!], req(headerLists(['user-agent', 'ok', 'user-agent', 'evil']))).allow).toBe(false);
    expect(evaluate([policy!], req(headerLists(['user-agent', 'ok']))).allow).toBe(true);
  });
});
