// The control plane's single writer of served state: snapshot → per-node resource sets, with the diff of each update pushed to listeners.
import type { MeshSnapshot } from '../core/model/types';
import { XDS_TYPE_URL } from '../core/xds/contract';
import { buildResourceSets, diffResourceSets, type ResourceDiff, type ResourceEntry, ResourceEntryCache, type ResourceSets, type TypedResources } from './xds-resources';

export type RegistryListener = (diff: ResourceDiff, generation: number) => void;

const EMPTY: TypedResources = new Map();

/**
 * Holds the current snapshot and its resources. `update` replaces both atomically and tells every
 * listener (one per ADS stream) which names changed, so a push touches only those names.
 */
export class Registry {
  private sets: ResourceSets | undefined;
  private current: MeshSnapshot | undefined;
  private anchors: readonly string[];
  private readonly listeners = new Set<RegistryListener>();
  private gen = 0;
  /** Encoded entries of the last build: a rebuild re-encodes only resources whose inputs changed. */
  private readonly cache = new ResourceEntryCache();

  constructor(opts: { trustAnchors?: readonly string[] } = {}) {
    this.anchors = opts.trustAnchors ?? [];
  }

  /** The snapshot being served (undefined before the first update). */
  get snapshot(): MeshSnapshot | undefined {
    return this.current;
  }

  /** Bumped on every update that changed at least one resource. */
  get generation(): number {
    return this.gen;
  }

  get trustAnchors(): readonly string[] {
    return this.anchors;
  }

  /** Replaces the served snapshot; returns the diff (empty when nothing on the wire changed). */
  update(snapshot: MeshSnapshot): ResourceDiff {
    this.current = snapshot;
    return this.rebuild();
  }

  /** Replaces the published trust anchors (root rotation); re-pushes MeshConfig if it changed. */
  setTrustAnchors(anchors: readonly string[]): ResourceDiff {
    this.anchors = [...anchors];
    return this.rebuild();
  }

  private rebuild(): ResourceDiff {
    if (!this.current) return new Map();
    const next = buildResourceSets(this.current, { trustAnchors: this.anchors }, this.cache, this.sets);
    const diff = diffResourceSets(this.sets, next);
    this.sets = next;
    if (diff.size > 0) {
      this.gen++;
      for (const l of this.listeners) l(diff, this.gen);
    }
    return diff;
  }

  /** The resources of one type that `node` may see (LocalWorkload: only that node's). */
  resources(node: string, typeUrl: string): TypedResources {
    if (!this.sets) return EMPTY;
    if (typeUrl === XDS_TYPE_URL.localWorkload) return this.sets.localByNode.get(node) ?? EMPTY;
    return this.sets.shared.get(typeUrl) ?? EMPTY;
  }

  get(node: string, typeUrl: string, name: string): ResourceEntry | undefined {
    return this.resources(node, typeUrl).get(name);
  }

  /** Subscribes to diffs; returns the unsubscribe function. */
  onChange(listener: RegistryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
