// Leftover sweeper for a bench or demo run: a detached shell that waits for the runner process to end and then removes what the run's topology left (cgroups and their processes, network namespaces, bpffs pins, temp dirs) — for when the runner is killed in the middle of its own cleanup (tsx's launcher SIGKILLs a child that does not answer Ctrl-C within ~60 ms, and the harness's cleanup is synchronous).
import { spawn } from 'node:child_process';
import { BPFFS_ROOT, CGROUP2_ROOT, NETNS_DIR, PREFIX } from './topology';
import { SmeshError } from '../../core/errors';

/** The sweeper gives up waiting after this long (the longest bench run is well under it). */
const MAX_WAIT_S = 4 * 3600;

// $1 pid to wait for, $2 stem `smesh-test-<runId>`, $3 runId. Only names starting with the stem are touched.
const SCRIPT = `
pid=$1; stem=$2; run=$3
end=$(( $(date +%s) + ${MAX_WAIT_S} ))
while kill -0 "$pid" 2>/dev/null; do
  [ "$(date +%s)" -lt "$end" ] || exit 0
  sleep 0.5
done
cg="${CGROUP2_ROOT}/$stem"
if [ -d "$cg" ]; then
  for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    [ -z "$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
    echo 1 > "$cg/cgroup.kill" 2>/dev/null
    sleep 0.1
  done
  find "$cg" -depth -type d -exec rmdir {} \\; 2>/dev/null
fi
for ns in $(ls "${NETNS_DIR}" 2>/dev/null | grep "^$stem-" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-); do
  ip netns del "$ns" 2>/dev/null
done
rm -rf "${BPFFS_ROOT}/$stem"-* /tmp/"$stem"-*
rm -f "/run/${PREFIX}-owners/$run"
`;

/**
 * Starts the sweeper for run `runId` (the topology's `runId`) of this process; it outlives the bench (own session, not
 * in the bench's process group, so Ctrl-C does not reach it) and exits once it has swept, or at once if nothing is left.
 */
export function startSweeper(runId: string): void {
  if (!/^[a-z0-9]+$/.test(runId)) throw new SmeshError('SMESH_ERR_CONFIG', `bench sweeper: run id '${runId}' is not lower-case letters and digits`);
  const child = spawn('sh', ['-c', SCRIPT, 'sh', String(process.pid), `${PREFIX}-${runId}`, runId], { detached: true, stdio: 'ignore' });
  child.unref();
}
