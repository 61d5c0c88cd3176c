/**
 * The live topology of one pgshard instance: the shard list and the ring built from it, with the version
 * number and the rebalance state, persisted in the topology store before anyone is told of a change. The
 * configuration's `shards` only seed the store the first time; after that the store is the truth.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config, ShardConfig } from '../config/schema.js';
import { HashRing } from '../routing/ring.js';
import { FileTopologyStore, type TopologyStore } from './store.js';
import { shardPassword } from '../config/secrets.js';
import type { RebalanceRecord, TopologyState } from './types.js';

export type TopologyListener = (next: TopologyState, ring: HashRing, prev: TopologyState) => void;

/** Another instance changed the topology in a way that makes this write wrong (HTTP 409). */
export class TopologyConflict extends Error {}

export class Topology {
  private listeners: TopologyListener[] = [];
  private ringValue: HashRing;

  private constructor(
    private readonly store: TopologyStore,
    private readonly configured: readonly ShardConfig[],
    private value: TopologyState,
  ) {
    this.ringValue = ringOf(value);
    store.watch((s) => this.adopt(s));
  }

  /** Loads the store, seeding it from the configuration when it is empty. */
  static async open(cfg: Config, store: TopologyStore): Promise<Topology> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const loaded = await store.load();
      if (loaded) {
        // The store decides which shards exist and their weights (the ring); how to reach a shard the
        // configuration lists (address, credentials, TLS) stays the configuration's, so editing it still works.
        const merged = withConnectionsFrom(loaded, cfg.shards);
        if (merged !== loaded && (await store.save({ ...merged, rev: loaded.rev + 1 }, loaded.rev))) return new Topology(store, cfg.shards, withSecrets({ ...merged, rev: loaded.rev + 1 }));
        if (merged === loaded) return new Topology(store, cfg.shards, withSecrets(loaded));
        continue; // another instance wrote meanwhile
      }
      const seed: TopologyState = { version: 1, rev: 1, vnodes: cfg.ring.vnodes, shards: cfg.shards.map((s) => ({ ...s })), rebalance: null };
      if (await store.save(seed, 0)) return new Topology(store, cfg.shards, seed);
    }
    throw new TopologyConflict(`the topology in ${store.where} kept changing while this instance started: start it again`);
  }

  /** The file, or the metadata database, that holds the topology. */
  get where(): string {
    return this.store.where;
  }
  get state(): TopologyState {
    return this.value;
  }
  get version(): number {
    return this.value.version;
  }
  get shards(): readonly ShardConfig[] {
    return this.value.shards;
  }
  get ring(): HashRing {
    return this.ringValue;
  }
  get rebalance(): RebalanceRecord | null {
    return this.value.rebalance;
  }

  onChange(fn: TopologyListener): void {
    this.listeners.push(fn);
  }

  /** Persists the shard list (a new ring) and the rebalance state together, then tells the listeners. */
  async setShards(shards: ShardConfig[], rebalance: RebalanceRecord | null): Promise<void> {
    await this.update((cur) => ({ ...cur, version: cur.version + 1, shards: shards.map((s) => ({ ...s })), rebalance }));
  }

  /** Persists a new rebalance state (the ring does not change). */
  async setRebalance(rebalance: RebalanceRecord | null): Promise<void> {
    await this.update((cur) => ({ ...cur, rebalance }));
  }

  /**
   * Writes what `next` makes of the stored state, compare-and-set on its revision: when another instance
   * wrote first, `next` is asked again with what it wrote. `next` returns null to give up (nothing written).
   * Resolves with the state written, or null.
   */
  async update(next: (cur: TopologyState) => Omit<TopologyState, 'rev'> | null): Promise<TopologyState | null> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = this.value;
      const n = next(cur);
      if (!n) return null;
      const written: TopologyState = { ...n, rev: cur.rev + 1 };
      if (await this.store.save(written, cur.rev)) {
        this.adopt(written);
        return written;
      }
      await this.refresh();
    }
    throw new TopologyConflict(`the topology in ${this.store.where} kept changing under this write: retry`);
  }

  /** Reads the store again (another instance wrote). */
  async refresh(): Promise<void> {
    const s = await this.store.load();
    if (s) this.adopt(s);
  }

  /** A state read from the store (or just written): taken when newer than the one held. */
  private adopt(stored: TopologyState): void {
    if (stored.rev <= this.value.rev) return;
    const next = withSecrets(withConnectionsFrom(stored, this.configured));
    const prev = this.value;
    this.value = next;
    if (ringKey(next) !== ringKey(prev)) this.ringValue = ringOf(next);
    for (const fn of this.listeners) fn(next, this.ringValue, prev);
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

/** Passwords the store keeps only the source of (password_env / password_file) are read again. */
function withSecrets(state: TopologyState): TopologyState {
  if (!state.shards.some((s) => s.password === undefined && (s.password_env !== undefined || s.password_file !== undefined))) return state;
  return {
    ...state,
    shards: state.shards.map((s) => {
      if (s.password !== undefined || (s.password_env === undefined && s.password_file === undefined)) return s;
      const password = shardPassword(s);
      return password === undefined ? s : { ...s, password };
    }),
  };
}

/** The state with the configuration's connection settings for the shards both list (same object when none differ). */
export function withConnectionsFrom(state: TopologyState, configured: readonly ShardConfig[]): TopologyState {
  let changed = false;
  const shards = state.shards.map((s) => {
    const c = configured.find((x) => x.id === s.id);
    if (!c) return s;
    const merged = { ...c, weight: s.weight };
    if (JSON.stringify(merged) === JSON.stringify(s)) return s;
    changed = true;
    return merged;
  });
  return changed ? { ...state, shards } : state;
}

function ringKey(s: TopologyState): string {
  return `${s.vnodes}:${s.shards.map((x) => `${x.id}*${x.weight}`).join(',')}`;
}

export function ringOf(state: Pick<TopologyState, 'shards' | 'vnodes'>): HashRing {
  return HashRing.build(
    state.shards.map((s) => ({ id: s.id, weight: s.weight })),
    state.vnodes,
  );
}

/**
 * `topology.file`, or a file under .pgshard named after the instance and the configured shards: another
 * configuration (another set of seed shards) must not pick up a topology that was seeded from a different one.
 */
export function fileStore(cfg: Config, instance: string): FileTopologyStore {
  return new FileTopologyStore(topologyFile(cfg, instance));
}

export function topologyFile(cfg: Config, instance: string): string {
  if (cfg.topology?.file) return path.resolve(cfg.topology.file);
  const seed = createHash('sha256')
    .update(JSON.stringify(cfg.shards.map((s) => [s.id, s.host, s.port, s.database])))
    .digest('hex')
    .slice(0, 12);
  return path.resolve('.pgshard', `topology-${instance}-${seed}.json`);
}
