/**
 * COPY FROM STDIN into a sharded table, once every shard is a participant of the transaction: the same
 * COPY statement runs on every shard, each row goes to the shard owning its key (into a reference table:
 * every shard gets all the data, forwarded unparsed) (rows are split with
 * CopyRowSplitter, or BinaryCopySplitter for FORMAT binary, and forwarded as the bytes they arrived in),
 * and the client sees one COPY with the summed row count. In binary format every shard gets the client's
 * header before its first tuple and a trailer at the end, and the key column's type is first looked up on
 * one shard, inside the transaction (so a table created earlier in it is found). An error on any shard, or
 * in the data, fails the whole COPY; the caller then rolls the transaction back (or leaves the client's
 * transaction failed, as Postgres does).
 */
import type { Socket } from 'node:net';
import { Backend, Frontend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import { CopyRowSplitter, type BinaryCopyStatement, type CopyOptions } from './copy-split.js';
import { BINARY_TRAILER, BinaryCopySplitter } from './copy-binary.js';
import { binaryKeyReader, type BinaryKeyReader } from './copy-binary-key.js';
import type { Participant } from './two-phase.js';
import type { Router } from '../routing/router.js';
import { runQuery } from '../pool/internal-query.js';

interface Leg {
  p: Participant;
  ready: boolean; // CopyInResponse received
  finished: boolean; // ReadyForQuery received
  rows: bigint;
  out: Buffer[];
  outBytes: number;
}

const FLUSH_BYTES = 64 * 1024;
/** A shard's connection holding more unsent COPY data than this stops pgshard reading the client. */
const HIGH_WATER = 1024 * 1024;

export interface CopyOutcome {
  rows: bigint;
  /** The ErrorResponse to give the client, if the COPY failed. */
  error: Buffer | null;
}

export class ShardedCopy {
  readonly done: Promise<CopyOutcome>;
  private resolve!: (o: CopyOutcome) => void;
  private readonly legs: Leg[];
  private readonly byShard = new Map<string, Leg>();
  /** Splits rows by key (a sharded table); null: every shard gets the client's data as it came (a reference table). */
  private readonly splitter: CopyRowSplitter | BinaryCopySplitter | null;
  /** Binary format: the key field's bytes → canonical key (set once the column type is known). */
  private binaryKey: BinaryKeyReader | null = null;
  private error: Buffer | null = null;
  /** Client messages that arrived before the COPY was sent to the shards (binary: during the type lookup). */
  private early: { type: number; buf: Buffer; start: number; end: number }[] | null = null;
  private started = false; // the client was sent CopyInResponse
  private clientDone = false;
  private headerSent = false;
  /** The client's socket is paused until a shard's connection drains. */
  private clientPaused = false;

  constructor(
    private readonly client: Socket,
    parts: Participant[],
    statement: string,
    private readonly opts: CopyOptions | null,
    private readonly table: string,
    private readonly router: Router,
  ) {
    this.done = new Promise((r) => (this.resolve = r));
    this.splitter = opts === null ? null : opts.format === 'binary' ? new BinaryCopySplitter(opts) : new CopyRowSplitter(opts);
    this.legs = parts.map((p) => ({ p, ready: false, finished: false, rows: 0n, out: [], outBytes: 0 }));
    for (const leg of this.legs) this.byShard.set(leg.p.pool.shard.id, leg);
    if (opts?.format === 'binary') {
      this.early = [];
      void this.lookUpKeyType(opts).then(() => this.start(statement));
    } else this.start(statement);
  }

  /**
   * The key column's type, from the first participant's catalog. A failure (no such table) or a type that
   * cannot be read exactly becomes the COPY's error; the COPY is still started on every shard and then
   * failed, so every participant's transaction fails as the client's does.
   */
  private async lookUpKeyType(opts: BinaryCopyStatement): Promise<void> {
    const ident = (n: string) => '"' + n.replace(/"/g, '""') + '"';
    const literal = (v: string) => "E'" + v.replace(/\\/g, '\\\\').replace(/'/g, "''") + "'";
    const rel = (opts.relation.schema !== undefined ? ident(opts.relation.schema) + '.' : '') + ident(opts.relation.name);
    const sql =
      'WITH RECURSIVE ty(oid) AS (SELECT a.atttypid FROM pg_catalog.pg_attribute a ' +
      `WHERE a.attrelid = ${literal(rel)}::pg_catalog.regclass AND a.attname = ${literal(opts.keyName)} AND a.attnum > 0 AND NOT a.attisdropped ` +
      "UNION ALL SELECT t.typbasetype FROM pg_catalog.pg_type t JOIN ty ON t.oid = ty.oid WHERE t.typtype = 'd') " +
      "SELECT t.oid, pg_catalog.format_type(t.oid, NULL) FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid WHERE t.typtype <> 'd'";
    const leg = this.legs[0]!;
    try {
      const rows = await runQuery(leg.p.be, sql);
      const [oid, name] = rows[0] ?? [];
      if (oid === undefined || oid === null) throw new PgError('42703', `column "${opts.keyName}" of relation "${opts.relation.name}" does not exist`);
      const reader = binaryKeyReader(this.router.keyTypeOf(this.table), Number(oid), name ?? oid, this.table, opts.keyName);
      if (reader instanceof PgError) throw reader;
      this.binaryKey = reader;
    } catch (e) {
      this.error ??= toPgError(e).toMessage();
    }
  }

  private start(statement: string): void {
    for (const leg of this.legs) {
      if (!leg.p.be.isOpen) {
        this.fail(new PgError(SqlState.ConnectionFailure, `lost the connection to shard "${leg.p.pool.shard.id}"`).toMessage());
        leg.ready = true;
        leg.finished = true;
        continue;
      }
      leg.p.be.listener = {
        message: (type, buf, start, end) => this.onBackend(leg, type, buf, start, end),
        chunkDone: () => undefined,
        lost: (err) => {
          this.fail(err.toMessage());
          leg.finished = true;
          leg.ready = true;
          this.endIfFailedBeforeStart();
          this.check();
        },
      };
      leg.p.be.write(M.queryMessage(statement));
    }
    const early = this.early ?? [];
    this.early = null;
    for (const m of early) this.onClient(m);
    this.endIfFailedBeforeStart();
    this.check();
  }

  /** Every shard answered the COPY statement and one failed: the client never sees CopyInResponse. */
  private endIfFailedBeforeStart(): void {
    if (!this.started && this.error && this.legs.every((l) => l.ready)) this.clientDone = true;
  }

  private onBackend(leg: Leg, type: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case Backend.CopyInResponse:
        leg.ready = true;
        if (!this.started && this.legs.every((l) => l.ready)) {
          if (this.error) {
            // Failed before the client started: end the other COPYs; the client never sees CopyInResponse.
            for (const l of this.legs) if (!l.finished) l.p.be.write(copyFail('COPY refused on another shard'));
            this.clientDone = true;
          } else {
            this.started = true;
            this.client.write(buf.subarray(start, end));
          }
        }
        return;
      case Backend.CommandComplete: {
        const tag = M.decodeCommandTag(buf, start, end);
        const n = tag.slice(tag.lastIndexOf(' ') + 1);
        if (/^\d+$/.test(n)) leg.rows = BigInt(n);
        return;
      }
      case Backend.ErrorResponse:
        leg.ready = true;
        this.fail(Buffer.from(buf.subarray(start, end)));
        return;
      case Backend.NoticeResponse:
        this.client.write(buf.subarray(start, end));
        return;
      case Backend.ReadyForQuery:
        leg.finished = true;
        leg.ready = true;
        this.endIfFailedBeforeStart();
        this.check();
        return;
      default:
        return;
    }
  }

  /** The first failure wins; the COPYs still running are ended so their shards stop waiting for data. */
  private fail(error: Buffer): void {
    if (this.error) return;
    this.error = error;
    for (const l of this.legs) if (!l.finished && l.ready) l.p.be.write(copyFail('COPY failed on another shard'));
  }

  /** A CopyData, CopyDone or CopyFail from the client. */
  onClient(m: { type: number; buf: Buffer; start: number; end: number }): true {
    if (this.early) {
      this.early.push({ type: m.type, buf: Buffer.from(m.buf.subarray(m.start, m.end)), start: 0, end: m.end - m.start });
      return true;
    }
    if (this.clientDone) return true;
    if (m.type === Frontend.CopyData) {
      if (this.error) return true; // Postgres also reads and drops the rest of the data after an error
      if (!this.splitter) {
        // A reference table: every shard parses the same bytes (copied: the client's read buffer is reused).
        const data = Buffer.from(m.buf.subarray(m.start + 5, m.end));
        for (const l of this.legs) this.queue(l, data);
        this.throttle();
        return true;
      }
      try {
        const rows = this.splitter.push(m.buf.subarray(m.start + 5, m.end));
        this.sendHeader();
        this.route(rows);
      } catch (e) {
        this.fail(toPgError(e).toMessage());
      }
      this.throttle();
      return true;
    }
    if (m.type === Frontend.CopyDone && !this.error && this.splitter) {
      try {
        const rows = this.splitter.end();
        this.sendHeader();
        this.route(rows);
      } catch (e) {
        this.fail(toPgError(e).toMessage());
      }
    }
    if (!this.error) {
      for (const l of this.legs) {
        if (this.splitter instanceof BinaryCopySplitter) this.queue(l, BINARY_TRAILER);
        this.flush(l);
        l.p.be.write(Buffer.from([Frontend.CopyDone, 0, 0, 0, 4]));
      }
    } else if (m.type === Frontend.CopyFail) {
      const [reason] = M.readCString(m.buf, m.start + 5, m.end);
      this.error ??= new PgError('57014', `COPY from stdin failed: ${reason}`).toMessage();
    }
    if (m.type === Frontend.CopyFail && !this.error) {
      const [reason] = M.readCString(m.buf, m.start + 5, m.end);
      this.fail(new PgError('57014', `COPY from stdin failed: ${reason}`).toMessage());
    }
    this.clientDone = true;
    this.check();
    return true;
  }

  private sendHeader(): void {
    if (this.headerSent || !this.splitter) return;
    const h = this.splitter.takeHeader();
    if (!h) return;
    this.headerSent = true;
    for (const l of this.legs) this.queue(l, h);
  }

  private route(rows: { bytes: Buffer; key: string | Buffer | null }[]): void {
    for (const r of rows) {
      if (r.key === null)
        throw new PgError(SqlState.FeatureNotSupported, `a COPY row has NULL in the shard key column "${this.opts?.keyName}" of "${this.table}"`, {
          hint: 'Every row of a sharded table needs its shard key.',
        });
      const shard = typeof r.key === 'string' ? this.router.shardForKey(this.table, r.key) : this.router.shardForCanonical(this.binaryKey!(r.key));
      this.queue(this.byShard.get(shard)!, r.bytes);
    }
  }

  private queue(leg: Leg, bytes: Buffer): void {
    leg.out.push(bytes);
    leg.outBytes += bytes.length;
    if (leg.outBytes >= FLUSH_BYTES) this.flush(leg);
  }

  private flush(leg: Leg): void {
    if (leg.outBytes === 0) return;
    const b = Buffer.allocUnsafe(5 + leg.outBytes);
    b[0] = Frontend.CopyData;
    b.writeInt32BE(4 + leg.outBytes, 1);
    let o = 5;
    for (const part of leg.out) o += part.copy(b, o);
    leg.out = [];
    leg.outBytes = 0;
    leg.p.be.write(b);
  }

  /**
   * Memory stays bounded: while a shard takes the rows slower than the client sends them, the client's
   * socket is not read (TCP flow control then holds the client back).
   */
  private throttle(): void {
    if (this.clientPaused) return;
    const full = this.legs.find((l) => !l.finished && l.p.be.writableLength > HIGH_WATER);
    if (!full) return;
    this.clientPaused = true;
    this.client.pause();
    full.p.be.onceDrained(() => {
      if (!this.clientPaused) return;
      this.clientPaused = false;
      this.client.resume();
      this.throttle();
    });
  }

  private check(): void {
    if (!this.clientDone || !this.legs.every((l) => l.finished)) return;
    if (this.clientPaused) {
      this.clientPaused = false;
      this.client.resume();
    }
    for (const l of this.legs) l.p.be.listener = null;
    // Split rows: each shard counted its own. Every row to every shard: each counted them all.
    const rows = this.splitter ? this.legs.reduce((a, l) => a + l.rows, 0n) : (this.legs[0]?.rows ?? 0n);
    this.resolve({ rows, error: this.error });
  }
}

function copyFail(reason: string): Buffer {
  const r = Buffer.from(reason + '\0', 'utf8');
  const b = Buffer.allocUnsafe(5 + r.length);
  b[0] = Frontend.CopyFail;
  b.writeInt32BE(4 + r.length, 1);
  r.copy(b, 5);
  return b;
}
