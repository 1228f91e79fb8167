// Guards where programs may attach: a cgroup v2 directory that exists and is not the root of a cgroup2 mount.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { SmeshError } from '../../core/errors';

/** Mount points of cgroup2 file systems on this machine. */
export function cgroup2Mounts(mountsText = readFileSync('/proc/mounts', 'utf8')): string[] {
  return mountsText
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup2')
    .map((f) => f[1]);
}

/**
 * Returns the canonical path of `path` after checking that it is a directory inside a cgroup2 mount and not the
 * mount's root: attaching there would redirect every process on the machine, the agent's own host included.
 */
export function checkCgroupRoot(path: string): string {
  let real: string;
  try {
    real = realpathSync(path);
    if (!statSync(real).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new SmeshError('SMESH_ERR_CONFIG', `--cgroup-root ${path}: not an existing cgroup directory (${(err as Error).message})`, { cause: err });
  }
  const mounts = cgroup2Mounts();
  if (mounts.includes(real)) {
    throw new SmeshError('SMESH_ERR_CONFIG', `--cgroup-root ${path} is the root of the cgroup2 hierarchy; give the pods' cgroup (e.g. kubepods) so that host processes are never redirected`);
  }
  if (!mounts.some((m) => real.startsWith(m + '/'))) {
    throw new SmeshError('SMESH_ERR_CONFIG', `--cgroup-root ${path} is not inside a cgroup2 mount (${mounts.join(', ') || 'none mounted'})`);
  }
  return real;
}
