// LogHub: component loggers redact key material; the access log shares the destination and the level, without the redaction pass.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LogHub } from '../../../../core/telemetry/logger';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('LogHub', () => {
  it('component loggers censor key fields; access lines keep their fields, level and base', () => {
    const out = capture();
    const hub = new LogHub({ destination: out.stream as never, base: { node: 'n1' } });
    hub.child('identity').info({ keyPem: '-----BEGIN PRIVATE KEY-----', cert: { keyPem: 'secret' }, spiffeId: 'spiffe://td/ns/a/sa/b' }, 'issued');
    hub.access().info({ 'src.addr': '10.0.0.1:1234', bytes_recv: 5 }, 'connection complete');
    const [issued, access] = out.lines();
    expect(issued).toMatchObject({ node: 'n1', component: 'identity', keyPem: '[redacted]', cert: { keyPem: '[redacted]' }, spiffeId: 'spiffe://td/ns/a/sa/b' });
    expect(JSON.stringify(issued)).not.toContain('secret');
    expect(access).toMatchObject({ node: 'n1', component: 'access', level: 'info', 'src.addr': '10.0.0.1:1234', bytes_recv: 5, msg: 'connection complete' });
  });

  it('setLevel applies to the access log too', () => {
    const out = capture();
    const hub = new LogHub({ destination: out.stream as never });
    const access = hub.access();
    hub.setLevel('warn');
    access.info({}, 'hidden');
    hub.setLevel('info');
    access.info({}, 'shown');
    expect(out.lines().map((l) => l.msg)).toEqual(['shown']);
  });
});
