// `smesh agent --fair-share on|off`: the flag the noisy-neighbour benchmark toggles (default on), listed in the usage, a bad value refused by name.
import { describe, expect, it } from 'vitest';
import { AGENT_USAGE, parseAgentArgs } from '../../../../agent/config/options';

const base = ['--standalone', '--config', '/tmp/x', '--node', 'n1', '--no-bpf'];

describe('--fair-share', () => {
  it('defaults to on; takes on and off, and SMESH_FAIR_SHARE', () => {
    expect(parseAgentArgs(base, {}).fairShare).toBe(true);
    expect(parseAgentArgs([...base, '--fair-share', 'off'], {}).fairShare).toBe(false);
    expect(parseAgentArgs([...base, '--fair-share', 'on'], {}).fairShare).toBe(true);
    expect(parseAgentArgs(base, { SMESH_FAIR_SHARE: 'off' }).fairShare).toBe(false);
  });

  it('is listed in the usage and refuses another value naming the flag', () => {
    expect(AGENT_USAGE).toMatch(/--fair-share on\|off/);
    expect(() => parseAgentArgs([...base, '--fair-share', 'yes'], {})).toThrow(/--fair-share "yes": expected on .* or off/);
  });
});

describe('--relay-turn-kib', () => {
  it('is unset by default (the engine keeps 256 KiB); takes 16-16384 and SMESH_RELAY_TURN_KIB', () => {
    expect(parseAgentArgs(base, {}).relayTurnKib).toBeUndefined();
    expect(parseAgentArgs([...base, '--relay-turn-kib', '64'], {}).relayTurnKib).toBe(64);
    expect(parseAgentArgs(base, { SMESH_RELAY_TURN_KIB: '32' }).relayTurnKib).toBe(32);
    expect(AGENT_USAGE).toMatch(/--relay-turn-kib N/);
  });

  it('refuses a value outside 16-16384 naming the flag', () => {
    expect(() => parseAgentArgs([...base, '--relay-turn-kib', '8'], {})).toThrow(/--relay-turn-kib 8: expected 16-16384/);
    expect(() => parseAgentArgs([...base, '--relay-turn-kib', '20000'], {})).toThrow(/--relay-turn-kib 20000/);
  });
});

describe('--worker-nice', () => {
  it('takes -20..19 (negative too) and SMESH_WORKER_NICE; unset by default', () => {
    expect(parseAgentArgs(base, {}).workerNice).toBeUndefined();
    expect(parseAgentArgs([...base, '--worker-nice', '-10'], {}).workerNice).toBe(-10);
    expect(parseAgentArgs(base, { SMESH_WORKER_NICE: '5' }).workerNice).toBe(5);
  });
  it('refuses anything else naming the flag', () => {
    expect(() => parseAgentArgs([...base, '--worker-nice', '-30'], {})).toThrow(/--worker-nice "-30": expected a nice value -20..19/);
    expect(() => parseAgentArgs([...base, '--worker-nice', 'high'], {})).toThrow(/--worker-nice "high"/);
  });
});

describe('--workers default', () => {
  it('one native engine worker per core the agent may use (capped at 64); --workers wins', async () => {
    const { engineWorkers } = await import('../../../../agent/main');
    expect(engineWorkers(undefined, 2)).toBe(2);
    expect(engineWorkers(undefined, 1)).toBe(1);
    expect(engineWorkers(undefined, 128)).toBe(64);
    expect(engineWorkers(3, 2)).toBe(3);
  });
});
