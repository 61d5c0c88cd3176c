/**
 * Statement pipelining: single-statement reads from different clients, outside any transaction, share a
 * few backend connections. Each client's request is appended to a connection's outgoing buffer and written
 * with the others of the same event-loop turn in one syscall; Postgres answers them in order, and the
 * answers are handed back in that order (each client's up to its last ReadyForQuery).
 *
 * Why: on a loopback or LAN round trip, the cost of a proxied statement is mostly syscalls and wake-ups.
 * A leased connection costs one write and one read on the backend side per statement, and a wake-up of
 * one Postgres process per statement; a shared connection costs them once per batch. Postgres runs a
 * simple Query, or an extended-protocol batch up to its Sync, as its own implicit transaction, so requests
 * of different clients that follow each other on one connection cannot see each other's state, provided
 * each brings the connection's session settings in line first (done as on a leased connection).
 *
 * Two kinds of requests share a connection:
 * - a simple Query, queued here with its bytes (`submit`), answered to a PipelineClient;
 * - a session's extended-protocol batch (`attach`): the session writes to the connection as if it had
 *   leased it (its writes are redirected here, in order) and gets the connection's messages as its
 *   BackendListener until as many ReadyForQuery messages as it said it expects (`PipelineTicket.sent`).
 *
 * The price is head-of-line blocking: a statement waits for those queued before it on its connection.
 * A connection takes at most `depth` requests; beyond that the session leases a connection as usual.
 */
import { Backend } from '../protocol/codes.js';
import type { TxStatus } from '../protocol/codes.js';
import { PgError, SqlState } from '../protocol/errors.js';
import { decodeErrorFields, queryMessage } from '../protocol/messages.js';
import type { BackendConnection, BackendListener } from './backend.js';
import { stateSyncSql } from './state-sync.js';

/** The session side of a pipelined simple Query. */
export interface PipelineClient {
  /** Bytes of this client's answer, in order; `from` is the connection whose read buffer holds them. */
  pipelined(type: number, buf: Buffer, start: number, end: number, from: BackendConnection): void;
  /** The end of a read from the connection: what was handed over so far is written out. */
  pipelineChunkDone(): void;
  /** The answer is complete (after its ReadyForQuery); `error` is the SQLSTATE if it failed. */
  pipelineDone(status: TxStatus, error: string | null): void;
  /** The connection died before the answer was complete. */
  pipelineLost(err: PgError): void;
}

interface Entry {
  /** A simple Query's client, or null for an attached session (`listener`). */
  client: PipelineClient | null;
  listener: BackendListener | null;
  /** ReadyForQuery messages still to come for this entry (an attached session's: set by `sent`). */
  rfqs: number;
  /** ReadyForQuery messages of pgshard's own statements (settings) to swallow before a client's answer. */
  swallow: number;
  /** The client went away: its answer is read and dropped. */
  gone: boolean;
  error: string | null;
}

/** The pool operations the pipeline needs (a narrow view of ShardPool). */
export interface PipelinePool {
  tryAcquire(): BackendConnection | null;
  /** Opens a connection in the background when none is idle, so that a later submit finds one. */
  prepareOne(): void;
  release(c: BackendConnection): void;
  destroy(c: BackendConnection): void;
}

const OUT_BYTES = 16 * 1024;

class PipelinedConnection implements BackendListener {
  readonly takesReusedChunks = true;
  readonly entries: Entry[] = [];
  private head = 0;
  /** Never referenced by the socket between flushes (see flush), so it may go to the next connection. */
  out: Buffer;
  private outLen = 0;
  private scheduled = false;
  private current: Entry | null = null;

  constructor(readonly be: BackendConnection, private readonly lane: Pipeline, out: Buffer | undefined) {
    this.out = out ?? Buffer.allocUnsafe(OUT_BYTES);
    be.listener = this;
    // What an attached session writes joins the queue's bytes, in the order of the entries.
    be.redirect = (b) => this.append(b, 0);
  }

  /** Back to being an ordinary connection (it leaves the pipeline). */
  detach(): void {
    this.be.redirect = null;
  }

  get inFlight(): number {
    return this.entries.length - this.head;
  }

  /** Nothing queued, nothing waiting to be written. */
  get idleNow(): boolean {
    return this.head === this.entries.length && this.outLen === 0;
  }

  /** The entry whose answer is being read now. */
  get running(): Entry | null {
    return this.head < this.entries.length ? this.entries[this.head]! : null;
  }

