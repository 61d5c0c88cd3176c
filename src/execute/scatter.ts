/**
 * Scatter-gather: one simple-protocol statement runs on several shards at once and the client sees one
 * result, as if one Postgres had answered.
 *
 * Without a merge plan the shards' rows are concatenated: forwarded as they arrive, one RowDescription
 * (every shard's must agree), one CommandComplete with the summed row count, one ReadyForQuery. COPY …
 * TO STDOUT likewise (one CopyOutResponse, every shard's CopyData, one CopyDone, "COPY n").
 *
 * With a plan (src/sql/merge.ts) each shard runs the plan's statement (rewritten where needed) and:
 * - rows: a k-way merge of the shards' sorted streams (merge/order-by.ts) — one head row per shard
 *   decides what goes next; a shard's socket is paused while pgshard holds rows it has not used, and
 *   all are paused while the client does not read, so memory is bounded by the number of shards (one
 *   network read each) — then duplicate removal (merge/distinct.ts) and OFFSET/LIMIT
 *   (merge/limit.ts). Once the client has its rows, shards still sending are cancelled; a connection
 *   whose cancel was answered (57014) goes back to the pool, one that finished first is closed (its
 *   cancel may still arrive).
 * - groups: partial aggregates merged by group key (merge/aggregate.ts), finished, sorted, limited.
 * Hidden columns (sort keys, partial aggregates) are stripped before rows reach the client.
 *
 * Inside a transaction block the statement runs on the transaction's participants (`inTransaction`):
 * nothing is checked out or given back, no shard is cancelled (a cancel would abort its transaction; a
 * shard still sending after the client has its rows is read to its end and its rows dropped), an error
 * answers ReadyForQuery 'E', and `done` resolves only once every participant is idle again.
 *
 * ScatterQuery is independent of the protocol flavour where it can be: it is given the bytes to send
 * (a Query message) and writes result messages to the client socket; the session writes nothing while
 * it runs.
 */
