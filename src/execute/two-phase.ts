/**
 * Committing a transaction that touched several shards. One participant that wrote: a plain COMMIT.
 * Several: PREPARE TRANSACTION on each writer, the decision made durable in the transaction log, then
 * COMMIT PREPARED on each. Participants that only read commit plainly. A PREPARE that fails rolls every
 * participant back; a COMMIT PREPARED that fails is retried by recovery until it succeeds (the client has
 * been told COMMIT, as the decision is durable).
 *
 * Recovery: each instance's global transaction ids start with `pgshard_<instance>_`; at start and
 * periodically, prepared transactions of this instance are committed when the log has their decision
 * and rolled back otherwise (presumed abort), except those still in flight in this process.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { BackendConnection } from '../pool/backend.js';
import type { ShardPool } from '../pool/pool.js';
import { queryShard, runQuery } from '../pool/internal-query.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import type { DecisionLog } from './txlog.js';

export interface Participant {
  be: BackendConnection;
  pool: ShardPool;
  wrote: boolean;
  /** Its lock waits are bounded (the transaction spans several shards). */
  lockBound?: boolean;
}

export interface TwoPhaseStats {
  onePhase: number;
  twoPhase: number;
  aborted: number;
}

export class TransactionCoordinator {
  private counter = 0;
  private readonly inFlight = new Set<string>();
  private readonly prefix: string;
  private retryTimer: NodeJS.Timeout | null = null;
  readonly stats: TwoPhaseStats = { onePhase: 0, twoPhase: 0, aborted: 0 };
  /** > 0: a transaction step on a shard that sends nothing for this long fails (08006; recovery finishes it). */
  stepTimeoutMs = 0;

  constructor(
    instanceId: string,
    private readonly log: DecisionLog,
    private readonly pools: Map<string, ShardPool>,
    private readonly logger: Logger,
  ) {
    this.prefix = `pgshard_${instanceId.replace(/[^A-Za-z0-9]/g, '')}_`;
  }

  private newGid(): string {
    return `${this.prefix}${Date.now().toString(36)}_${(this.counter++).toString(36)}_${randomBytes(3).toString('hex')}`;
  }

  /** Decided transactions not known to be finished, and prepared ones still in flight here. */
  get inDoubt(): number {
    return this.log.pending().size;
  }

  /**
   * Commits every participant; resolves when the client may be told COMMIT. Rejects with the error to
   * report when the transaction was rolled back instead. Connections are released (or discarded).
   */
  async commit(participants: Participant[]): Promise<void> {
    try {
      await this.commitAll(participants);
    } finally {
      for (const p of participants) this.finish(p);
    }
  }

  private async commitAll(participants: Participant[]): Promise<void> {
    const writers = participants.filter((p) => p.wrote);
    const readers = participants.filter((p) => !p.wrote);
    if (writers.length <= 1) {
      // The writer first: if its COMMIT fails (deferred constraint), readers roll back, harmlessly.
      try {
        for (const w of writers) await this.run(w, 'COMMIT', true);
      } catch (e) {
        await this.rollbackAll(readers);
        this.stats.aborted++;
        throw e;
      }
      await Promise.all(readers.map((r) => this.run(r, 'COMMIT', false).catch(() => undefined)));
      this.stats.onePhase++;
      return;
    }
    const gid = this.newGid();
    this.inFlight.add(gid);
    try {
      const prepared = await Promise.allSettled(writers.map((w, i) => this.run(w, `PREPARE TRANSACTION '${participantGid(gid, i)}'`, true)));
      const failed = prepared.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
      if (failed) {
        // Presumed abort: no decision was logged; undo what was prepared and what was not.
        await Promise.all(
          writers.map((w, i) =>
            (prepared[i]!.status === 'fulfilled' ? this.run(w, `ROLLBACK PREPARED '${participantGid(gid, i)}'`, false) : this.run(w, 'ROLLBACK', false)).catch(() => undefined),
          ),
        );
        await this.rollbackAll(readers);
        this.stats.aborted++;
        throw toPgError(failed.reason);
      }
      try {
        await this.log.recordCommit(
          gid,
          writers.map((w) => w.pool.shard.id),
        );
      } catch (e) {
        // No decision is known to be durable: presumed abort, as if PREPARE had failed.
        await Promise.all(writers.map((w, i) => this.run(w, `ROLLBACK PREPARED '${participantGid(gid, i)}'`, false).catch(() => undefined)));
        await this.rollbackAll(readers);
        this.stats.aborted++;
        throw new PgError(SqlState.ConnectionFailure, `the commit decision could not be recorded (${(e as Error).message}): the transaction was rolled back on every shard`, { hint: 'Check that the metadata database is reachable, then retry the transaction.' });
      }
      const results = await Promise.allSettled(writers.map((w, i) => this.run(w, `COMMIT PREPARED '${participantGid(gid, i)}'`, false)));
      if (results.every((r) => r.status === 'fulfilled')) this.log.markDone(gid);
      else {
        this.logger.warn({ gid }, 'COMMIT PREPARED failed on a shard; recovery will finish it');
        this.scheduleRetry();
      }
      await Promise.all(readers.map((r) => this.run(r, 'COMMIT', false).catch(() => undefined)));
      this.stats.twoPhase++;
    } finally {
      this.inFlight.delete(gid);
    }
  }

