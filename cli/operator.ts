// Dispatch of the operator commands that read the local agent's admin port: `smesh status`, `smesh config KIND`, `smesh top`.
import { SmeshError } from '../core/errors';
import { runConfig } from './config-view';
import { parseOperatorFlags } from './output';
import { runStatus } from './status';
import { runTop } from './top';

/** Runs one operator command; returns the exit code (errors are printed, never thrown). */
export async function runOperatorCommand(command: 'status' | 'config' | 'top', argv: readonly string[]): Promise<number> {
  const write = (s: string) => void process.stdout.write(s);
  try {
    const flags = parseOperatorFlags(command, argv);
    switch (command) {
      case 'status':
        return await runStatus(flags.admin, flags.output, write);
      case 'config':
        return await runConfig(flags.admin, flags.positional[0], flags.output, write);
      case 'top': {
        let onSignal: () => void = () => undefined;
        const stopped = new Promise<void>((r) => (onSignal = r));
        process.once('SIGINT', onSignal);
        try {
          return await runTop({ ...flags, write, tty: process.stdout.isTTY === true, stopped });
        } finally {
          process.removeListener('SIGINT', onSignal);
        }
      }
    }
  } catch (e) {
    process.stderr.write(`smesh ${command}: ${e instanceof SmeshError ? e.message : ((e as Error).stack ?? String(e))}\n`);
    return e instanceof SmeshError && e.code === 'SMESH_ERR_CONFIG' ? 2 : 1;
  }
}