import type { Socket } from 'node:net';
import { Backend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import type { BackendConnection, BackendListener } from '../pool/backend.js';
import { sendCancel } from '../pool/backend.js';
import type { ShardPool } from '../pool/pool.js';
import { stateSyncSql } from '../pool/state-sync.js';
import type { CrossShardPlan, GroupMergePlan, MergePlan } from '../sql/types.js';
import { parseStatements } from '../sql/parse.js';
import { cachedCollation, probeCollation, type ShardCollation } from './collation.js';
import { GroupMerger } from './merge/aggregate.js';
import { Deduper } from './merge/distinct.js';
import { bindLimit, Limiter, type LimitParams } from './merge/limit.js';
import { exactFloats, ResultFormatter } from './merge/result-format.js';
import { resolveKeys, RowOrder } from './merge/order-by.js';
import { readRowDescription, Row, sameColumns, truncateRowDescription, type Field } from './rows.js';
import type { ValueContext } from './values.js';

/** Counters for tests and metrics: how much the merges held and how often shards were stopped early. */
export const scatterStats = {
  merges: 0,
  /** Most bytes of shard rows held at once by one merge (all shards together). */
  peakHeldBytes: 0,
  peakHeldRows: 0,
  /** Shards cancelled because the client already had its rows. */
  cancelledEarly: 0,
  reset(): void {
    this.merges = 0;
    this.peakHeldBytes = 0;
    this.peakHeldRows = 0;
    this.cancelledEarly = 0;
  },
};

const CLIENT_HIGH_WATER = 1 << 20;
const GROUP_BATCH = 1000;

interface Leg {
  pool: ShardPool;
  be: BackendConnection | null;
  /** Internal statements (session-state sync) whose answers are dropped, before the client's statement. */
  internal: number;
  done: boolean;
  // plan mode
  fields: Field[] | null;
  rd: Buffer | null;
  rdEnds: number[];
  queue: Row[];
  head: number;
  complete: boolean;
  paused: boolean;
  /** Cancelled because the client had its rows; `cancelAnswered` once the shard reported 57014. */
  cancelled: boolean;
  cancelAnswered: boolean;
  collation: ShardCollation | null;
}

/** The legacy one-row merge as a group plan. */
function legacyPlan(aggs: MergePlan['aggregates']): CrossShardPlan {
  const groups: GroupMergePlan = {
    keys: [],
    aggregates: aggs.map((fn, i) => ({ fn, column: i })),
    outputs: aggs.map((_, i) => ({ agg: i })),
    order: [],
  };
  return { hidden: 0, groups };
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
  private plan: CrossShardPlan | null;
  private readonly send: Buffer;
  // plan mode
  private started = false;
  private stopped = false;
  private fields: Field[] = [];
  private visible = 0;
  private order: RowOrder | null = null;
  private dedupe: Deduper | null = null;
  private limiter: Limiter | null = null;
  private lastTaken: Row | null = null;
  private groups: GroupMerger | null = null;
  private emitted = 0;
  private clientBlocked = false;
  private heldBytes = 0;
  private heldRows = 0;
  private rr = 0;
  /** Columns the client wants in binary: re-encoded from the merge's text. */
  private formatter: ResultFormatter | null = null;

  constructor(
    private readonly client: Socket,
    pools: ShardPool[],
    private readonly query: Buffer,
    private readonly vars: ReadonlyMap<string, string>,
    merge: MergePlan | null = null,
    /**
     * Extended protocol: the statement's text and how to ask a shard to run a given SQL text (Parse, Bind
     * with the client's values, Describe, Execute, Sync). ParseComplete/BindComplete are the caller's.
     */
    private readonly extended: {
      text: string;
      build(sql: string): Buffer;
      params?: LimitParams;
      describe?: boolean;
      /** The client's Bind result-format section; the shards of a merge are asked for text. */
      resultFormats?: Buffer;
    } | null = null,
    /** The transaction's participant connection on each shard (same order as `pools`), already joined. */
    private readonly inTransaction: BackendConnection[] | null = null,
  ) {
    this.legs = pools.map((pool) => ({
      pool, be: null, internal: 0, done: false, fields: null, rd: null, rdEnds: [], queue: [], head: 0,
      complete: false, paused: false, cancelled: false, cancelAnswered: false, collation: null,
    }));
    this.done = new Promise<void>((r) => (this.resolve = r));
    this.plan = merge?.rewrite ?? (merge !== null && merge.aggregates.length > 0 ? legacyPlan(merge.aggregates) : null);
    const sql = this.plan?.sql;
    this.send = extended ? extended.build(sql ?? extended.text) : sql !== undefined ? M.queryMessage(sql) : query;
  }

  /** Whether the client asked for the RowDescription (an extended-protocol batch without Describe has it from an earlier Describe). */
  private get describe(): boolean {
    return this.extended?.describe !== false;
  }

  /** Checks out a backend on every shard, then sends the statement to all. */
  async run(): Promise<void> {
    if (this.plan !== null) {
      const text = this.extended ? this.extended.text : this.query.toString('utf8', 5, this.query.length - 1);
      const parsed = parseStatements(text);
      if (!parsed.ok || parsed.stmts.length !== 1) {
        this.finish(new PgError(SqlState.FeatureNotSupported, 'a statement that is merged across shards must be sent alone, not with other statements in one query string').toMessage());
        return this.done;
      }
      try {
        this.plan = withBoundLimit(this.plan, this.extended?.params ?? null);
      } catch (e) {
        this.finish(toPgError(e).toMessage());
        return this.done;
      }
    }
    const got = this.inTransaction !== null ? this.inTransaction.map((be) => ({ status: 'fulfilled' as const, value: be })) : await Promise.allSettled(this.legs.map((l) => l.pool.acquire()));
    let failure: PgError | null = null;
    got.forEach((r, i) => {
      if (r.status === 'fulfilled') this.legs[i]!.be = r.value;
      else failure ??= toPgError(r.reason);
    });
    if (!failure && this.plan !== null) {
      // What the merge needs to know about each shard's collation (once a minute per shard).
      await Promise.all(
        this.legs.map(async (l) => {
          try {
            l.collation = cachedCollation(l.pool) ?? (await probeCollation(l.pool, l.be!));
          } catch (e) {
            failure ??= toPgError(e);
            if (l.be && !l.be.isOpen && this.inTransaction === null) {
              l.pool.destroy(l.be);
              l.be = null;
            }
          }
        }),
      );
    }
    if (failure) {
      if (this.inTransaction === null) for (const l of this.legs) if (l.be) l.pool.release(l.be);
      for (const l of this.legs) l.done = true;
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
      parts.push(this.send);
      be.writev(parts);
    }
    return this.done;
  }

  private listenerFor(leg: Leg): BackendListener {
    return {
      message: (type, buf, start, end) => {
        try {
          this.onMessage(leg, type, buf, start, end);
        } catch (e) {
          this.fail(toPgError(e));
        }
      },
      chunkDone: () => {
        if (this.plan !== null) {
          // One merge step per network read: rows of the read go to the client in one write.
          if (this.started && !this.finished) this.pump();
          if (leg.head < leg.queue.length && !leg.paused && !leg.complete && !this.stopped) {
            leg.paused = true;
            leg.be?.pause();
          }
          return;
        }
        if (this.client.writableLength > 4 << 20) {
          leg.be?.pause();
          this.client.once('drain', () => leg.be?.resume());
        }
      },
      lost: (err) => {
        leg.be = null;
        if (!this.stopped) {
          this.error ??= err.toMessage();
          this.cancelOthers(leg);
        }
        this.legDone(leg, true);
        if (this.finished) return;
        if (this.plan !== null ? this.error !== null : this.legs.every((l) => l.done)) this.finish(null);
        else if (this.plan !== null && this.started) this.pump();
      },
    };
  }

  private onMessage(leg: Leg, type: number, buf: Buffer, start: number, end: number): void {
    if (leg.internal > 0) {
      if (type === Backend.ReadyForQuery) leg.internal--;
      return;
    }
    if (this.plan !== null) return this.onPlanMessage(leg, type, buf, start, end);
    switch (type) {
      case Backend.DataRow:
      case Backend.CopyData:
        if (this.error === null) this.client.write(buf.subarray(start, end));
        return;
      case Backend.RowDescription: {
        const rd = buf.subarray(start, end);
        if (this.rowDescription === null) {
          this.rowDescription = Buffer.from(rd);
          if (this.error === null && this.describe) this.client.write(rd);
        } else if (!this.rowDescription.equals(rd) && !sameColumns(readRowDescription(this.rowDescription, 0).fields, readRowDescription(buf, start).fields)) {
          this.fail(differentColumns(leg));
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
        if (this.legs.every((l) => l.done)) this.finish(null);
        return;
      default:
        return; // ParameterStatus and the like: the session's own state is not changed by a read
    }
  }

  // ---------------------------------------------------------------- merge plans

  private onPlanMessage(leg: Leg, type: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case Backend.DataRow: {
        if (this.stopped || this.error !== null) return;
        leg.queue.push(new Row(buf, start, end));
        this.hold(end - start, 1);
        return;
      }
      case Backend.RowDescription: {
        if (leg.fields !== null) return;
        leg.rd = Buffer.from(buf.subarray(start, end));
        const { fields, ends } = readRowDescription(leg.rd, 0);
        leg.fields = fields;
        leg.rdEnds = ends;
        if (this.error !== null) return;
        if (this.started) {
          if (!sameColumns(this.fields, fields)) this.fail(differentColumns(leg));
          return;
        }
        // A merge without ORDER BY or aggregation starts with the first shard's columns: a shard busy computing
        // its first row sends its RowDescription only with it (Postgres buffers its output), and a LIMIT may be
        // reached without that shard. Others wait for every shard's.
        if (this.legs.every((l) => l.fields !== null) || (this.plan!.rows !== undefined && this.plan!.rows.order.length === 0)) this.start(leg);
        return;
      }
      case Backend.CommandComplete:
        leg.complete = true;
        return;
      case Backend.ErrorResponse: {
        const code = M.decodeErrorFields(buf, start, end).C;
        if (leg.cancelled) {
          if (code === SqlState.QueryCanceled) leg.cancelAnswered = true;
          return;
        }
        if (this.error === null && !this.finished) {
          this.error = Buffer.from(buf.subarray(start, end));
          this.cancelOthers(leg);
          this.stopped = true;
          this.dropQueues();
        }
        return;
      }
      case Backend.NoticeResponse:
        if (!this.finished) this.client.write(buf.subarray(start, end));
        return;
      case Backend.ReadyForQuery:
        // The shard's connection goes back now, so the rest of its network read gets no chunkDone: merge here.
        this.legDone(leg, false);
        if (this.finished) return;
        if (this.error !== null) this.finish(null);
        else if (this.started) this.pump();
        else if (this.legs.every((l) => l.done)) this.finish(null); // no RowDescription at all (not a SELECT)
        return;
      default:
        return;
    }
  }

  private hold(bytes: number, rows: number): void {
    this.heldBytes += bytes;
    this.heldRows += rows;
    if (this.heldBytes > scatterStats.peakHeldBytes) scatterStats.peakHeldBytes = this.heldBytes;
    if (this.heldRows > scatterStats.peakHeldRows) scatterStats.peakHeldRows = this.heldRows;
  }

  /** The shards sent their RowDescriptions: check they agree, set up the merge, describe the result to the client. */
  private start(first: Leg): void {
    const plan = this.plan!;
    for (const l of this.legs) if (l.fields !== null && !sameColumns(first.fields!, l.fields)) return this.fail(differentColumns(l));
    this.fields = first.fields!;
    if (this.fields.some((f) => f.format !== 0)) return this.fail(new PgError(SqlState.FeatureNotSupported, 'binary result columns across shards are not supported'));
    this.visible = this.fields.length - plan.hidden;
    if (this.visible < 0) return this.fail(new PgError(SqlState.InternalError, 'pgshard: the shards returned fewer columns than the merge plan expects'));
    try {
      const ctx = this.valueContext();
      this.formatter = ResultFormatter.forClient(this.extended?.resultFormats ?? null, this.fields.slice(0, this.visible), {
        isoDates: ctx.isoDates,
        postgresIntervals: ctx.postgresIntervals,
        exactFloats: exactFloats(this.vars),
      });
      if (plan.rows) {
        const r = plan.rows;
        let keys = r.order;
        let adjacent = r.distinct?.adjacent ?? false;
        let resolved;
        try {
          resolved = resolveKeys(keys, this.fields, ctx);
        } catch (e) {
          // DISTINCT's extra sort keys only make duplicates adjacent; without codecs for them, fall back to a hash set.
          if (r.distinct?.orderKeys === undefined) throw e;
          keys = keys.slice(0, r.distinct.orderKeys);
          resolved = resolveKeys(keys, this.fields, ctx);
          adjacent = false;
        }
        if (resolved.length > 0) this.order = new RowOrder(resolved);
        if (r.distinct) this.dedupe = new Deduper(r.distinct.columns, this.visible, this.fields, ctx, adjacent);
        const tieKeys = r.distinct?.orderKeys ?? keys.length;
        this.limiter = new Limiter(r.limit, r.limit?.withTies ? (row) => this.lastTaken !== null && this.order!.compare(row as Row, this.lastTaken, tieKeys) === 0 : null);
      } else if (plan.groups) {
        this.groups = new GroupMerger(plan.groups, this.fields, this.visible, ctx);
        this.groups.typecheck();
      }
    } catch (e) {
      return this.fail(toPgError(e));
    }
    if (this.describe) this.client.write(this.formatter?.rowDescription() ?? truncateRowDescription(first.rd!, first.rdEnds, this.visible));
    this.started = true;
    scatterStats.merges++;
    if (this.limiter?.empty) return this.stopEarly();
    this.pump();
  }

  private valueContext(): ValueContext {
    const params = this.legs.map((l) => l.be?.params ?? new Map<string, string>());
    const cols = this.legs.map((l) => l.collation);
    const encodingOk = params.every((p) => (p.get('client_encoding') ?? 'UTF8') === (p.get('server_encoding') ?? 'UTF8'));
    const byteOrder = cols.every((c) => c !== null && c.byteOrder && !c.otherCollations);
    let why: string | undefined;
    if (!encodingOk) why = 'the client encoding differs from the server encoding';
    else if (!byteOrder) {
      const c = cols.find((x) => x !== null && (!x.byteOrder || x.otherCollations));
      why = c?.otherCollations ? 'some columns have a collation other than the default or "C"' : c?.describe;
    }
    const ctx: ValueContext = {
      textByteOrder: byteOrder && encodingOk,
      textEquality: cols.every((c) => c !== null && !c.nondeterministic),
      isoDates: params.every((p) => (p.get('DateStyle') ?? 'ISO').startsWith('ISO')),
      postgresIntervals: params.every((p) => (p.get('IntervalStyle') ?? 'postgres') === 'postgres'),
    };
    if (why !== undefined) ctx.textOrderWhy = why;
    return ctx;
  }

  /** Moves rows from the shards to the client as far as the merge allows. */
  private pump(): void {
    if (!this.started || this.finished || this.stopped || this.error !== null) return;
    if (this.groups !== null) return this.pumpGroups();
    const out: Buffer[] = [];
    let drained = false;
    try {
      for (;;) {
        if (this.clientBlocked) break;
        const leg = this.order !== null ? this.nextOrdered() : this.nextAny();
        if (leg === 'wait') break;
        if (leg === 'end') {
          drained = true;
          break;
        }
        const row = leg.queue[leg.head++]!;
        this.hold(-(row.end - row.start), -1);
        if (leg.head === leg.queue.length) {
          leg.queue = [];
          leg.head = 0;
        }
        if (this.dedupe !== null && !this.dedupe.admit(row)) continue;
        const verdict = this.limiter!.next(row);
        if (verdict === 'skip') continue;
        if (verdict === 'stop') {
          this.flush(out);
          return this.stopEarly();
        }
        out.push(this.formatter !== null ? this.formatter.row(row.message(this.visible)) : row.message(this.visible));
        this.emitted++;
        this.lastTaken = row;
        if (this.limiter!.full) {
          this.flush(out);
          return this.stopEarly();
        }
      }
    } catch (e) {
      this.flush(out);
      return this.fail(toPgError(e));
    }
    this.flush(out);
    for (const l of this.legs) if (l.paused && l.head === l.queue.length) this.resumeLeg(l);
    if (drained) this.finishRows();
  }

  /** The shard whose head row goes next in the merged order, 'wait' for more rows, 'end' when all are drained. */
  private nextOrdered(): Leg | 'wait' | 'end' {
    let best: Leg | null = null;
    for (const l of this.legs) {
      if (l.head < l.queue.length) {
        if (best === null || this.order!.compare(l.queue[l.head]!, best.queue[best.head]!) < 0) best = l;
      } else if (!l.complete) {
        this.resumeLeg(l);
        return 'wait';
      }
    }
    return best ?? 'end';
  }

  /** Without ORDER BY: rows in arrival order, shards taken in turn. */
  private nextAny(): Leg | 'wait' | 'end' {
    const n = this.legs.length;
    for (let i = 0; i < n; i++) {
      const l = this.legs[(this.rr + i) % n]!;
      if (l.head < l.queue.length) {
        this.rr = (this.rr + i + 1) % n;
        return l;
      }
    }
    for (const l of this.legs) if (!l.complete) this.resumeLeg(l);
    return this.legs.every((l) => l.complete) ? 'end' : 'wait';
  }

  private resumeLeg(l: Leg): void {
    if (l.paused) {
      l.paused = false;
      l.be?.resume();
    }
  }

  private flush(out: Buffer[]): void {
    if (out.length === 0) return;
    const ok = this.client.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    if (!ok || this.client.writableLength > CLIENT_HIGH_WATER) {
      this.clientBlocked = true;
      this.client.once('drain', () => {
        this.clientBlocked = false;
        this.pump();
      });
    }
  }

  private pumpGroups(): void {
    const g = this.groups!;
    try {
      for (const l of this.legs) {
        while (l.head < l.queue.length) {
          const row = l.queue[l.head++]!;
          this.hold(-(row.end - row.start), -1);
          g.add(row);
        }
        l.queue = [];
        l.head = 0;
        this.resumeLeg(l);
      }
    } catch (e) {
      return this.fail(toPgError(e));
    }
    if (!this.legs.every((l) => l.complete)) return;
    let rows: Buffer[];
    try {
      rows = g.finish();
      if (this.formatter !== null) rows = rows.map((r) => this.formatter!.row(r));
    } catch (e) {
      return this.fail(toPgError(e));
    }
    this.stopped = true;
    this.writeBatches(rows, 0);
  }

  private writeBatches(rows: Buffer[], from: number): void {
    let i = from;
    while (i < rows.length) {
      const batch = rows.slice(i, i + GROUP_BATCH);
      i += batch.length;
      const ok = this.client.write(Buffer.concat(batch));
      if (!ok && i < rows.length) {
        this.client.once('drain', () => this.writeBatches(rows, i));
        return;
      }
    }
    this.emitted = rows.length;
    this.finishRows();
  }

  /** The client has all its rows while shards may still be sending: cancel them and answer now. */
  private stopEarly(): void {
    this.stopped = true;
    for (const l of this.legs) {
      if (l.done || l.complete || !l.be || this.inTransaction !== null) continue;
      l.cancelled = true;
      scatterStats.cancelledEarly++;
      sendCancel(l.be.shard.host, l.be.shard.port, l.be.pid, l.be.secret);
    }
    this.dropQueues();
    this.finishRows();
  }

  private dropQueues(): void {
    for (const l of this.legs) {
      let bytes = 0;
      for (let i = l.head; i < l.queue.length; i++) bytes += l.queue[i]!.end - l.queue[i]!.start;
      this.hold(-bytes, -(l.queue.length - l.head));
      l.queue = [];
      l.head = 0;
      this.resumeLeg(l); // let it drain what is still in flight
    }
  }

  private finishRows(): void {
    this.rows = BigInt(this.emitted);
    this.tagVerb = 'SELECT';
    this.finish(null);
  }

  // ---------------------------------------------------------------- ending

  private fail(err: PgError): void {
    if (this.error === null && !this.finished) {
      this.error = err.toMessage();
      this.cancelOthers(null);
      if (this.plan !== null) {
        this.stopped = true;
        this.dropQueues();
        this.finish(null);
      }
    }
  }

  private cancelOthers(except: Leg | null): void {
    if (this.inTransaction !== null) return; // the participants finish their statements; the transaction is failed anyway
    for (const l of this.legs) {
      if (l === except || l.done || !l.be) continue;
      if (this.plan !== null) {
        if (l.complete || l.cancelled) continue;
        l.cancelled = true;
      }
      sendCancel(l.be.shard.host, l.be.shard.port, l.be.pid, l.be.secret);
    }
  }

  /**
   * The shards still running sent nothing for too long and did not answer a cancel (the session's
   * statement-timeout backstop): their connections are closed and the query ends with `err`.
   */
  abandon(err: PgError): void {
    if (this.finished) return;
    for (const l of this.legs) {
      const be = l.be;
      if (l.done || !be) continue;
      const listener = be.listener;
      l.pool.destroy(be);
      listener?.lost(err);
    }
  }

  /** A CancelRequest for the client: cancel every shard still running. */
  cancel(): void {
    if (this.finished) return;
    for (const l of this.legs) if (!l.done && l.be) sendCancel(l.be.shard.host, l.be.shard.port, l.be.pid, l.be.secret);
  }

  private legDone(leg: Leg, lost: boolean): void {
    if (leg.done) return;
    leg.done = true;
    const be = leg.be;
    leg.be = null;
    if (this.inTransaction !== null) {
      if (be) {
        be.listener = null;
        if (leg.paused) be.resume();
      }
      if (this.finished && this.legs.every((l) => l.done)) this.resolve();
      return;
    }
    if (be) {
      be.listener = null;
      if (leg.paused) be.resume();
      // A cancel that was not answered may still arrive and hit the connection's next statement.
      if (lost || be.txStatus !== 'I' || (leg.cancelled && !leg.cancelAnswered)) leg.pool.destroy(be);
      else leg.pool.release(be);
    }
  }

  private finish(err: Buffer | null): void {
    if (this.finished) return;
    this.finished = true;
    const e = err ?? this.error;
    this.answeredError = e !== null;
    const parts: Buffer[] = [];
    if (e) parts.push(e);
    else {
      if (this.copyOut) parts.push(Buffer.from([Backend.CopyDone, 0, 0, 0, 4]));
      if (this.tagVerb !== null) parts.push(M.commandComplete(this.tagVerb === 'SELECT' || this.tagVerb === 'COPY' ? `${this.tagVerb} ${this.rows}` : this.tagVerb));
      else parts.push(M.emptyQueryResponse);
    }
    parts.push(M.readyForQuery(this.inTransaction === null ? 'I' : e ? 'E' : 'T'));
    this.client.write(Buffer.concat(parts));
    // In a transaction the participants must be idle before the session sends them anything else.
    if (this.inTransaction === null || this.legs.every((l) => l.done)) this.resolve();
  }

  /** Whether the client was answered with an error (the session then fails the transaction). */
  get failed(): boolean {
    return this.answeredError;
  }
  private answeredError = false;
}

/** The plan with LIMIT/OFFSET bind parameters replaced by the Bind's values. */
function withBoundLimit(plan: CrossShardPlan, params: LimitParams | null): CrossShardPlan {
  if (plan.rows?.limit !== undefined) {
    const limit = bindLimit(plan.rows.limit, params);
    if (limit !== plan.rows.limit) return { ...plan, rows: { ...plan.rows, limit: limit! } };
  }
  if (plan.groups?.limit !== undefined) {
    const limit = bindLimit(plan.groups.limit, params);
    if (limit !== plan.groups.limit) return { ...plan, groups: { ...plan.groups, limit: limit! } };
  }
  return plan;
}

function differentColumns(leg: Leg): PgError {
  return new PgError(SqlState.InternalError, `shard "${leg.pool.shard.id}" answered with different columns than the other shards`, {
    hint: 'The table definitions differ between shards; make them identical.',
  });
}
