// `smesh supervise`: the agent container's PID 1. Holds the agent's listening sockets and starts the agent with them (systemd-style LISTEN_FDS), restarts it at once when it dies and starts a successor when it drains (SIGTERM to the agent) or on SIGHUP, so connections wait in the kernel's backlog instead of being refused.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { LISTENER_NAMES, listenerAddresses, parseAgentArgs, supervisedAgentEnv, type AgentOptions, type ListenerName } from '../agent/config/options';
import { SmeshError } from '../core/errors';
import { reusePortSocket } from '../agent/native/datapath';
import { LogHub } from '../core/telemetry/logger';

/** A socket bound here and never listened on here: agents listen on it (fd passed), this process never accepts. */
interface HeldSocket {
  readonly name: ListenerName;
  readonly fd: number;
  close(): void;
}

/**
 * Binds every agent socket with SO_REUSEADDR + SO_REUSEPORT and without listening, so that only agents accept (as
 * node's cluster primary binds for its workers). The first agent's listen() makes it a listener; it stays one while
 * this process holds the fd, across agent restarts. SO_REUSEPORT lets a second supervisor (the surge pod of a DaemonSet
 * rollout, same uid, same host network) bind the same addresses while this one's agent still listens: the kernel then
 * spreads new connections over both pods' listeners, and when the old pod's listener closes, connections still
 * queued on it move to the new one (net.ipv4.tcp_migrate_req, see enableRequestMigration). Sockets this process
 * inherited itself (systemd) are passed on instead of bound.
 */
export function bindHeldSockets(opts: AgentOptions, bind: (host: string, port: number) => number = reusePortSocket): HeldSocket[] {
  const addresses = listenerAddresses(opts);
  const held: HeldSocket[] = [];
  try {
    for (const name of LISTENER_NAMES) {
      const inherited = opts.inheritedListeners.find((l) => l.name === name);
      if (inherited) {
        held.push({ name, fd: inherited.fd, close: () => undefined });
        continue;
      }
      const address = addresses[name];
      if (!address) continue; // outbound6 without --capture-ip6
      const { host, port } = address;
      let fd: number;
      try {
        fd = bind(host, port);
      } catch (err) {
        const code = ((err as SmeshError).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as NodeJS.ErrnoException).code;
        const hint =
          code === 'EADDRINUSE'
            ? 'held without SO_REUSEPORT or by another uid: an agent older than the cross-pod hand-over, or another program on the port'
            : name === 'outbound' || name === 'outbound6'
              ? 'is the capture address configured on lo?'
              : 'is the address local to this node?';
        throw new SmeshError('SMESH_ERR_BIND', `smesh supervise: cannot bind the ${name} socket ${host}:${port}: ${code ?? (err as Error).message} (${hint})`, { cause: err });
      }
      let open = true;
      held.push({
        name,
        fd,
        close: () => {
          if (!open) return;
          open = false;
          try {
            fs.closeSync(fd);
          } catch {
            // already closed
          }
        },
      });
    }
  } catch (err) {
    for (const h of held) h.close();
    throw err;
  }
  return held;
}

export const TCP_MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

/**
 * Sets net.ipv4.tcp_migrate_req=1 in this process's network namespace (the host's, for a hostNetwork pod; Linux >= 5.14):
 * when a listener of a SO_REUSEPORT group closes, the connections in its accept queue and its half-open ones move to
 * another listener of the group instead of being reset — the old agent pod's queue goes to the new pod's. A container's
 * /proc/sys is read-only: with hostPID the host's own /proc (through /proc/1/root, needs SYS_PTRACE) is tried next; the
 * value is per network namespace and taken from the writer's, so it still lands in this one. Returns what happened.
 */
export function enableRequestMigration(paths: readonly string[] = [TCP_MIGRATE_REQ, `/proc/1/root${TCP_MIGRATE_REQ}`]): { enabled: boolean; via?: string; error?: string } {
  const errors: string[] = [];
  for (const file of paths) {
    try {
      if (fs.readFileSync(file, 'utf8').trim() === '1') return { enabled: true, via: file };
      fs.writeFileSync(file, '1\n');
      if (fs.readFileSync(file, 'utf8').trim() === '1') return { enabled: true, via: file };
      errors.push(`${file}: still not 1 after writing it`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      errors.push(`${file}: ${e.code ?? e.message}`);
      if (e.code === 'ENOENT' && file === paths[0]) break; // kernel older than 5.14: no such sysctl anywhere
    }
  }
  return { enabled: false, error: errors.join('; ') };
}

/** Restart delays after agents that failed within QUICK_FAILURE_MS of their start: 0.1 s doubling to 5 s. */
const QUICK_FAILURE_MS = 10_000;
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;

export function restartDelayMs(quickFailures: number): number {
  if (quickFailures <= 0) return 0; // an agent that ran a while is replaced at once: connections are queueing
  return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (quickFailures - 1));
}

interface Agent {
  readonly proc: ChildProcess;
  readonly startedAt: number;
  ready: boolean;
}

/**
 * Runs the supervisor until SIGTERM/SIGINT: argv are the agent's options (validated here, so a bad flag fails before
 * anything is bound). `entry` is the script that runs `smesh` (the agent is started as `<entry> agent <argv>`).
 */
