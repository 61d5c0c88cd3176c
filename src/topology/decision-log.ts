/**
 * Two-phase commit decisions kept in the metadata database, next to the topology, so that they outlive
 * the machine an instance ran on: an instance restarted anywhere with the same `transactions.instance_id`
 * finishes what it decided. Only this instance writes its own rows, so they are also held in memory
 * (recovery asks many times a second what was decided).
 */
import type { DecisionLog } from '../execute/txlog.js';
import type { PgTopologyStore } from './pg-store.js';

export class PgDecisionLog implements DecisionLog {
  private constructor(
    private readonly store: PgTopologyStore,
    private readonly instance: string,
    private readonly decided: Map<string, string[]>,
  ) {}

  static async open(store: PgTopologyStore, instance: string): Promise<PgDecisionLog> {
    const r = await store.conn.query<{ gid: string; shards: string[] }>(`SELECT gid, shards FROM ${store.tables.decisions} WHERE instance = $1`, [instance]);
    return new PgDecisionLog(store, instance, new Map(r.rows.map((x) => [x.gid, x.shards])));
  }

  pending(): Map<string, string[]> {
    return new Map(this.decided);
  }

  isDecided(gid: string): boolean {
    return this.decided.has(gid);
  }

  /** Durable once the metadata database committed the row (keep synchronous_commit on there). */
  async recordCommit(gid: string, shards: string[]): Promise<void> {
    await this.store.conn.query(`INSERT INTO ${this.store.tables.decisions} (gid, instance, shards) VALUES ($1, $2, $3)`, [gid, this.instance, shards]);
    this.decided.set(gid, shards);
  }

  /** Forgetting is not urgent: a row left behind is dropped by the next recovery pass that finds nothing prepared. */
  markDone(gid: string): void {
    if (!this.decided.delete(gid)) return;
    this.store.conn.query(`DELETE FROM ${this.store.tables.decisions} WHERE gid = $1`, [gid]).catch(() => undefined);
  }

  close(): void {}
}
