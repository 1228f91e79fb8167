// The contract between the control plane and a configuration source (files, Kubernetes): snapshots in, errors reported.
import type { MeshSnapshot } from '../../core/model/types';

export interface SourceEvents {
  /** A new complete, valid snapshot (never half a change). */
  onSnapshot(snapshot: MeshSnapshot): void;
  /** A change that was rejected or a failure talking to the source; the previous snapshot stays. */
  onError?(err: Error): void;
}

export interface MeshSource {
  /** "files" or "kubernetes": label for logs and metrics. */
  readonly kind: string;
  /** Loads the initial state and starts watching; resolves with the first snapshot, rejects if there is none. */
  start(events: SourceEvents): Promise<MeshSnapshot>;
  /** Stops watching; releases timers, watchers and connections. */
  close(): Promise<void>;
}
