// The `smesh` command line, composing agent and control plane (neither imports the other): `smesh agent …` (standalone: with an embedded control plane), `smesh supervise …` (the agent container's PID 1), `smesh control …`, `smesh check DIR`.
import { AGENT_USAGE, parseAgentArgs } from '../agent/config/options';
import { SmeshError } from '../core/errors';
import { packageVersion } from '../core/version';

const USAGE = `usage: smesh <command> [options]
commands:
  agent     run the node agent (see smesh agent --help)
  supervise AGENT-OPTIONS  the agent container's entry point (PID 1): holds the agent's listening sockets
            and runs \`smesh agent AGENT-OPTIONS\` with them, restarting it at once when it dies;
            SIGHUP starts a new agent and drains the old one; SIGTERM drains and exits
  control   run the control plane: delta xDS and the mesh CA (see smesh control --help)
  check DIR validate a mesh config directory; prints every problem with file, resource and field
  status    the node agent at a glance: readiness, BPF links, enrolled pods, control plane, certificates, warnings
  config workloads|services|policies|certificates   the agent's view of the mesh
  top       connections, requests and bytes per workload pair, refreshed (--once: one sample)
            status, config and top read the agent's admin port: --admin HOST:PORT (default 127.0.0.1:15000),
            -o table|json|yaml
  version   print the version`;

function out(text: string): void {
  process.stdout.write(text + '\n');
}

function err(text: string): void {
  process.stderr.write(text + '\n');
}

export async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent': {
      if (rest.includes('--help') || rest.includes('-h')) {
        out(AGENT_USAGE);
        return;
      }
      try {
        const opts = parseAgentArgs(rest);
        // Loaded lazily so that `smesh check` works on machines without the native addon.
        const { runAgent } = await import('../agent/main');
        const { embeddedControlPlane } = await import('./standalone');
        await runAgent(opts, embeddedControlPlane);
      } catch (e) {
        err(`smesh agent: ${e instanceof SmeshError ? e.message : ((e as Error).stack ?? String(e))}`);
        process.exitCode = 1;
        // The agent may have started timers or listeners before failing; exit so a half-started agent never lingers.
        setImmediate(() => process.exit(1));
      }
      return;
    }
    case 'supervise': {
      if (rest.includes('--help') || rest.includes('-h')) {
        out(`usage: smesh supervise AGENT-OPTIONS (the options of smesh agent)\n${AGENT_USAGE}`);
        return;
      }
      try {
        const { runSupervisor } = await import('./supervisor');
        // The agent is started through the same entry script as this process (bin/smesh applies the agent's heap tuning).
        process.exitCode = await runSupervisor(rest, process.argv[1]);
      } catch (e) {
        err(`smesh supervise: ${e instanceof SmeshError ? e.message : ((e as Error).stack ?? String(e))}`);
        process.exitCode = 1;
      }
      setImmediate(() => process.exit());
      return;
    }
    case 'control': {
      try {
        const { runControl } = await import('../control/main');
        process.exitCode = await runControl(rest);
      } catch (e) {
        err(`smesh control: ${e instanceof SmeshError ? e.message : ((e as Error).stack ?? String(e))}`);
        process.exitCode = 1;
        setImmediate(() => process.exit(1));
      }
      return;
    }
    case 'check': {
      const dir = rest[0];
      if (!dir) {
        err('usage: smesh check DIR');
        process.exitCode = 2;
        return;
      }
      // Loaded here only: the YAML parser and config validation are not part of a running agent's memory.
      const { ConfigError, formatProblem, loadConfigDir } = await import('../control/config/config-dir');
      try {
        const s = loadConfigDir(dir);
        out(`${dir}: ok (${s.nodes.size} nodes, ${s.workloads.size} workloads, ${s.services.size} services, trust domain ${s.trustDomain})`);
      } catch (e) {
        if (e instanceof ConfigError) {
          for (const p of e.problems) err(formatProblem(p));
          err(`${dir}: ${e.problems.length} problem(s)`);
        } else err(`${dir}: ${(e as Error).message}`);
        process.exitCode = 1;
      }
      return;
    }
    case 'status':
    case 'config':
    case 'top': {
      const { runOperatorCommand } = await import('./operator');
      process.exitCode = await runOperatorCommand(command, rest);
      return;
    }
    case 'version':
    case '--version':
      out(packageVersion());
      return;
    default:
      err(USAGE);
      process.exitCode = command === undefined || command === '--help' || command === '-h' ? 0 : 2;
  }
}

if (require.main === module) void main(process.argv.slice(2));
