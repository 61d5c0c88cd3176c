/**
 * What the topology store holds: the shard list (the ring is derived from it and `vnodes`), a version
 * that grows with every change, and the state of a running rebalance, persisted step by step.
 */
import type { ShardConfig } from '../config/schema.js';

export type RebalancePhase = 'planning' | 'schema' | 'copying' | 'catching_up' | 'cutting_over' | 'cleaning' | 'done' | 'failed' | 'cancelled';

export interface RebalanceRecord {
  id: string;
  kind: 'add' | 'remove';
  /** The shard added or removed. */
  shard: string;
  phase: RebalancePhase;
  /** The shards of the ring that routes while the rebalance runs, and of the ring it moves to. */
  from: ShardConfig[];
  to: ShardConfig[];
  /** Per source shard: its replication slot and publication (created in `copying`, dropped in `cleaning`). */
  sources: { shard: string; slot: string; publication: string }[];
  rowsCopied: number;
  rowsTotal: number;
  rowsCleaned: number;
  /** Longest and last cut-over pause, ms. */
  pauseMs: number | null;
  cutoverAttempts: number;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
}

export interface TopologyState {
  version: number;
  vnodes: number;
  shards: ShardConfig[];
  rebalance: RebalanceRecord | null;
}
