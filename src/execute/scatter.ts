/**
 * Scatter-gather by concatenation: one simple-protocol statement runs on several shards at once and the
 * client sees one result, as if one Postgres had answered. Used only where concatenating the shards' rows
 * is exactly the answer (analysis says so); rows are forwarded as they arrive, never buffered, so memory
 * stays bounded by the number of shards whatever the result size.
 *
 * What is merged: one RowDescription (every shard's must be identical, else an error), the DataRows of all
 * shards, one CommandComplete with the summed row count, one ReadyForQuery. For COPY … TO STDOUT: one
 * CopyOutResponse, every shard's CopyData, one CopyDone, one CommandComplete "COPY n".
 */
import type { Socket } from 'node:net';
import { Backend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import type { BackendConnection, BackendListener } from '../pool/backend.js';
import { sendCancel } from '../pool/backend.js';
import type { ShardPool } from '../pool/pool.js';
import { stateSyncSql } from '../pool/state-sync.js';
import type { MergePlan } from '../sql/types.js';
import { dataRowValues, mergeColumn, rowDescriptionTypes } from './aggregate-merge.js';

interface Leg {
  pool: ShardPool;
  be: BackendConnection | null;
  /** Internal statements (session-state sync) whose answers are dropped, before the client's statement. */
  internal: number;
  done: boolean;
}

export class ScatterQuery {
  private legs: Leg[] = [];
  private rowDescription: Buffer | null = null;
  private copyOut: Buffer | null = null;
  private rows = 0n;
  private tagVerb: string | null = null;
  private error: Buffer | null = null;
  private finished = false;
  private resolve!: () => void;
  readonly done: Promise<void>;
  // Aggregate merge: the column types and each shard's one row, combined at the end.
  private mergeTypes: number[] = [];
  private mergeRows: (string | null)[][] = [];

  constructor(
    private readonly client: Socket,
    pools: ShardPool[],
    private readonly query: Buffer,
    private readonly vars: ReadonlyMap<string, string>,
    private readonly merge: MergePlan | null = null,
  ) {
    this.legs = pools.map((pool) => ({ pool, be: null, internal: 0, done: false }));
    this.done = new Promise<void>((r) => (this.resolve = r));
  }

  /** Checks out a backend on every shard, then sends the statement to all. */
  async run(): Promise<void> {
    const got = await Promise.allSettled(this.legs.map((l) => l.pool.acquire()));
    let failure: PgError | null = null;
    got.forEach((r, i) => {
      if (r.status === 'fulfilled') this.legs[i]!.be = r.value;
      else failure ??= toPgError(r.reason);
    });
    if (failure) {
      for (const l of this.legs) if (l.be) l.pool.release(l.be);
      this.finish((failure as PgError).toMessage());
      return this.done;
    }
    for (const leg of this.legs) {
      const be = leg.be!;
      be.listener = this.listenerFor(leg);
      const sync = stateSyncSql(this.vars, be);
      const parts: Buffer[] = [];
      if (sync) {
        leg.internal = 1;
        parts.push(M.queryMessage(sync));
      }
      parts.push(this.query);
      be.writev(parts);
    }
    return this.done;
  }

  private listenerFor(leg: Leg): BackendListener {
    return {
      message: (type, buf, start, end) => this.onMessage(leg, type, buf, start, end),
      chunkDone: () => {
        if (this.client.writableLength > 4 << 20) {
          leg.be?.pause();
          this.client.once('drain', () => leg.be?.resume());
        }
      },
      lost: (err) => {
        leg.be = null;
        this.error ??= err.toMessage();
        this.legDone(leg, true);
      },
    };
  }

  private onMessage(leg: Leg, type: number, buf: Buffer, start: number, end: number): void {
    if (leg.internal > 0) {
      if (type === Backend.ReadyForQuery) leg.internal--;
      return;
    }
    switch (type) {
      case Backend.DataRow:
        if (this.merge) {
          this.mergeRows.push(dataRowValues(buf, start));
          return;
        }
        if (this.error === null) this.client.write(buf.subarray(start, end));
        return;
      case Backend.CopyData:
        if (this.error === null) this.client.write(buf.subarray(start, end));
        return;
      case Backend.RowDescription: {
        const rd = buf.subarray(start, end);
        if (this.rowDescription === null) {
          this.rowDescription = Buffer.from(rd);
          if (this.merge) this.mergeTypes = rowDescriptionTypes(buf, start);
          if (this.error === null) this.client.write(rd);
        } else if (!this.rowDescription.equals(rd)) {
          this.fail(
            new PgError(SqlState.InternalError, `shard "${leg.pool.shard.id}" answered with different columns than the other shards`, {
              hint: 'The table definitions differ between shards; make them identical.',
            }),
          );
        }
        return;
      }
      case Backend.CopyOutResponse: {
        if (this.copyOut === null) {
          this.copyOut = Buffer.from(buf.subarray(start, end));
          if (this.error === null) this.client.write(this.copyOut);
        }
        return;
      }
      case Backend.CopyDone:
        return;
      case Backend.CommandComplete: {
        const tag = M.decodeCommandTag(buf, start, end);
        const sp = tag.lastIndexOf(' ');
        const n = sp > 0 ? tag.slice(sp + 1) : '';
        if (/^\d+$/.test(n)) {
          this.rows += BigInt(n);
          this.tagVerb = tag.slice(0, sp);
        } else this.tagVerb = tag;
        return;
      }
      case Backend.ErrorResponse:
        if (this.error === null) {
          this.error = Buffer.from(buf.subarray(start, end));
          this.cancelOthers(leg);
        }
        return;
      case Backend.NoticeResponse:
        this.client.write(buf.subarray(start, end));
        return;
      case Backend.ReadyForQuery:
        this.legDone(leg, false);
        return;
      default:
        return; // ParameterStatus and the like: the session's own state is not changed by a read
    }
  }

  private fail(err: PgError): void {
    if (this.error === null) {
      this.error = err.toMessage();
      this.cancelOthers(null);
    }
  }

  private cancelOthers(except: Leg | null): void {
    for (const l of this.legs) if (l !== except && !l.done && l.be) sendCancel(l.be.shard.host, l.be.shard.port, l.be.pid, l.be.secret);
  }

  /** A CancelRequest for the client: cancel every shard still running. */
  cancel(): void {
    this.cancelOthers(null);
  }

  private legDone(leg: Leg, lost: boolean): void {
    if (leg.done) return;
    leg.done = true;
    const be = leg.be;
    leg.be = null;
    if (be) {
      be.listener = null;
      if (lost || be.txStatus !== 'I') leg.pool.destroy(be);
      else leg.pool.release(be);
    }
    if (this.legs.every((l) => l.done)) this.finish(null);
  }

  private finish(err: Buffer | null): void {
    if (this.finished) return;
    this.finished = true;
    let e = err ?? this.error;
    const parts: Buffer[] = [];
    let merged: Buffer | null = null;
    if (!e && this.merge) {
      try {
        merged = M.dataRow(this.merge.aggregates.map((agg, i) => mergeColumn(agg, this.mergeTypes[i] ?? 0, this.mergeRows.map((r) => r[i] ?? null))));
        this.rows = 1n;
      } catch (x) {
        e = toPgError(x).toMessage();
      }
    }
    if (e) parts.push(e);
    else {
      if (merged) parts.push(merged);
      if (this.copyOut) parts.push(Buffer.from([Backend.CopyDone, 0, 0, 0, 4]));
      if (this.tagVerb !== null) parts.push(M.commandComplete(this.tagVerb === 'SELECT' || this.tagVerb === 'COPY' ? `${this.tagVerb} ${this.rows}` : this.tagVerb));
      else parts.push(M.emptyQueryResponse);
    }
    parts.push(M.readyForQuery('I'));
    this.client.write(Buffer.concat(parts));
    this.resolve();
  }
}