  enqueue(e: Entry, query: Buffer, start: number, end: number, sync: string | null): void {
    if (sync !== null) {
      this.append(queryMessage(sync), 0);
      e.swallow = 1;
    }
    // A simple Query destroys the unnamed prepared statement: whoever parsed one here must parse again.
    this.be.unnamedKey = null;
    this.entries.push(e);
    this.append(query, start, end);
    this.flushSoon();
  }

  push(e: Entry): void {
    this.entries.push(e);
  }

  /** The first request on an idle connection goes out now; later ones with the others of this turn. */
  flushSoon(): void {
    if (this.inFlight === 1) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushLater);
    }
  }

  private append(b: Buffer, start: number, end = b.length): void {
    const n = end - start;
    if (this.outLen + n > this.out.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.outLen + n));
      this.out.copy(bigger, 0, 0, this.outLen);
      this.out = bigger;
    }
    b.copy(this.out, this.outLen, start, end);
    this.outLen += n;
  }

  private readonly flushLater = (): void => {
    this.scheduled = false;
    this.flush();
  };

  private flush(): void {
    if (this.outLen === 0) return;
    const bytes = this.out.subarray(0, this.outLen);
    this.be.sendNow(bytes);
    this.outLen = 0;
    // The socket kept a reference to what the kernel did not take: the next batch goes to new memory.
    if (this.be.socketBacklog > 0) this.out = Buffer.allocUnsafe(OUT_BYTES);
  }

  message(type: number, buf: Buffer, start: number, end: number): void {
    const e = this.running;
    if (e === null) return; // nothing asked: an unsolicited message (the connection is checked at release)
    if (e.listener !== null) return this.toListener(e, e.listener, type, buf, start, end);
    if (e.swallow > 0) {
      if (type === Backend.ReadyForQuery) e.swallow--;
      return;
    }
    if (type === Backend.ErrorResponse && e.error === null) e.error = decodeErrorFields(buf, start, end).C ?? SqlState.InternalError;
    const client = e.client!;
    if (!e.gone) {
      this.switchTo(e);
      client.pipelined(type, buf, start, end, this.be);
    }
    if (type !== Backend.ReadyForQuery) return;
    this.advance();
    const status = String.fromCharCode(buf[start + 5]!) as TxStatus;
    if (!e.gone) client.pipelineDone(status, e.error);
    this.afterRequest(status);
  }

  private toListener(e: Entry, l: BackendListener, type: number, buf: Buffer, start: number, end: number): void {
    const last = type === Backend.ReadyForQuery && --e.rfqs === 0;
    if (!e.gone) {
      this.switchTo(e);
      if (last) this.current = null;
      l.message(type, buf, start, end);
    }
    if (!last) return;
    if (this.running === e) this.advance(); // (a session that lost the connection meanwhile emptied the queue)
    this.afterRequest(String.fromCharCode(buf[start + 5]!) as TxStatus);
  }

  /** The answer being read now belongs to `e`: what the previous entry got so far is written out first. */
  private switchTo(e: Entry): void {
    if (this.current === e) return;
    const prev = this.current;
    this.current = e;
    if (prev !== null && !prev.gone) prev.client?.pipelineChunkDone();
  }

  private advance(): void {
    this.head++;
    if (this.head === this.entries.length) {
      this.entries.length = 0;
      this.head = 0;
    }
    this.current = null;
  }

  private afterRequest(status: TxStatus): void {
    // Only work outside a transaction is pipelined: anything else leaves the connection unusable.
    if (status !== 'I') this.lane.drop(this, true);
    else if (this.inFlight === 0 && this.outLen === 0) this.lane.idle();
  }

  chunkDone(buf: Buffer): void {
    const e = this.current;
    if (e === null) return;
    this.current = null;
    if (e.gone) return;
    if (e.client !== null) e.client.pipelineChunkDone();
    else e.listener!.chunkDone(buf);
  }

  lost(err: PgError): void {
    this.lane.drop(this, true);
    const waiting = this.entries.slice(this.head);
    this.entries.length = 0;
    this.head = 0;
    this.current = null;
    for (const e of waiting) {
      if (e.gone) continue;
      if (e.client !== null) e.client.pipelineLost(err);
      else e.listener!.lost(err);
    }
  }
}

export class Pipeline {
  private readonly conns: PipelinedConnection[] = [];
  /** Outgoing buffers of connections that left, for the next ones (at low load one joins per request). */
  private readonly spareOut: Buffer[] = [];
  /** Requests queued on a shared connection so far (a metric). */
  submitted = 0;
  private readonly growAt: number;

  constructor(
    private readonly pool: PipelinePool,
    /** How many connections of the pool may carry pipelined requests at once. */
    private readonly maxConnections: number,
    /** How many requests may be outstanding on one of them. */
    private readonly depth: number,
  ) {
    this.growAt = Math.max(1, Math.floor(depth / 2));
  }

