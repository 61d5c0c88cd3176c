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
  /** Rows copied to their new owner (and reference rows copied to a new shard). */
  rowsCopied: number;
  /** Rows read from the sources' snapshots so far, of rowsTotal. */
  rowsScanned: number;
  rowsTotal: number;
  rowsCleaned: number;
  /** Longest and last cut-over pause, ms. */
  pauseMs: number | null;
  cutoverAttempts: number;
  startedAt: string;
  /** The instance running it (with several instances sharing a metadata store, only it moves rows). */
  owner?: string;
  /**
   * A roll-back or clean-up that failed part-way (a shard out of reach): retried every few seconds and at
   * start, from the phase it was in, until it succeeds; no other rebalance starts meanwhile.
   */
  pending?: { action: 'rollback' | 'cleanup'; phase: RebalancePhase; outcome: 'failed' | 'cancelled'; error: string | null };
  /** Set by any instance's cancel request; the owner rolls back when it sees it. */
  cancelRequested?: boolean;
  finishedAt: string | null;
  error: string | null;
  /**
   * What the rebalance created on the shard it adds (recorded before the transaction creating it
   * commits), so that a roll-back, even after a crash, drops exactly that. `xid` is that transaction's
   * id: an object whose catalog row it did not write was not created by the rebalance and stays.
   */
  created?: ObjectsCreated;
}

export interface ObjectsCreated {
  xid: string;
  /** Names as in the catalog's `schema.name` form (`name` alone in public). */
  tables: string[];
  sequences: string[];
  schemas: string[];
}

export interface TopologyState {
  /** The ring's version: grows when the shard list changes. */
  version: number;
  /** Grows with every write of the state (a rebalance's progress too): writes are compare-and-set on it. */
  rev: number;
  vnodes: number;
  shards: ShardConfig[];
  rebalance: RebalanceRecord | null;
}