export async function runSupervisor(argv: readonly string[], entry: string): Promise<number> {
  const opts = parseAgentArgs(argv);
  const logs = new LogHub({ level: opts.logLevel === 'silent' ? 'silent' : 'info', base: { node: opts.nodeName } });
  const log = logs.child('supervisor');
  const migration = enableRequestMigration();
  if (migration.enabled) log.info({ via: migration.via }, "net.ipv4.tcp_migrate_req=1: connections queued on a closing listener move to another agent pod's");
  else
    log.warn(
      { err: migration.error },
      "cannot set net.ipv4.tcp_migrate_req=1 (Linux >= 5.14; a read-only /proc/sys needs hostPID + SYS_PTRACE): connections queued on the old agent pod's listeners when it exits are reset, not moved to the new pod's",
    );
  const held = bindHeldSockets(opts);
  log.info({ sockets: held.map((h) => `${h.name}=fd${h.fd}`).join(','), pid: process.pid }, 'holding the agent sockets');

  const names = held.map((h) => h.name);
  // Readiness of *this* pod: with SO_REUSEPORT a probe of :15021 may be answered by another pod's agent during a
  // surge, so the pod's probe checks a file this supervisor keeps while its current agent is ready
  // ($SMESH_READY_FILE, deploy/smesh-agent.yaml's exec probe).
  const readyFile = process.env.SMESH_READY_FILE;
  const markReady = (ready: boolean): void => {
    if (!readyFile) return;
    try {
      if (ready) fs.writeFileSync(readyFile, `${process.pid}\n`);
      else fs.rmSync(readyFile, { force: true });
    } catch (err) {
      log.warn({ file: readyFile, err: (err as Error).message }, 'cannot update the readiness file');
    }
  };
  markReady(false);
  let current: Agent | undefined;
  /** SIGHUP: the successor until it reports ready, then it becomes current and the old one drains. */
  let successor: Agent | undefined;
  const all = new Set<Agent>();
  let quickFailures = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let shuttingDown = false;
  let exitCode = 0;

  const start = (why: string): Agent => {
    const proc = spawn(process.execPath, [...process.execArgv, entry, 'agent', ...argv], {
      stdio: ['inherit', 'inherit', 'inherit', ...held.map((h) => h.fd), 'ipc'],
      env: supervisedAgentEnv(names),
    });
    const agent: Agent = { proc, startedAt: performance.now(), ready: false };
    all.add(agent);
    log.info({ agentPid: proc.pid, why }, 'agent started');
    proc.on('message', (m: unknown) => onMessage(agent, m));
    proc.on('error', (err) => log.error({ err: err.message }, 'agent could not be started'));
    proc.on('exit', (code, signal) => onExit(agent, code, signal));
    return agent;
  };

  const onMessage = (agent: Agent, m: unknown): void => {
    const kind = (m as { smesh?: unknown } | null)?.smesh;
    if (kind === 'ready') {
      agent.ready = true;
      quickFailures = 0;
      log.info({ agentPid: agent.proc.pid }, 'agent ready');
      if (agent === current) markReady(true);
      if (agent === successor) {
        successor = undefined;
        const old = current;
        current = agent;
        markReady(true);
        if (old && old.proc.exitCode === null) {
          log.info({ agentPid: old.proc.pid, successorPid: agent.proc.pid }, 'hand-over: the old agent drains');
          old.proc.kill('SIGTERM');
        }
      }
    } else if (kind === 'draining' && agent === current && !shuttingDown) {
      // The agent was told to stop by someone else (an operator, an OOM handler): it closes its listeners and drains,
      // and its successor starts now so that queued connections are accepted within a start-up, not after the drain.
      log.info({ agentPid: agent.proc.pid }, 'agent draining: starting its successor');
      markReady(false);
      current = successor ?? start('the running agent drains');
      successor = undefined;
    }
  };

  const onExit = (agent: Agent, code: number | null, signal: NodeJS.Signals | null): void => {
    all.delete(agent);
    log.info({ agentPid: agent.proc.pid, code, signal }, 'agent exited');
    if (agent === successor) successor = undefined; // a failed hand-over: the current agent keeps serving
    if (agent !== current) return maybeFinish();
    current = undefined;
    markReady(false);
    if (shuttingDown) {
      exitCode = code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1);
      return maybeFinish();
    }
    if (successor) {
      current = successor; // promote the starting successor rather than starting a third agent
      successor = undefined;
      if (current.ready) markReady(true);
      return;
    }
    const lived = performance.now() - agent.startedAt;
    quickFailures = lived < QUICK_FAILURE_MS || !agent.ready ? quickFailures + 1 : 0;
    const delay = restartDelayMs(quickFailures);
    log.warn({ delayMs: delay, quickFailures }, 'restarting the agent');
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!shuttingDown) current = start(`restart after ${signal ?? `exit code ${code}`}`);
    }, delay);
  };

  let finish: (code: number) => void = () => undefined;
  const maybeFinish = (): void => {
    if (shuttingDown && all.size === 0) finish(exitCode);
  };

  const done = new Promise<number>((resolve) => {
    finish = (code) => {
      for (const h of held) h.close();
      log.info({ code }, 'supervisor exiting');
      logs.flush();
      resolve(code);
    };
  });

  const shutdown = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      for (const a of all) a.proc.kill('SIGKILL'); // a second signal: no more waiting for drains
      return;
    }
    shuttingDown = true;
    markReady(false);
    clearTimeout(restartTimer);
    log.info({ signal, agents: all.size }, 'stopping: agents drain, no restart');
    // This node's proxy is going away: new connections are refused from now on rather than queued until the exit.
    for (const h of held) h.close();
    for (const a of all) a.proc.kill(signal);
    maybeFinish();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    if (shuttingDown || successor) return;
    if (!current) return void log.warn({}, 'SIGHUP ignored: no agent running');
    log.info({ agentPid: current.proc.pid }, 'SIGHUP: starting a new agent; the old one drains once it is ready');
    successor = start('SIGHUP hand-over');
  });

  current = start('supervisor start');
  return done;
}
