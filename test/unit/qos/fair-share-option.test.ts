// `smesh agent --fair-share on|off`: the flag the noisy-neighbour benchmark toggles (default on), listed in the usage, a bad value refused by name.
import { describe, expect, it } from 'vitest';
import { AGENT_USAGE, parseAgentArgs } from '../../../agent/config/options';

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