  /** Rolls every participant back and gives the connections back. Never rejects. */
  async rollback(participants: Participant[]): Promise<void> {
    await this.rollbackAll(participants);
    for (const p of participants) this.finish(p);
  }

  private async rollbackAll(participants: Participant[]): Promise<void> {
    await Promise.all(participants.map((p) => this.run(p, 'ROLLBACK', false).catch(() => undefined)));
  }

  /**
   * Runs one internal statement on a participant's connection. `report`: the error is the client's (a
   * failed PREPARE or COMMIT); otherwise it is only logged.
   */
  private async run(p: Participant, sql: string, report: boolean): Promise<void> {
    if (!p.be.isOpen) throw toPgError(new Error(`the connection to shard "${p.pool.shard.id}" was lost`));
    try {
      await runQuery(p.be, sql, this.stepTimeoutMs);
    } catch (e) {
      const err = toPgError(e);
      if (!report) this.logger.warn({ shard: p.pool.shard.id, sql: sql.slice(0, 60), err: err.message }, 'transaction step failed');
      throw err;
    }
  }

  private finish(p: Participant): void {
    if (p.be.isOpen && p.be.txStatus === 'I') p.pool.release(p.be);
    else {
      if (p.be.isOpen && p.be.txStatus !== 'I') {
        // Still in a transaction (its COMMIT failed): roll it back before reuse.
        runQuery(p.be, 'ROLLBACK').then(
          () => p.pool.release(p.be),
          () => p.pool.destroy(p.be),
        );
        return;
      }
      p.pool.destroy(p.be);
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.recover().then((left) => {
        if (left > 0) this.scheduleRetry();
      });
    }, 1000);
    this.retryTimer.unref();
  }

  /**
   * Finishes this instance's prepared transactions on every reachable shard. Returns how many decided
   * transactions are still not finished (a shard down).
   */
  async recover(): Promise<number> {
    const decided = this.log.pending();
    const seen = new Map<string, Set<string>>(); // gid → shards still holding it prepared
    let unreachable = false;
    for (const [shard, pool] of this.pools) {
      let rows: (string | null)[][];
      try {
        rows = await queryShard(pool, `SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE gid LIKE '${this.prefix}%' AND database = current_database()`);
      } catch (e) {
        unreachable = true;
        this.logger.warn({ shard, err: (e as Error).message }, 'recovery: shard unreachable');
        continue;
      }
      for (const [prepared] of rows) {
        if (!prepared) continue;
        const gid = transactionGid(prepared);
        if (this.inFlight.has(gid)) continue;
        // The log as it is now, not as it was when this pass began: a transaction that was decided (and
        // left this process's in-flight set) since then must be committed, never presumed aborted.
        const commit = this.log.isDecided(gid);
        try {
          await queryShard(pool, `${commit ? 'COMMIT' : 'ROLLBACK'} PREPARED '${prepared}'`);
          this.logger.info({ shard, gid: prepared, action: commit ? 'commit' : 'rollback' }, 'recovered prepared transaction');
        } catch (e) {
          if (!seen.has(gid)) seen.set(gid, new Set());
          seen.get(gid)!.add(shard);
          this.logger.warn({ shard, gid: prepared, err: (e as Error).message }, 'recovery: could not finish prepared transaction');
        }
      }
    }
    // A decided transaction no shard holds prepared any more is finished (when every shard answered).
    for (const gid of decided.keys()) if (!seen.has(gid) && !unreachable && !this.inFlight.has(gid)) this.log.markDone(gid);
    return [...decided.keys()].filter((g) => this.log.isDecided(g)).length;
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

/**
 * The name a transaction is prepared under on its i-th participant. Postgres's prepared-transaction names
 * are unique per cluster, not per database, and two shards may be two databases of one cluster: each
 * participant gets its own name, and the decision log keeps the transaction's.
 */
export function participantGid(gid: string, i: number): string {
  return `${gid}_p${i}`;
}

/** The transaction a prepared name belongs to (names without a participant suffix are their own). */
export function transactionGid(prepared: string): string {
  return prepared.replace(/_p\d+$/, '');
}