  get enabled(): boolean {
    return this.maxConnections > 0;
  }

  /** The connection the next request goes to, or null when none can take it now. */
  private pick(): PipelinedConnection | null {
    let best: PipelinedConnection | null = null;
    for (const c of this.conns) if (best === null || c.inFlight < best.inFlight) best = c;
    // Another connection only once the least busy one is half full: Postgres's cost per statement falls
    // with the batch (one wake-up, one read for the lot), and a connection per few statements loses that.
    if (best === null || (best.inFlight >= this.growAt && this.conns.length < this.maxConnections)) {
      const be = this.pool.tryAcquire();
      if (be !== null) {
        best = new PipelinedConnection(be, this, this.spareOut.pop());
        this.conns.push(best);
      } else this.pool.prepareOne();
    }
    if (best === null || best.inFlight >= this.depth) return null;
    this.submitted++;
    return best;
  }

  /**
   * Queues a simple Query (its bytes are copied) on a shared connection whose settings are brought in line
   * with `vars`; null when none can take it now (the caller leases a connection instead).
   */
  submit(client: PipelineClient, vars: ReadonlyMap<string, string>, query: Buffer, start: number, end: number): PipelineTicket | null {
    const c = this.pick();
    if (c === null) return null;
    const e: Entry = { client, listener: null, rfqs: 1, swallow: 0, gone: false, error: null };
    c.enqueue(e, query, start, end, stateSyncSql(vars, c.be));
    return new PipelineTicket(c, e);
  }

  /**
   * A place in a shared connection's queue for a session that then writes to `ticket.backend` as to a
   * leased connection and says with `ticket.sent(n)` how many ReadyForQuery messages its writes produce;
   * until then nothing of the connection's is written. Null when no connection can take it now.
   */
  attach(listener: BackendListener): PipelineTicket | null {
    const c = this.pick();
    if (c === null) return null;
    const e: Entry = { client: null, listener, rfqs: 0, swallow: 0, gone: false, error: null };
    c.push(e);
    return new PipelineTicket(c, e);
  }

  private sweepScheduled = false;

  /**
   * A connection ran out of work. It goes back to the pool after this event-loop turn if nothing was
   * queued on it meanwhile: under load its next request usually arrives in the same turn, and handing it
   * back and taking it again per statement costs more than the statement's own forwarding.
   */
  idle(): void {
    if (this.sweepScheduled) return;
    this.sweepScheduled = true;
    setImmediate(this.releaseIdle);
  }

  private readonly releaseIdle = (): void => {
    this.sweepScheduled = false;
    for (let i = this.conns.length - 1; i >= 0; i--) {
      const c = this.conns[i]!;
      if (c.inFlight === 0 && c.idleNow) this.drop(c, false);
    }
  };

  /** Takes a connection out of the pipeline: back to the pool when it is idle and healthy, else closed. */
  drop(c: PipelinedConnection, broken: boolean): void {
    const i = this.conns.indexOf(c);
    if (i < 0) return;
    this.conns.splice(i, 1);
    c.detach();
    if (this.spareOut.length < this.maxConnections && c.out.length === OUT_BYTES) this.spareOut.push(c.out);
    if (broken) this.pool.destroy(c.be);
    else this.pool.release(c.be);
  }

  /** Connections carrying pipelined requests now, and the requests outstanding on them. */
  stats(): { connections: number; inFlight: number } {
    let inFlight = 0;
    for (const c of this.conns) inFlight += c.inFlight;
    return { connections: this.conns.length, inFlight };
  }
}

/** A session's handle on its queued request. */
export class PipelineTicket {
  constructor(private readonly conn: PipelinedConnection, private readonly entry: Entry) {}

  /** Whether Postgres is running this request now (nothing ahead of it on its connection). */
  get running(): boolean {
    return this.conn.running === this.entry;
  }

  get backend(): BackendConnection {
    return this.conn.be;
  }

  /** An attached session wrote its request, which `rfqs` ReadyForQuery messages will answer. */
  sent(rfqs: number): void {
    this.entry.rfqs = rfqs;
    this.conn.flushSoon();
  }

  /** The client no longer wants the answer (it disconnected): it is read and dropped. */
  forget(): void {
    this.entry.gone = true;
  }

  /**
   * Gives up on the connection (its shard sends nothing): every request queued on it fails with `err`,
   * this one included, and the connection is closed.
   */
  abandon(err: PgError): void {
    this.conn.lost(err);
  }
}
