/**
 * The live topology of one pgshard instance: the shard list and the ring built from it, with the version
 * number and the rebalance state, persisted in the topology store before anyone is told of a change. The
 * configuration's `shards` only seed the store the first time; after that the store is the truth.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config, ShardConfig } from '../config/schema.js';
import { HashRing } from '../routing/ring.js';
import { FileTopologyStore } from './store.js';
import { shardPassword } from '../config/secrets.js';
import type { RebalanceRecord, TopologyState } from './types.js';

export type TopologyListener = (next: TopologyState, ring: HashRing, prev: TopologyState) => void;

export class Topology {
  private listeners: TopologyListener[] = [];
  private ringValue: HashRing;

  private constructor(
    private readonly store: FileTopologyStore,
    private value: TopologyState,
  ) {
    this.ringValue = ringOf(value);
  }

  /** Loads the store, seeding it from the configuration when it is empty. */
  static open(cfg: Config, instance: string): Topology {
    const store = new FileTopologyStore(topologyFile(cfg, instance));
    const loaded = store.load();
    if (loaded) {
      // The store decides which shards exist and their weights (the ring); how to reach a shard the
      // configuration lists (address, credentials, TLS) stays the configuration's, so editing it still works.
      const fresh = withSecrets(withConnectionsFrom(loaded, cfg.shards));
      if (fresh !== loaded) store.save(fresh);
      return new Topology(store, fresh);
    }
    const seed: TopologyState = { version: 1, vnodes: cfg.ring.vnodes, shards: cfg.shards.map((s) => ({ ...s })), rebalance: null };
    store.save(seed);
    return new Topology(store, seed);
  }

  get file(): string {
    return this.store.file;
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
  setShards(shards: ShardConfig[], rebalance: RebalanceRecord | null): void {
    this.commit({ version: this.value.version + 1, vnodes: this.value.vnodes, shards: shards.map((s) => ({ ...s })), rebalance });
  }

  /** Persists a new rebalance state (the ring does not change). */
  setRebalance(rebalance: RebalanceRecord | null): void {
    this.commit({ ...this.value, rebalance });
  }

  private commit(next: TopologyState): void {
    this.store.save(next);
    const prev = this.value;
    this.value = next;
    if (next.shards !== prev.shards) this.ringValue = ringOf(next);
    for (const fn of this.listeners) fn(next, this.ringValue, prev);
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
export function topologyFile(cfg: Config, instance: string): string {
  if (cfg.topology?.file) return path.resolve(cfg.topology.file);
  const seed = createHash('sha256')
    .update(JSON.stringify(cfg.shards.map((s) => [s.id, s.host, s.port, s.database])))
    .digest('hex')
    .slice(0, 12);
  return path.resolve('.pgshard', `topology-${instance}-${seed}.json`);
}
