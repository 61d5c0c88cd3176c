/**
 * One client session after authentication: reads frontend messages, asks analysis and the router where
 * each request goes, leases a backend connection from that shard's pool (for one transaction in
 * transaction pooling), and forwards the backend's answers as the bytes they arrived in.
 *
 * Answers must reach the client in the order of its requests even though some are produced by pgshard
 * itself (an error it raises, a ParseComplete for a statement already prepared on the backend). So every
 * message sent to a backend leaves an expectation in a FIFO, and pgshard's own answers take their place in
 * the same FIFO; each backend message is matched against the head.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { Framer, FrameTooLarge, type FrameSink } from '../protocol/framer.js';
import { Backend, Frontend, type TxStatus } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import type { BackendConnection, BackendListener } from '../pool/backend.js';
import { sendCancel } from '../pool/backend.js';
import type { SessionActivity, TimedSession } from './timeouts.js';
import { runQuery } from '../pool/internal-query.js';
import type { ShardPool } from '../pool/pool.js';
import type { PipelineClient, PipelineTicket } from '../pool/pipeline.js';
import type { Analysis, MergePlan, RoutingHint, SessionEffect, StatementInfo } from '../sql/types.js';
import type { BindParams } from '../routing/keys.js';
import type { Router, Target } from '../routing/router.js';
import type { CutoverGate } from '../rebalance/gate.js';
import { quoteIdent, stateSyncSql } from '../pool/state-sync.js';
import { ScatterQuery } from '../execute/scatter.js';
import { splitInsert } from '../sql/split-insert.js';
import { ReturningOrder } from '../execute/returning-order.js';
import { rewriteWithGeneratedKey } from '../sql/generate-key.js';
import { ShardedCopy } from '../execute/copy-in.js';
import { copyOptionsFromAst, type CopyOptions } from '../execute/copy-split.js';
import { parseSync, type CopyStmt } from 'libpg-query';
import type { Participant, TransactionCoordinator } from '../execute/two-phase.js';
import { buildParse, replaceName, statementKey, type ClientStatement } from './statements.js';
import { finishRequest, NO_SHARD, routeKindOf, routeKindOfStatement, startRequest, statementTypeOf, transactionKind, type ProxyObserver, type RequestTiming, type StatementType } from '../admin/observer.js';
import type { NotificationHub, NotificationSubscriber } from './notifications.js';
import { queryFacts } from './query-facts.js';
import { readClientDirectly } from './client-reader.js';
import type { ChunkReader } from '../pool/chunk-reader.js';

export interface SessionServices {
  pools: Map<string, ShardPool>;
  router: Router;
  analyze(sql: string): Analysis;
  poolMode: 'transaction' | 'session';
  maxMessageBytes: number;
  maxPreparedStatements: number;
  dryRun: boolean;
  /** A table definition may have changed (DDL committed): routing facts learned from catalogs are stale. */
  schemaChanged(): Promise<void>;
  /** Told about requests, errors, transactions and checkouts (the metrics). */
  observer: ProxyObserver;
  coordinator: TransactionCoordinator;
  /** The shared analysis of a simple Query's literal shape, with its literals as parameters; null: none. */
  shaped(sql: string): { analysis: Analysis; params: BindParams } | null;
  /** Analysis of a statement text pgshard wrote itself (not cached). */
  analyzeOnce(sql: string): Analysis;
  /** The next generated key of that kind. */
  nextId(variant: 'int64' | 'int53'): bigint;
  /** Statements slower than this are logged (text truncated, parameters never). */
  slowStatementMs: number;
  /** Lock waits in transactions on several shards are bounded by this (ms; 0 = unbounded). */
  deadlockTimeoutMs: number;
  /** Column order of a sharded table, as learned from a shard's catalog (for COPY without a column list). */
  columnsOf(table: string): readonly string[] | undefined;
  /** LISTEN on pgshard's own connections to every shard (transaction pooling only). */
  notifications: NotificationHub;
  /** Holds statements on moving keys while a rebalance cuts over (src/rebalance/gate.ts). */
  gate: CutoverGate;
}

export interface ClientInfo {
  id: number;
  user: string;
  database: string;
  applicationName: string;
  remote: string;
  /** Date.now() when the connection was accepted (SHOW CLIENTS). */
  connectedAt?: number;
}

/** What a message sent to the backend will be answered with, and what to do with the answer. */
type ExpectKind = 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync';
interface Expectation {
  kind: ExpectKind | 'synthetic';
  /** Internal work (session-state sync, a deferred BEGIN, an injected Parse): answers are not forwarded. */
  swallow: boolean;
  /** pgshard's own answer, written when this expectation reaches the head. */
  synthetic?: () => Buffer;
  /** The backend's ErrorResponse is replaced by this one (a refusal delivered through the backend). */
  replaceError?: Buffer;
  /** Session effects to apply as statements complete (simple Query: one per statement; Execute: one). */
  effects?: readonly (SessionEffect | undefined)[];
  effectIndex?: number;
  /** One statement run on several shards: answers are combined into one (see runBroadcast). */
  gather?: Gather;
  /** A row written right after the RowDescription (EXPLAIN's line naming the shard). */
  prependRow?: Buffer;
  /** An internal statement expected to fail (recreating a failed transaction): no warning. */
  quiet?: boolean;
  /** For an injected or forwarded named Parse: forget the statement on the backend if it fails. */
  parsedKey?: string;
  /** A client request to report to the observer when it completes. */
  request?: RequestTiming;
  /** Its statement text, for the slow-statement log. */
  sql?: string;
  /** A Parse into the backend's unnamed slot: if it is not carried out, the slot's content is unknown. */
  unnamedParse?: boolean;
  /** Run when the message completed (ParseComplete, CloseComplete, or pgshard's own answer was written). */
  onDone?: () => void;
}

/** The combined answer of a statement broadcast to several shards. */
interface Gather {
  rowDescriptionSent: boolean;
  verb: string | null;
  count: bigint;
  failed: boolean;
  /** Every shard answers for the same rows (a reference table): the first answer is the answer. */
  same: boolean;
  /** Extended protocol: which of the first shard's ParseComplete/BindComplete/descriptions the client asked for. */
  firstOnly?: { parse: boolean; describe: boolean; done: boolean };
  /** A split INSERT: its RETURNING rows are held and given in VALUES order at the end. */
  order?: ReturningOrder;
}

interface FrontendMessage {
  type: number;
  buf: Buffer;
  start: number;
  end: number;
  /** A Parse message as read (see readParse): a batch looks at its Parses more than once. */
  parsed?: { name: string; st: ClientStatement };
  /** A Bind message's parameters as decoded (see readBind), for the same reason. */
  params?: BindParams;
}

/** A statement after it was bound: where its Executes go. */
interface PortalInfo {
  statement: ClientStatement;
  params: BindParams | null;
}

/** A statement that fails on any shard (a syntax error): puts a participant's transaction in the failed state. */
const FAILING_SQL = 'pgshard refused statement (';

function inFailedTransaction(): PgError {
  return new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block');
}

const FAILING_PARSE_NAME = 'pgshard_refused';
// A Parse that fails on any server: used to put the backend's transaction into the failed state exactly
// where pgshard refuses a statement, so what follows (up to Sync, or the transaction's end) is skipped
// there as Postgres would skip it. Its error is replaced by pgshard's own.
const FAILING_PARSE = buildParse(FAILING_PARSE_NAME, { key: '', text: 'pgshard refused statement (', paramTypes: Buffer.from([0, 0]), analysis: { statements: [], hint: null, parseError: null } });
const FAILING_QUERY = M.queryMessage('pgshard refused statement (');
const SYNC = Buffer.from([Frontend.Sync, 0, 0, 0, 4]);
const FLUSH = Buffer.from([Frontend.Flush, 0, 0, 0, 4]);

export class ClientSession implements BackendListener, PipelineClient, NotificationSubscriber, TimedSession {
  /** Backend bytes are only forwarded (flushRun), which holds the chunk when the client's socket keeps it. */
  readonly takesReusedChunks = true;
  framer: Framer;
  /** Set when the client socket reads into a reused buffer (client-reader.ts). */
  private clientReader: ChunkReader | null = null;
  /** The chunk being read held only simple Queries (the one kind of message known to keep no reference to it). */
  private chunkOnlyQueries = true;
  // Counted, not timed: the timeout sweep (timeouts.ts) compares them between its passes.
  clientReads = 0;
  backendReads = 0;
  private queue: FrontendMessage[] = [];
  private busy = false; // an async step (checkout) is under way; the queue waits
  private closed = false;
  private paused = false;

  // The leased backend and what is outstanding on it.
  private backend: BackendConnection | null = null;
  private backendPool: ShardPool | null = null;
  private expect: Expectation[] = [];
  private expectHead = 0;
  private syncPoints = 0; // Query and Sync messages sent and not yet answered with ReadyForQuery
  private extendedOpen = false; // extended messages sent without a Sync yet (after a Flush)
  private copyIn = false;
  private idleWaiters: (() => void)[] = [];

  // Extended-protocol messages gathered until Sync or Flush.
  private batch: FrontendMessage[] = [];
  private batchBytes = 0;

  // Session state replayed on every backend: GUC name → SET statement.
  readonly vars = new Map<string, string>();
  private pendingEffects: SessionEffect[] = [];
  private errorInUnit = false;
  private statements = new Map<string, ClientStatement>();
  private unnamed: ClientStatement | null = null;
  private portals = new Map<string, PortalInfo>();
  private sessionShard: string | null = null;
  homeShard: string;

  // A transaction on several shards: the participants not receiving statements right now, the current
  // one's writes, the BEGIN that started it (replayed on shards that join), its active savepoints.
  private parked = new Map<string, Participant>();
  private curWrote = false;
  private joinTx = false;
  private beginSql = 'BEGIN';
  private savepoints: string[] = [];
  private parkedLost: PgError | null = null;

  // Transaction state while no backend holds it: a BEGIN not yet sent, or a transaction pgshard failed.
  private localTx: 'none' | 'begin-pending' | 'failed' = 'none';
  private pendingBegin: string | null = null;
  private txShard: string | null = null;

  // Output coalescing: contiguous forwarded backend bytes are written with one call.
  private runBuf: Buffer | null = null;
  private runFrom: BackendConnection | null = null;
  private runStart = 0;
  private runEnd = 0;
  private scatter: ScatterQuery | null = null;

  // A statement queued on a shared connection (pool/pipeline.ts): the queue waits until it is answered.
  private ticket: PipelineTicket | null = null;
  /** The ticket is an extended-protocol batch written to the shared connection as if leased (this.backend). */
  private ticketAttached = false;
  private ticketRequest: RequestTiming | undefined = undefined;
  private ticketSql: string | undefined = undefined;

  constructor(
    readonly socket: Socket,
    readonly info: ClientInfo,
    readonly key: { pid: number; secret: number },
    private readonly svc: SessionServices,
    private readonly log: Logger,
    startupVars: Map<string, string>,
  ) {
    this.framer = new Framer(svc.maxMessageBytes);
    for (const [k, v] of startupVars) this.vars.set(k, v);
    const ids = svc.router.shardIds;
    this.homeShard = ids[info.id % ids.length]!;
  }

  /**
   * Finishes the login as Postgres does, with the ParameterStatus values a backend reports once the
   * client's startup settings are applied there, then BackendKeyData and ReadyForQuery.
   */
  async login(): Promise<void> {
    // A home shard that cannot be reached is passed over for the next: a shard down must not keep
    // clients from logging in (their statements for that shard still fail until it is back).
    const ids = this.svc.router.shardIds;
    for (let tried = 1; ; tried++) {
      try {
        const ready = this.useShard(this.homeShard);
        if (ready !== true && ready !== false) await ready;
        break;
      } catch (e) {
        if (tried >= ids.length || !toPgError(e).code.startsWith('08')) throw e;
        this.homeShard = ids[(ids.indexOf(this.homeShard) + 1) % ids.length]!;
      }
    }
    const be = this.backend!;
    this.sendPreamble();
    this.push({
      kind: 'synthetic',
      swallow: false,
      synthetic: () => {
        const parts: Buffer[] = [];
        for (const [k, v] of be.params) parts.push(M.parameterStatus(k, v));
        parts.push(M.backendKeyData(this.key.pid, this.key.secret), M.readyForQuery('I'));
        return Buffer.concat(parts);
      },
    });
    this.advance();
    if (this.syncPoints === 0 && this.svc.poolMode === 'transaction') this.releaseBackend();
  }

  /** Called once authentication is done and the socket's data is ours. */
  start(leftover: Buffer | null): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('close', () => this.onClientClose());
    this.socket.on('error', () => this.onClientClose());
    this.socket.on('drain', () => this.resumeBackend());
    this.clientReader = readClientDirectly(this.socket, (chunk) => this.onReusedChunk(chunk));
    if (this.clientReader) this.framer = new Framer(this.svc.maxMessageBytes, true);
    if (leftover && leftover.length) this.onData(leftover);
  }

  /**
   * A chunk in the client reader's buffer. Its memory is read into again unless something may still
   * reference it: messages waiting in the queue or batch, a write to the backend the kernel did not take
   * at once, or any message other than a simple Query (statements, portals and COPY keep their bytes).
   */
  private onReusedChunk(chunk: Buffer): void {
    // Extended-protocol messages stay referenced (batch, statements, portals): such a chunk is copied, a
    // small allocation, instead of giving up the reader's 64 KiB buffer (whose replacement per read made
    // the garbage collector the largest cost of a prepared statement).
    if (!startsWithQueriesOnly(chunk)) {
      this.onData(Buffer.from(chunk));
      return;
    }
    this.chunkOnlyQueries = true;
    this.onData(chunk);
    const be = this.backend;
    if (!this.chunkOnlyQueries || this.busy || this.queue.length > 0 || this.batch.length > 0 || this.copy !== null || (be !== null && be.writableLength > 0))
      this.clientReader!.hold();
  }

  private onData(chunk: Buffer): void {
    this.clientReads++;
    try {
      this.framer.feed(chunk, this.clientSink);
    } catch (e) {
      if (e instanceof FrameTooLarge) {
        this.fatal(
          new PgError(SqlState.ProtocolViolation, `invalid message length ${e.length} for message type '${String.fromCharCode(e.type)}'`, {
            detail: `pgshard accepts messages up to ${this.svc.maxMessageBytes} bytes (limits.max_message_bytes).`,
            severity: 'FATAL',
          }),
        );
      } else this.fatal(toPgError(e));
    }
  }

  private readonly clientSink: FrameSink = {
    message: (type, buf, start, end) => this.onClientMessage(type, buf, start, end),
  };

  private onClientMessage(type: number, buf: Buffer, start: number, end: number): void {
    if (type !== Frontend.Query) this.chunkOnlyQueries = false;
    if (this.skipUntilSync) {
      // After an error pgshard raised without a Sync, Postgres discards messages up to the Sync.
      if (type !== Frontend.Sync) return;
      this.skipUntilSync = false;
      if (!this.backend) {
        this.writeClient([M.readyForQuery(this.currentStatus())]);
        return;
      }
    }
    // A sharded COPY runs while the session is busy with it: its data must not wait behind it.
    if (this.copy && (type === Frontend.CopyData || type === Frontend.CopyDone || type === Frontend.CopyFail) && this.queue.length === 0) {
      this.copy.onClient({ type, buf, start, end });
      return;
    }
    this.queue.push({ type, buf, start, end, parsed: undefined, params: undefined });
    if (!this.busy) this.pump();
    if (this.queue.length > 2000 && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private pump(): void {
    while (!this.busy && this.ticket === null && !this.closed && this.queue.length > 0) {
      const m = this.queue[0]!;
      let r: boolean | Promise<void>;
      try {
        r = this.step(m);
      } catch (e) {
        this.queue.shift();
        this.internalError(e);
        continue;
      }
      if (r === false) return; // waiting for the backend to finish; idle() resumes the pump
      this.queue.shift();
      if (r !== true) {
        this.busy = true;
        r.then(
          () => {
            this.busy = false;
            this.pump();
          },
          (e) => {
            this.busy = false;
            this.internalError(e);
            this.pump();
          },
        );
        return;
      }
    }
    this.maybeRelease();
    if (this.pendingNotifications.length) this.flushNotifications();
    if (this.paused && this.queue.length < 200) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private internalError(e: unknown): void {
    const err = toPgError(e);
    if (err.code === SqlState.InternalError) this.log.error({ err: e }, 'internal error in session');
    this.replyError(err, true);
  }

  /**
   * Handles the head of the queue. true: done; false: must wait until the backend is idle; a promise:
   * an asynchronous step is under way.
   */
  private step(m: FrontendMessage): boolean | Promise<void> {
    switch (m.type) {
      case Frontend.Query:
        if (this.batch.length) return this.flushBatchFirst(m);
        return this.onQuery(m);
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Execute:
      case Frontend.Close:
        this.batch.push(m);
        this.batchBytes += m.end - m.start;
        // Bound what is held: a client that never sends Sync still gets its messages run (when the
        // backend can take them now; otherwise at the next message).
        if (this.batch.length >= 1000 || this.batchBytes > 8 << 20) {
          const r = this.dispatchBatch(null, false);
          return r === false ? true : r;
        }
        return true;
      case Frontend.Sync:
        return this.dispatchBatch(m, true);
      case Frontend.Flush:
        if (this.batch.length === 0) {
          if (this.backend) this.backend.write(m.buf.subarray(m.start, m.end));
          return true;
        }
        return this.dispatchBatch(m, false);
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        if (this.copy) return this.copy.onClient(m);
        // COPY FROM STDIN data goes to the backend running the COPY; outside COPY, Postgres ignores it.
        if (this.backend && this.copyIn) this.backend.write(m.buf.subarray(m.start, m.end));
        if (m.type !== Frontend.CopyData) this.copyIn = false;
        return true;
      case Frontend.Terminate:
        this.terminate();
        return true;
      case Frontend.FunctionCall:
        return this.onFunctionCall(m);
      case Frontend.Password:
        this.fatal(new PgError(SqlState.ProtocolViolation, 'unexpected password message after authentication', { severity: 'FATAL' }));
        return true;
      default:
        this.fatal(new PgError(SqlState.ProtocolViolation, `invalid frontend message type ${m.type}`, { severity: 'FATAL' }));
        return true;
    }
  }

  /** A Query while extended messages wait for Sync: run them first, as Postgres would, then the Query. */
  private flushBatchFirst(m: FrontendMessage): boolean | Promise<void> {
    const r = this.dispatchBatch(null, false);
    if (r === false) return false;
    if (r === true) return this.onQuery(m);
    // The pump takes the Query off the queue when a promise is returned: put it back to run next.
    return r.then(() => void this.queue.unshift(m));
  }

  // ---------------------------------------------------------------- simple Query

  private onQuery(m: FrontendMessage, given?: Analysis): boolean | Promise<void> {
    const text = m.buf.toString('utf8', m.start + 5, m.end - 1);
    // Statements that differ only in their literals share one analysis (literals become bind values).
    const fast = given ? null : this.svc.shaped(text);
    const analysis = given ?? fast?.analysis ?? this.svc.analyze(text);
    const stmts = analysis.statements;

    // A table whose key pgshard generates: add the key (one id per row), then route as any INSERT.
    if (stmts.length === 1 && stmts[0]!.generateKey) {
      const g = stmts[0]!.generateKey;
      let sql: string;
      try {
        sql = rewriteWithGeneratedKey(text, g.column, () => this.svc.nextId(g.variant)).sql;
      } catch (e) {
        return this.refuse(toPgError(e));
      }
      const q = M.queryMessage(sql);
      return this.onQuery({ type: Frontend.Query, buf: q, start: 0, end: q.length }, this.svc.analyzeOnce(sql));
    }
    if (stmts.length === 1 && analysis.parseError === null && this.svc.poolMode === 'transaction') {
      const eff = stmts[0]!.session;
      if (eff?.type === 'listen' || eff?.type === 'unlisten') {
        if (this.backend && !this.idleBackend()) return false;
        const tag = stmts[0]!.tag;
        return this.runListen(eff).then((err) => {
          if (err) this.replyError(err, false);
          else this.replyLocal([M.commandComplete(tag)], this.currentStatus());
        });
      }
    }
    // Statements pgshard answers itself.
    if (stmts.length === 1 && analysis.parseError === null) {
      const st = stmts[0]!;
      const local = this.localAnswer(st, text);
      if (local) {
        if (this.backend && !this.idleBackend()) return false;
        const timing = startRequest(NO_SHARD, 'admin', statementTypeOf(st.tag));
        local();
        finishRequest(this.svc.observer, timing);
        return true;
      }
    }
    if (stmts.length === 1 && analysis.parseError === null && this.parked.size > 0) {
      const tx = stmts[0]!.tx;
      if (tx?.type === 'commit' || tx?.type === 'rollback') {
        if (this.backend && !this.idleBackend()) return false;
        return this.endDistributed(tx.type === 'commit', (tag, err) => this.replyLocal([err ? err.toMessage() : M.commandComplete(tag!)], 'I'));
      }
      if (tx?.type === 'other') return this.refuse(new PgError(SqlState.FeatureNotSupported, `${stmts[0]!.tag} in a transaction on several shards is not supported`));
      if ((tx?.type === 'savepoint' || tx?.type === 'release' || tx?.type === 'rollback-to') && !this.rebroadcast) {
        if (this.backend && !this.idleBackend()) return false;
        // Savepoints span every participant: the parked ones first, then the statement goes on as usual.
        const sql = text;
        return this.runOnParked(sql).then(() => void this.queue.unshift(m));
      }
    }
    if (this.localTx === 'failed') {
      if (this.backend && !this.idleBackend()) return false;
      this.svc.observer.error(SqlState.InFailedSqlTransaction);
      this.replyLocal(
        [new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block').toMessage()],
        'E',
      );
      return true;
    }

    if (this.svc.gate.active) {
      const held = this.holdAtGate(analysis.statements, analysis.hint, fast?.params ?? null);
      if (held) return held.then(() => void this.queue.unshift(m));
    }
    const target = this.routeStatements(analysis, fast?.params ?? null);
    if (this.svc.dryRun) this.log.info({ route: describeTarget(target), sql: text.slice(0, 200) }, 'route');
    if (target.kind === 'error') return this.refuse(target.error);
    const one = stmts.length === 1 ? stmts[0] : undefined;
    if (target.kind === 'scatter') return this.runScatter(m, target.shards, target.merge ?? null, statementTypeOf(one?.tag));
    if (target.kind === 'broadcast') {
      const request = startRequest(target.shards, routeKindOf(target, one, this.svc.router.shardIds.length), statementTypeOf(one?.tag));
      return this.runBroadcast(target.shards.map((shard) => ({ shard, text })), target.transactional, target.reference === true).finally(() => finishRequest(this.svc.observer, request));
    }
    if (target.kind === 'copy-in') return this.startCopyIn(text, target.table, target.keyColumn);
    if (target.kind === 'split-insert') {
      let parts: Map<string, string>;
      try {
        parts = splitInsert(text, target.rowShards);
      } catch (e) {
        return this.refuse(toPgError(e));
      }
      const request = startRequest([...parts.keys()], 'multi', statementTypeOf(one?.tag));
      return this.runBroadcast([...parts].map(([shard, t]) => ({ shard, text: t })), true, false, new ReturningOrder(target.rowShards)).finally(() => this.finishTimed(request, text));
    }
    const shard = target.kind === 'shard' ? target.shard : this.defaultShard();
    if ((target.kind === 'shard' || target.kind === 'home') && this.pipelines(analysis) && this.pipeline(m, shard, target, one, text)) return true;
    const ready = this.useShard(shard);
    if (ready === false) return false;
    if (ready === true) {
      this.sendQuery(m, analysis, target, text);
      return true;
    }
    return ready.then(() => this.sendQuery(m, analysis, target, text));
  }

  /**
   * Whether this session may put its next request on a shared connection (pool/pipeline.ts): it holds no
   * connection, is in no transaction and owes no session state, and has nothing else waiting (a client
   * pipelining its own requests keeps them back to back on a connection of its own).
   */
  private mayShare(): boolean {
    return (
      this.backend === null &&
      !this.extendedOpen &&
      this.svc.poolMode === 'transaction' &&
      this.parked.size === 0 &&
      this.localTx === 'none' &&
      this.txShard === null &&
      !this.svc.gate.active &&
      this.pendingEffects.length === 0 &&
      this.queue.length <= 1
    );
  }

  /** A simple Query that may be pipelined: one statement that shares() allows. */
  private pipelines(analysis: Analysis): boolean {
    return analysis.parseError === null && analysis.statements.length === 1 && shares(analysis.statements[0]!) && this.mayShare();
  }

  /** An extended-protocol batch that may be pipelined: Parse/Bind/Describe, one Execute that shares() allows, Sync. */
  private sharesBatch(msgs: FrontendMessage[], portals: ReadonlyMap<string, PortalInfo>): boolean {
    if (!this.mayShare()) return false;
    let executes = 0;
    for (const m of msgs) {
      if (m.type === Frontend.Execute) {
        executes++;
        const a = portals.get(readPortalName(m))?.statement.analysis;
        if (!a || a.parseError !== null || a.statements.length !== 1 || !shares(a.statements[0]!)) return false;
      } else if (m.type !== Frontend.Parse && m.type !== Frontend.Bind && m.type !== Frontend.Describe && m.type !== Frontend.Sync) return false;
    }
    return executes === 1;
  }

  /** Takes a place on one of the shard's shared connections and uses it as if leased; false when none can take it. */
  private attachShared(shard: string): boolean {
    const pool = this.svc.pools.get(shard);
    if (!pool || !pool.pipeline.enabled) return false;
    const ticket = pool.pipeline.attach(this);
    if (ticket === null) return false;
    this.ticket = ticket;
    this.ticketAttached = true;
    this.curLockBound = false;
    this.backend = ticket.backend;
    this.backendPool = pool;
    this.curWrote = false;
    this.preambleDone = false;
    this.resetExpectations();
    return true;
  }

  /** Queues the Query on one of the shard's shared connections; false when none can take it now. */
  private pipeline(m: FrontendMessage, shard: string, target: Target, one: StatementInfo | undefined, text: string): boolean {
    const pool = this.svc.pools.get(shard);
    if (!pool || !pool.pipeline.enabled) return false;
    const ticket = pool.pipeline.submit(this, this.vars, m.buf, m.start, m.end);
    if (ticket === null) return false;
    this.ticket = ticket;
    this.ticketRequest = startRequest(shard, routeKindOf(target, one, this.svc.router.shardIds.length), statementTypeOf(one?.tag));
    this.ticketSql = this.svc.slowStatementMs > 0 ? text : undefined;
    return true;
  }

  pipelined(type: number, buf: Buffer, start: number, end: number, from: BackendConnection): void {
    if (type === Backend.ErrorResponse) {
      const f = M.decodeErrorFields(buf, start, end);
      if (f.S === 'FATAL' || f.S === 'PANIC') {
        // As on a leased connection: the shard's connection is going away, not the client's session.
        this.fatalForwarded = true;
        this.flushRun();
        this.socket.write(fatalAsError(f));
        return;
      }
    }
    this.forward(buf, start, end, from);
  }

  pipelineChunkDone(): void {
    this.backendReads++;
    this.flushRun();
    if (this.socket.writableLength > 4 << 20 && this.ticket) this.ticket.backend.pause();
  }

  pipelineDone(_status: TxStatus, error: string | null): void {
    this.flushRun();
    this.endTicket(error);
  }

  pipelineLost(err: PgError): void {
    this.flushRun();
    const parts: Buffer[] = [];
    if (!this.fatalForwarded) parts.push(err.toMessage());
    parts.push(M.readyForQuery('I'));
    this.writeClient(parts);
    this.log.warn({ err: err.message }, 'backend connection lost');
    this.endTicket(err.code);
  }

  private endTicket(error: string | null): void {
    this.fatalForwarded = false;
    this.ticket = null;
    if (error !== null) this.svc.observer.error(error);
    const r = this.ticketRequest;
    this.ticketRequest = undefined;
    if (r) this.finishTimed(r, this.ticketSql);
    this.ticketSql = undefined;
    if (!this.closed) this.pump();
  }

  /** Sends a routed simple Query to the leased backend, leaving its expectation in the FIFO. */
  private sendQuery(m: FrontendMessage, analysis: Analysis, target: Target, text: string): void {
    const stmts = analysis.statements;
    const one = stmts.length === 1 ? stmts[0] : undefined;
    const facts = queryFacts(analysis);
    this.sendPreamble();
    const pool = this.backendPool!;
    const e: Expectation = {
      kind: 'query',
      swallow: false,
      effects: facts.effects,
      effectIndex: 0,
      request: startRequest(pool.shard.id, routeKindOf(target, one, this.svc.router.shardIds.length), statementTypeOf(one?.tag)),
    };
    if (this.svc.slowStatementMs > 0) e.sql = text;
    if (one?.explainText) {
      const sh = pool.shard;
      e.prependRow = M.dataRow([`pgshard: runs on shard ${sh.id} (${sh.host}:${sh.port})`]);
    }
    this.push(e);
    this.syncPoints++;
    // A simple Query destroys the backend's unnamed statement, which may be another client's.
    this.backend!.unnamedKey = null;
    this.backend!.write(m.buf.subarray(m.start, m.end));
    if (facts.copyFrom) this.copyIn = true;
    if (facts.writes) this.curWrote = true;
    if (one) this.noteSavepoint(one);
    if (facts.tableDdl) this.ddlSent = true;
  }

  /** A statement answered by pgshard alone (a thunk that writes the answer), or null. */
  private localAnswer(st: StatementInfo, text: string): (() => void) | null {
    const eff = st.session;
    if (eff?.type === 'pgshard-set') {
      return () => {
        if (eff.name === 'shard') {
          if (eff.value !== null && !this.svc.router.hasShard(eff.value)) {
            this.replyError(new PgError('42704', `shard "${eff.value}" does not exist`, { hint: `Known shards: ${this.svc.router.shardIds.join(', ')}.` }), false);
            return;
          }
          this.sessionShard = eff.value;
          this.replyLocal([M.commandComplete(eff.value === null ? 'RESET' : 'SET')], this.currentStatus());
        } else {
          this.replyError(new PgError('42704', `unrecognized configuration parameter "pgshard.${eff.name}"`, { hint: 'pgshard knows pgshard.shard.' }), false);
        }
      };
    }
    // Never sent to a backend: its statements are pgshard's, shared with other clients.
    if (eff?.type === 'deallocate' && this.localTx !== 'failed') {
      return () => {
        if (this.backend?.txStatus === 'E') {
          this.replyError(new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block'), false);
          return;
        }
        if (eff.name === null) this.statements.clear();
        else if (!this.statements.delete(eff.name)) {
          this.replyError(new PgError(SqlState.InvalidSqlStatementName, `prepared statement "${eff.name}" does not exist`), false);
          return;
        }
        this.replyLocal([M.commandComplete(eff.name === null ? 'DEALLOCATE ALL' : 'DEALLOCATE')], this.currentStatus());
      };
    }
    const tx = st.tx;
    if (!tx) return null;
    if (tx.type === 'begin' && !this.backend && this.localTx === 'none') {
      // Held until the first statement that routes: that statement decides the transaction's shard.
      return () => {
        this.localTx = 'begin-pending';
        this.pendingBegin = text;
        this.beginSql = text;
        this.replyLocal([M.commandComplete('BEGIN')], 'T');
      };
    }
    if ((tx.type === 'commit' || tx.type === 'rollback') && !this.backend && this.localTx !== 'none') {
      return () => {
        const tag = this.localTx === 'failed' || tx.type === 'rollback' ? 'ROLLBACK' : 'COMMIT';
        this.localTx = 'none';
        this.pendingBegin = null;
        this.txShard = null;
        this.pendingEffects = [];
        this.replyLocal([M.commandComplete(tag)], 'I');
      };
    }
    return null;
  }

  // ---------------------------------------------------------------- LISTEN / NOTIFY (transaction pooling)

  private pendingNotifications: Buffer[] = [];

  /** LISTEN/UNLISTEN on pgshard's listening connections; null when done, else the error to answer. */
  private async runListen(eff: Extract<SessionEffect, { type: 'listen' | 'unlisten' }>): Promise<PgError | null> {
    if (this.localTx === 'failed' || this.backend?.txStatus === 'E')
      return new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block');
    if (this.localTx !== 'none' || this.backend || this.parked.size > 0)
      return new PgError(SqlState.FeatureNotSupported, `${eff.type === 'listen' ? 'LISTEN' : 'UNLISTEN'} inside a transaction block is not supported through pgshard`, {
        hint: 'Run it outside the transaction: pgshard listens for the client on its own connections, not on the pooled one.',
      });
    if (eff.type === 'listen') await this.svc.notifications.listen(this, eff.channel);
    else await this.svc.notifications.unlisten(this, eff.channel);
    return null;
  }

  /** A notification for a channel this client listens on: written between transactions, as Postgres does. */
  notify(message: Buffer): void {
    if (this.closed) return;
    if (this.pendingNotifications.length >= 10_000) this.pendingNotifications.shift(); // a client that never goes idle must not grow us
    this.pendingNotifications.push(message);
    this.flushNotifications();
  }

  private flushNotifications(): void {
    if (this.pendingNotifications.length === 0 || this.closed) return;
    const idle = !this.backend && !this.busy && this.queue.length === 0 && this.batch.length === 0 && this.localTx === 'none' && this.parked.size === 0 && !this.copy;
    if (!idle) return;
    const out = this.pendingNotifications;
    this.pendingNotifications = [];
    this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  private currentStatus(): TxStatus {
    if (this.backend) return this.backend.txStatus;
    return this.localTx === 'none' ? 'I' : this.localTx === 'failed' ? 'E' : 'T';
  }

  /** The union of the statements' targets; a refusal of any one refuses the whole message. */
  private routeStatements(analysis: Analysis, params: BindParams | null): Target {
    if (analysis.parseError !== null || analysis.statements.length === 0) return { kind: 'home' };
    let result: Target | null = null;
    for (const st of analysis.statements) {
      const t = this.svc.router.route(st, analysis.hint, params, { sessionShard: this.sessionShard });
      if (t.kind === 'error') return t;
      if ((t.kind === 'broadcast' || t.kind === 'scatter' || t.kind === 'split-insert' || t.kind === 'copy-in') && analysis.statements.length > 1)
        return {
          kind: 'error',
          error: new PgError(SqlState.FeatureNotSupported, `${st.tag} reaches several shards and must be sent as a query string of its own`, {
            hint: 'Send the statements of this query string one at a time.',
          }),
        };
      if (result === null || result.kind === 'home') result = t;
      else if (t.kind === 'home') continue;
      else if (t.kind === 'shard' && result.kind === 'shard' && t.shard === result.shard) continue;
      else if (analysis.statements.length > 1)
        return {
          kind: 'error',
          error: new PgError(SqlState.FeatureNotSupported, 'the statements of this query string reach different shards, which needs distributed transactions (not supported yet)', {
            hint: 'Send the statements one at a time, or keep them on one shard key value.',
          }),
        };
    }
    return this.inTransactionShard(result ?? { kind: 'home' });
  }

  /** Inside a transaction every statement must go where the transaction is. */
  private inTransactionShard(t: Target): Target {
    const inTx = this.txShard !== null || this.parked.size > 0;
    if (!inTx || t.kind === 'error') return t;
    const cur = this.backendPool?.shard.id ?? this.txShard!;
    // A failed transaction stays where it failed: that shard answers 25P02 until ROLLBACK, as Postgres.
    if (t.kind === 'home' || this.backend?.txStatus === 'E') return { kind: 'shard', shard: cur };
    return t; // another shard joins the transaction
  }

  private defaultShard(): string {
    return this.backendPool?.shard.id ?? this.txShard ?? this.homeShard;
  }

  // ---------------------------------------------------------------- extended protocol

  private dispatchBatch(last: FrontendMessage | null, endsWithSync: boolean): boolean | Promise<void> {
    const msgs = last ? [...this.batch, last] : this.batch;
    // Decide the target from the statements the batch executes.
    let target: Target = { kind: 'home' };
    let problem: { index: number; error: PgError } | null = null;
    const stmtByPortal = new Map<string, PortalInfo>();
    const names = new Map<string, boolean>(); // statement names parsed (true) or closed (false) in this batch
    let multi: { target: MultiTarget; portal: PortalInfo } | null = null;
    let scatter: { target: Target & { kind: 'scatter' }; portal: PortalInfo } | null = null;
    let listen: { effect: Extract<SessionEffect, { type: 'listen' | 'unlisten' }>; tag: string } | null = null;
    let held: Promise<void> | null = null;
    let crossShard = false;
    const execTargets = new Map<number, Target>(); // each Execute's own target (a later Bind may reuse its portal name)
    for (let i = 0; i < msgs.length && !problem; i++) {
      const m = msgs[i]!;
      try {
        if (m.type === Frontend.Parse) {
          const st = this.readParse(m);
          const exists = names.has(st.name) ? names.get(st.name)! : this.statements.has(st.name);
          if (st.name !== '' && exists) problem = { index: i, error: new PgError(SqlState.DuplicatePreparedStatement, `prepared statement "${st.name}" already exists`) };
          else {
            this.checkStatementLimit(st.name);
            names.set(st.name, true);
          }
        } else if (m.type === Frontend.Close) {
          if (m.buf[m.start + 5] === 0x53) names.set(M.readCString(m.buf, m.start + 6, m.end)[0], false);
        } else if (m.type === Frontend.Bind) {
          const b = this.readBind(m, msgs, i);
          if (b.error) problem = { index: i, error: b.error };
          else stmtByPortal.set(b.portal, b.info!);
        } else if (m.type === Frontend.Execute) {
          const portal = readPortalName(m);
          const p = stmtByPortal.get(portal) ?? this.portals.get(portal);
          if (!p) continue; // unknown portal: the backend answers with its own error
          const a = p.statement.analysis;
          let t: Target;
          const eff = a.parseError === null && a.statements.length === 1 ? a.statements[0]!.session : undefined;
          if ((eff?.type === 'listen' || eff?.type === 'unlisten') && this.svc.poolMode === 'transaction') {
            if (endsWithSync && simpleBatchShape(msgs)) listen = { effect: eff, tag: a.statements[0]!.tag };
            else problem = { index: i, error: new PgError(SqlState.FeatureNotSupported, `${a.statements[0]!.tag} through pgshard must be alone in its batch (Parse, Bind, Execute, Sync)`) };
            continue;
          }
          if (a.parseError !== null || a.statements.length !== 1) t = { kind: 'home' };
          else if (a.statements[0]!.generateKey && endsWithSync && simpleBatchShape(msgs)) {
            multi = { target: { kind: 'generate' }, portal: p };
            continue;
          } else t = this.svc.router.route(a.statements[0]!, a.hint, p.params, { sessionShard: this.sessionShard });
          if (this.svc.gate.active) held ??= this.holdAtGate(a.statements, a.hint, p.params);
          if (this.svc.dryRun) this.log.info({ route: describeTarget(t), sql: p.statement.text.slice(0, 200) }, 'route');
          if (t.kind === 'error') problem = { index: i, error: t.error };
          else if ((t.kind === 'broadcast' || t.kind === 'split-insert') && endsWithSync && simpleBatchShape(msgs)) {
            multi = { target: t, portal: p };
          } else if (t.kind === 'scatter' && endsWithSync && simpleBatchShape(msgs) && (describesPortal(msgs) || !msgs.some((x) => x.type === Frontend.Describe))) {
            scatter = { target: t, portal: p };
          } else if (t.kind === 'scatter' || t.kind === 'broadcast' || t.kind === 'split-insert' || t.kind === 'copy-in') {
            problem = {
              index: i,
              error: new PgError(SqlState.FeatureNotSupported, 'a statement reaching several shards is not supported in the extended query protocol yet', {
                hint: 'Add a condition on the shard key, or use the simple query protocol for cross-shard reads.',
              }),
            };
          } else {
            execTargets.set(i, t);
            const merged = mergeTargets(target, t);
            // Single-shard statements on different shards before one Sync: run in turn, one transaction.
            if (merged.kind === 'error' && endsWithSync && (t.kind === 'shard' || t.kind === 'home')) crossShard = true;
            else target = merged;
          }
          if (target.kind === 'error') problem = { index: i, error: target.error };
        }
      } catch (e) {
        problem = { index: i, error: toPgError(e) };
      }
    }
    // Nothing of the batch has run: after the cut-over it is dispatched again from the start.
    if (held) return held.then(() => void (last && this.queue.unshift(last)));
    if (!problem) {
      const t = this.inTransactionShard(target);
      if (t.kind === 'error') {
        const firstExec = msgs.findIndex((x) => x.type === Frontend.Execute);
        problem = { index: firstExec >= 0 ? firstExec : 0, error: t.error };
      } else target = t;
    }
    if (!problem && crossShard) {
      const groups = multi || scatter || listen ? null : batchGroups(msgs, execTargets);
      if (!groups) {
        const firstExec = msgs.findIndex((x) => x.type === Frontend.Execute);
        problem = { index: firstExec >= 0 ? firstExec : 0, error: crossShardBatch() };
      } else {
        if (this.backend && !this.idleBackend()) return false;
        this.batch = [];
        this.batchBytes = 0;
        return this.runBatchGroups(msgs, groups);
      }
    }
    if (!problem && listen) {
      if (this.backend && !this.idleBackend()) return false;
      this.batch = [];
      this.batchBytes = 0;
      const { effect, tag } = listen;
      return this.runListen(effect).then((err) => this.writeClient(this.answerBatch(msgs, tag, err, endsWithSync)));
    }
    if (!problem && scatter) {
      if (this.localTx === 'failed' || this.backend?.txStatus === 'E') problem = { index: 0, error: inFailedTransaction() };
      else if (this.backend && this.extendedOpen && this.openExecuted) return this.dispatchProblemHere(msgs, { index: 0, error: crossShardBatch() }, endsWithSync);
      else {
        if (this.backend && this.extendedOpen) {
          // Only Parse/Describe ran on the backend (postgres.js describes before it binds): end that sequence.
          this.push({ kind: 'sync', swallow: true });
          this.syncPoints++;
          this.backend.write(SYNC);
          this.extendedOpen = false;
        }
        if (this.backend && !this.idleBackend()) return false;
        this.batch = [];
        this.batchBytes = 0;
        return this.runExtendedScatter(msgs, scatter.target, scatter.portal);
      }
    }
    if (!problem && multi) {
      if (this.backend && !this.idleBackend()) return false;
      this.batch = [];
      this.batchBytes = 0;
      return this.runExtendedMulti(msgs, multi.target, multi.portal);
    }
    if (!problem && this.parked.size > 0) {
      const end = transactionEnd(msgs, (name) => stmtByPortal.get(name) ?? this.portals.get(name));
      if (end) {
        if (this.backend && !this.idleBackend()) return false;
        this.batch = [];
        this.batchBytes = 0;
        return this.endDistributed(end === 'commit', (tag, err) => this.writeClient(this.answerBatch(msgs, tag, err, endsWithSync)));
      }
    }
    // A refused batch fails where the client's work already is (its transaction's shard), never elsewhere.
    const shard = !problem && target.kind === 'shard' ? target.shard : this.defaultShard();
    if (problem && !this.backend) {
      // Nothing of the batch runs anywhere yet: answer the messages before the problem ourselves only if
      // they are harmless; the simplest exact answer is to run that prefix on the home shard.
      if (problem.index === 0 || msgs.slice(0, problem.index).every((x) => x.type !== Frontend.Execute)) {
        return this.answerBatchLocally(msgs, problem, endsWithSync);
      }
    }
    if (this.backend && this.extendedOpen && this.backendPool!.shard.id !== shard) {
      if (this.openExecuted) {
        problem = { index: 0, error: crossShardBatch() };
        return this.dispatchProblemHere(msgs, problem, endsWithSync);
      }
      // Only Parse/Describe ran there (postgres.js describes before it binds): end that sequence.
      this.push({ kind: 'sync', swallow: true });
      this.syncPoints++;
      this.backend.write(SYNC);
      this.extendedOpen = false;
    }
    if (!problem && endsWithSync && (target.kind === 'shard' || target.kind === 'home') && this.sharesBatch(msgs, stmtByPortal) && this.attachShared(shard)) {
      this.batch = [];
      this.batchBytes = 0;
      this.sendBatch(msgs, null, true);
      this.ticket!.sent(this.syncPoints);
      return true;
    }
    let ready: boolean | Promise<void>;
    try {
      ready = this.useShard(shard);
    } catch (e) {
      this.batch = [];
      this.batchBytes = 0;
      throw e;
    }
    if (ready === false) return false;
    this.batch = [];
    this.batchBytes = 0;
    const send = () => this.sendBatch(msgs, problem, endsWithSync);
    if (ready === true) {
      send();
      return true;
    }
    return ready.then(send);
  }

  /**
   * Runs the groups in turn, each on its shard's participant of one transaction (the client's, or an
   * implicit one committed at the Sync with two-phase commit when several shards wrote); answers stream
   * in request order. After an error nothing more runs and the whole batch is rolled back, as Postgres
   * does with the implicit transaction of a batch.
   */
  private async runBatchGroups(msgs: FrontendMessage[], groups: { shard: string | null; msgs: FrontendMessage[] }[]): Promise<void> {
    if (this.localTx === 'failed' || this.backend?.txStatus === 'E') {
      this.answerBatchLocally(msgs, { index: 0, error: new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block') }, true);
      return;
    }
    const implicit = !this.inTransactionBlock();
    if (implicit) this.beginImplicit();
    let failed = false;
    let shard = this.defaultShard();
    for (const g of groups) {
      shard = g.shard ?? shard;
      await this.attachShard(shard);
      if (this.closed) return; // the client left: onClientClose rolled back what was joined
      this.sendBatch(g.msgs, null, false);
      // End the group's messages on this participant; inside the transaction block a Sync commits nothing.
      this.extendedOpen = false;
      this.openExecuted = false;
      this.push({ kind: 'sync', swallow: true });
      this.syncPoints++;
      this.backend!.write(SYNC);
      await this.waitIdle();
      if (this.closed) return;
      if (this.backend?.txStatus !== 'T') {
        failed = true;
        break;
      }
    }
    if (implicit) {
      await this.endDistributed(!failed, (_tag, err) => this.replyLocal(err ? [err.toMessage()] : [], 'I'));
      return;
    }
    this.replyLocal([], this.currentStatus());
  }

  /** pgshard's own answers to a whole batch whose one Execute it carried out itself (tag, or err). */
  private answerBatch(msgs: FrontendMessage[], tag: string | null, err: PgError | null, endsWithSync: boolean): Buffer[] {
    const out: Buffer[] = [];
    for (const m of msgs) {
      if (m.type === Frontend.Parse) {
        this.rememberParse(m);
        out.push(M.parseComplete);
      } else if (m.type === Frontend.Bind) out.push(M.bindComplete);
      else if (m.type === Frontend.Describe) {
        if (m.buf[m.start + 5] === 0x53) out.push(Buffer.from([0x74, 0, 0, 0, 6, 0, 0]));
        out.push(M.noData);
      } else if (m.type === Frontend.Close) {
        this.applyClose(m);
        out.push(M.closeComplete);
      } else if (m.type === Frontend.Execute) {
        if (err) {
          out.push(err.toMessage());
          break;
        }
        out.push(M.commandComplete(tag!));
      }
    }
    if (endsWithSync) out.push(M.readyForQuery('I'));
    else if (err) this.skipUntilSync = true;
    return out;
  }

  /** Sends a refused batch to the backend the client's work is on. */
  private dispatchProblemHere(msgs: FrontendMessage[], problem: { index: number; error: PgError }, endsWithSync: boolean): boolean {
    this.batch = [];
    this.batchBytes = 0;
    this.sendBatch(msgs, problem, endsWithSync);
    return true;
  }

  /** A batch that fails before anything reached a backend: answers in order, skip to Sync. */
  private answerBatchLocally(msgs: FrontendMessage[], problem: { index: number; error: PgError }, endsWithSync: boolean): boolean {
    this.batch = [];
    this.batchBytes = 0;
    const out: Buffer[] = [];
    for (let i = 0; i < problem.index; i++) {
      const m = msgs[i]!;
      if (m.type === Frontend.Parse) {
        this.rememberParse(m);
        out.push(M.parseComplete);
      } else if (m.type === Frontend.Close) {
        this.applyClose(m);
        out.push(M.closeComplete);
      } else if (m.type === Frontend.Bind || m.type === Frontend.Describe) {
        // Only reachable for a problem at index > 0 with no Execute before it; Binds need a backend, so
        // run the batch there instead.
        return this.fallbackToBackend(msgs, problem, endsWithSync);
      }
    }
    out.push(problem.error.toMessage());
    this.svc.observer.error(problem.error.code);
    let status: TxStatus = 'I';
    if (this.localTx === 'begin-pending' || this.localTx === 'failed') {
      this.localTx = 'failed';
      status = 'E';
    }
    if (endsWithSync) out.push(M.readyForQuery(status));
    else this.skipUntilSync = true;
    this.writeClient(out);
    return true;
  }

  private skipUntilSync = false;
  /** The backend's FATAL was passed on (as an ERROR) for the unit now ending with the connection. */
  private fatalForwarded = false;
  /** An Execute was sent in the open (not yet Synced) extended sequence. */
  private openExecuted = false;
  private ddlSent = false;

  private fallbackToBackend(msgs: FrontendMessage[], problem: { index: number; error: PgError }, endsWithSync: boolean): boolean {
    this.batch = msgs;
    const ready = this.useShard(this.defaultShard());
    if (ready === false) return false;
    this.batch = [];
    this.batchBytes = 0;
    if (ready === true) this.sendBatch(msgs, problem, endsWithSync);
    else {
      this.busy = true;
      ready.then(
        () => {
          this.sendBatch(msgs, problem, endsWithSync);
          this.busy = false;
          this.pump();
        },
        (e) => {
          this.busy = false;
          this.internalError(e);
          this.pump();
        },
      );
    }
    return true;
  }

  private readParse(m: FrontendMessage): { name: string; st: ClientStatement } {
    return (m.parsed ??= this.decodeParse(m));
  }

  private decodeParse(m: FrontendMessage): { name: string; st: ClientStatement } {
    const [name, p1] = M.readCString(m.buf, m.start + 5, m.end);
    const [text, p2] = M.readCString(m.buf, p1, m.end);
    const paramTypes = Buffer.from(m.buf.subarray(p2, m.end));
    const st: ClientStatement = { key: statementKey(text, paramTypes), text, paramTypes, analysis: this.svc.analyze(text) };
    return { name, st };
  }

  private rememberParse(m: FrontendMessage): { name: string; st: ClientStatement } {
    const r = this.readParse(m);
    this.commitParse(r.name, r.st);
    return r;
  }

  /** A Parse took effect: the client's statement exists from now on. */
  private commitParse(name: string, st: ClientStatement): void {
    if (name === '') this.unnamed = st;
    else this.statements.set(name, st);
  }

  private checkStatementLimit(name: string): void {
    if (name !== '' && this.statements.size >= this.svc.maxPreparedStatements && !this.statements.has(name))
      throw new PgError(SqlState.ConfigurationLimitExceeded, `too many prepared statements on this connection (limit ${this.svc.maxPreparedStatements})`, {
        hint: 'Close or DEALLOCATE statements no longer needed, or raise limits.max_prepared_statements_per_client.',
      });
  }

  private applyClose(m: FrontendMessage): void {
    const kind = m.buf[m.start + 5];
    const [name] = M.readCString(m.buf, m.start + 6, m.end);
    if (kind === 0x53) {
      if (name === '') this.unnamed = null;
      else this.statements.delete(name);
    } else this.portals.delete(name);
  }

  /** The statement a Bind uses (looking back in the batch for a Parse of the same name) and its values. */
  private readBind(m: FrontendMessage, msgs: FrontendMessage[], index: number): { portal: string; info?: PortalInfo; error?: PgError } {
    const [portal, p1] = M.readCString(m.buf, m.start + 5, m.end);
    const [stmtName, p2] = M.readCString(m.buf, p1, m.end);
    let st: ClientStatement | undefined;
    for (let j = index - 1; j >= 0 && !st; j--) {
      const x = msgs[j]!;
      if (x.type === Frontend.Parse) {
        const r = this.readParse(x);
        if (r.name === stmtName) st = r.st;
      } else if (x.type === Frontend.Close && x.buf[x.start + 5] === 0x53 && M.readCString(x.buf, x.start + 6, x.end)[0] === stmtName) break;
    }
    if (!st) st = stmtName === '' ? (this.unnamed ?? undefined) : this.statements.get(stmtName);
    if (!st)
      return {
        portal,
        error: new PgError(SqlState.InvalidSqlStatementName, stmtName === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${stmtName}" does not exist`),
      };
    const needsParams = st.analysis.statements.length === 1 && st.analysis.statements[0]!.route.type === 'keys';
    return { portal, info: { statement: st, params: needsParams ? (m.params ??= decodeBindParams(m.buf, p2, m.end)) : null } };
  }

  /** Rewrites and sends a batch on the leased backend; `problem` stops it at that message with that error. */
  private sendBatch(msgs: FrontendMessage[], problem: { index: number; error: PgError } | null, endsWithSync: boolean): void {
    const be = this.backend!;
    const out: Buffer[] = [];
    this.sendPreamble(out);
    const stop = problem ? problem.index : msgs.length;
    const boundPortals = new Map<string, PortalInfo>();
    // Statements as this batch sees them: its own Parses and Closes take effect only when the backend
    // carries them out (not when skipped after an error), so they are committed by the answers.
    const view = new Map<string, ClientStatement | null>();
    const lookup = (name: string): ClientStatement | undefined =>
      view.has(name) ? (view.get(name) ?? undefined) : name === '' ? (this.unnamed ?? undefined) : this.statements.get(name);
    for (let i = 0; i < stop; i++) {
      const m = msgs[i]!;
      const raw = m.buf.subarray(m.start, m.end);
      switch (m.type) {
        case Frontend.Parse: {
          const { name, st } = this.readParse(m);
          view.set(name, st);
          const onDone = () => this.commitParse(name, st);
          if (name === '') {
            be.unnamedKey = st.key;
            be.unnamedOwner = this.info.id;
            this.push({ kind: 'parse', swallow: false, onDone, unnamedParse: true });
            out.push(raw);
          } else {
            const existing = be.statements.get(st.key);
            if (existing) this.push({ kind: 'synthetic', swallow: false, synthetic: () => M.parseComplete, onDone });
            else {
              const bname = be.newStatementName();
              be.statements.set(st.key, bname);
              this.push({ kind: 'parse', swallow: false, parsedKey: st.key, onDone });
              out.push(buildParse(bname, st));
            }
          }
          break;
        }
        case Frontend.Bind: {
          const [portal, p1] = M.readCString(m.buf, m.start + 5, m.end);
          const [stmtName, p2] = M.readCString(m.buf, p1, m.end);
          const st = lookup(stmtName);
          if (!st) {
            // Not known to pgshard: let the backend answer (it will say the statement does not exist).
            this.push({ kind: 'bind', swallow: false });
            out.push(raw);
            break;
          }
          const bname = this.ensurePrepared(be, st, stmtName === '', out);
          this.push({ kind: 'bind', swallow: false });
          out.push(bname === stmtName ? raw : replaceName(m.buf, m.start, m.end, p1, p2 - 1, bname));
          const needsParams = st.analysis.statements.length === 1 && st.analysis.statements[0]!.route.type === 'keys';
          boundPortals.set(portal, { statement: st, params: needsParams ? (m.params ??= decodeBindParams(m.buf, p2, m.end)) : null });
          break;
        }
        case Frontend.Describe: {
          const kind = m.buf[m.start + 5];
          if (kind === 0x53) {
            const [name, p] = M.readCString(m.buf, m.start + 6, m.end);
            const st = lookup(name);
            if (st) {
              const bname = this.ensurePrepared(be, st, name === '', out);
              out.push(bname === name ? raw : replaceName(m.buf, m.start, m.end, m.start + 6, p - 1, bname));
            } else out.push(raw);
          } else out.push(raw);
          this.push({ kind: 'describe', swallow: false });
          break;
        }
        case Frontend.Execute: {
          const portal = readPortalName(m);
          const p = boundPortals.get(portal) ?? this.portals.get(portal);
          const st = p?.statement.analysis.statements;
          const eff = st && st.length === 1 ? st[0]!.session : undefined;
          const one = st && st.length === 1 ? st[0] : undefined;
          this.push({
            kind: 'execute',
            swallow: false,
            effects: [eff],
            effectIndex: 0,
            request: startRequest(be.shard.id, routeKindOfStatement(one), statementTypeOf(one?.tag)),
            ...(this.svc.slowStatementMs > 0 && p ? { sql: p.statement.text } : {}),
          });
          if (st && st.length === 1 && !st[0]!.readOnly) this.curWrote = true;
          if (st && st.length === 1) this.noteSavepoint(st[0]!);
          if (st && st.length === 1 && st[0]!.copy?.direction === 'from') this.copyIn = true;
          out.push(raw);
          break;
        }
        case Frontend.Close: {
          const kind = m.buf[m.start + 5];
          if (kind === 0x53) {
            view.set(M.readCString(m.buf, m.start + 6, m.end)[0], null);
            this.push({ kind: 'synthetic', swallow: false, synthetic: () => M.closeComplete, onDone: () => this.applyClose(m) });
          } else {
            this.applyClose(m);
            this.push({ kind: 'close', swallow: false });
            out.push(raw);
          }
          break;
        }
        case Frontend.Flush:
          out.push(raw);
          break;
        case Frontend.Sync:
          this.push({ kind: 'sync', swallow: false });
          this.syncPoints++;
          out.push(raw);
          break;
      }
    }
    for (const [k, v] of boundPortals) this.portals.set(k, v);
    if (problem) {
      this.svc.observer.error(problem.error.code);
      // Fail the backend's unit of work right here, with pgshard's error in place of the backend's.
      this.push({ kind: 'parse', swallow: false, replaceError: problem.error.toMessage() });
      out.push(FAILING_PARSE);
      if (endsWithSync) {
        this.push({ kind: 'sync', swallow: false });
        this.syncPoints++;
        out.push(SYNC);
      } else this.skipUntilSync = true;
    }
    this.extendedOpen = !endsWithSync;
    if (endsWithSync) this.openExecuted = false;
    else {
      if (msgs.some((x) => x.type === Frontend.Execute)) this.openExecuted = true;
      out.push(FLUSH);
    }
    if (out.length) be.writev(out);
    this.advance();
  }

  /** The server-side name of a client statement on this backend, preparing it there first if needed. */
  private ensurePrepared(be: BackendConnection, st: ClientStatement, unnamed: boolean, out: Buffer[]): string {
    if (unnamed) {
      if (be.unnamedKey !== st.key || be.unnamedOwner !== this.info.id) {
        be.unnamedKey = st.key;
        be.unnamedOwner = this.info.id;
        this.push({ kind: 'parse', swallow: true, unnamedParse: true });
        out.push(buildParse('', st));
      }
      return '';
    }
    const existing = be.statements.get(st.key);
    if (existing) return existing;
    const bname = be.newStatementName();
    be.statements.set(st.key, bname);
    this.push({ kind: 'parse', swallow: true, parsedKey: st.key });
    out.push(buildParse(bname, st));
    return bname;
  }

  // ---------------------------------------------------------------- FunctionCall (fastpath)

  private onFunctionCall(m: FrontendMessage): boolean | Promise<void> {
    const ready = this.useShard(this.defaultShard());
    if (ready === false) return false;
    const send = () => {
      this.sendPreamble();
      this.push({ kind: 'query', swallow: false });
      this.syncPoints++;
      this.backend!.write(m.buf.subarray(m.start, m.end));
    };
    if (ready === true) {
      send();
      return true;
    }
    return ready.then(send);
  }

  // ---------------------------------------------------------------- backend lease

  /**
   * Makes `shard`'s backend the leased one. true: ready now; false: another backend still has work
   * outstanding (the pump resumes when it is idle); a promise: a checkout is under way.
   */
  private useShard(shard: string): boolean | Promise<void> {
    if (this.backend) {
      if (this.backendPool!.shard.id === shard) return true;
      if (!this.idleBackend()) return false;
      if (this.backend.txStatus !== 'I') this.park();
      else this.releaseBackend();
    }
    const back = this.parked.get(shard);
    if (back) {
      this.parked.delete(shard);
      this.attach(back.be, back.pool, back.wrote, back.lockBound === true);
      this.preambleDone = true; // its session state was brought in line when it joined
      return true;
    }
    const pool = this.svc.pools.get(shard);
    if (!pool) throw new PgError('42704', `shard "${shard}" does not exist`);
    const joining = this.parked.size > 0;
    if (!joining) {
      const free = pool.tryAcquire();
      if (free) {
        this.svc.observer.checkoutWait(shard, 0);
        this.attach(free, pool, false);
        return true;
      }
    }
    const t0 = performance.now();
    return pool.acquire().then(
      (be) => {
        this.svc.observer.checkoutWait(shard, (performance.now() - t0) / 1000);
        if (this.closed) {
          pool.release(be);
          return;
        }
        this.attach(be, pool, false);
        if (joining) this.joinTx = true;
        return joining ? this.boundLockWaits() : undefined;
      },
      (e: unknown) => {
        throw toPgError(e);
      },
    );
  }

  private curLockBound = false;

  private attach(be: BackendConnection, pool: ShardPool, wrote: boolean, lockBound = false): void {
    this.curLockBound = lockBound || this.parked.size > 0;
    this.backend = be;
    this.backendPool = pool;
    this.curWrote = wrote;
    be.listener = this;
    this.resetExpectations();
  }

  /** The current backend's transaction stays open while statements go to another shard. */
  private park(): void {
    const be = this.backend!;
    const pool = this.backendPool!;
    this.flushRun();
    this.parked.set(pool.shard.id, { be, pool, wrote: this.curWrote, lockBound: this.curLockBound });
    be.listener = {
      message: () => undefined, // an idle backend in a transaction sends nothing worth forwarding
      chunkDone: () => undefined,
      lost: (err) => {
        this.parked.delete(pool.shard.id);
        pool.destroy(be);
        this.parkedLost = err;
      },
    };
    this.backend = null;
    this.backendPool = null;
    this.preambleDone = false;
    this.resetExpectations();
  }

  /**
   * A second shard joins: no shard alone can see a deadlock between them any more, so lock waits of the
   * participants already in the transaction are bounded too (the joining one gets it with its BEGIN).
   */
  private async boundLockWaits(): Promise<void> {
    const ms = this.svc.deadlockTimeoutMs;
    if (ms <= 0) return;
    for (const [shard, p] of this.parked) {
      if (p.lockBound) continue;
      p.lockBound = true;
      const keep = p.be.listener;
      try {
        await runQuery(p.be, `SET LOCAL lock_timeout = ${ms}`, this.svc.coordinator.stepTimeoutMs);
      } catch (e) {
        this.log.warn({ shard, err: (e as Error).message }, 'could not bound lock waits on a participant');
        this.participantGone(shard, p, e);
      }
      if (p.be.isOpen) p.be.listener = keep;
    }
  }

  /**
   * A parked participant's connection died under an internal statement: the transaction is lost, and its
   * COMMIT must say so (the participant stays parked, closed, so that the end of the transaction sees it).
   */
  private participantGone(_shard: string, p: Participant, e: unknown): void {
    if (!p.be.isOpen) this.parkedLost ??= toPgError(e);
  }

  /** Runs a statement on every parked participant (savepoint bookkeeping); their errors are logged. */
  private async runOnParked(sql: string): Promise<void> {
    this.rebroadcast = true;
    for (const [shard, p] of this.parked) {
      const keep = p.be.listener;
      try {
        await runQuery(p.be, sql, this.svc.coordinator.stepTimeoutMs);
      } catch (e) {
        this.log.warn({ shard, err: (e as Error).message }, 'savepoint statement failed on a participant');
        this.participantGone(shard, p, e);
      }
      if (p.be.isOpen) p.be.listener = keep;
    }
  }
  private rebroadcast = false;

  /** Active savepoints, replayed on shards that join the transaction later. */
  private noteSavepoint(st: StatementInfo): void {
    const tx = st.tx;
    if (!tx) return;
    this.rebroadcast = false;
    if (tx.type === 'savepoint') this.savepoints.push(tx.name);
    else if (tx.type === 'release' || tx.type === 'rollback-to') {
      const i = this.savepoints.lastIndexOf(tx.name);
      if (i >= 0) this.savepoints.length = tx.type === 'release' ? i : i + 1;
    }
  }

  /** Every participant of the transaction, the current one last; they leave the session. */
  private takeParticipants(): Participant[] {
    const parts = [...this.parked.values()];
    this.parked.clear();
    if (this.backend && this.backendPool) {
      parts.push({ be: this.backend, pool: this.backendPool, wrote: this.curWrote });
      this.flushRun();
      this.backend = null;
      this.backendPool = null;
      this.preambleDone = false;
      this.resetExpectations();
    }
    for (const p of parts) p.be.listener = null;
    return parts;
  }

  /**
   * COMMIT or ROLLBACK of a transaction on several shards: two-phase commit (or rollback) through the
   * coordinator, then `answer(tag or error)` writes the client's reply.
   */
  private endDistributed(commit: boolean, answer: (tag: string | null, err: PgError | null) => void): Promise<void> {
    const parts = this.takeParticipants();
    const lost = this.parkedLost;
    const failed = lost !== null || parts.some((p) => p.be.txStatus === 'E' || !p.be.isOpen);
    this.parkedLost = null;
    this.txShard = null;
    this.savepoints = [];
    this.joinTx = false;
    this.portals.clear();
    const effects = this.pendingEffects;
    this.pendingEffects = [];
    const co = this.svc.coordinator;
    const kind = transactionKind(parts.filter((p) => p.wrote).length);
    if (!commit || failed) {
      this.svc.observer.transaction(kind, 'rollback');
      return co.rollback(parts).then(() => {
        if (commit && lost) answer(null, new PgError(lost.code, `the transaction was rolled back: ${lost.message}`));
        else answer('ROLLBACK', null);
      });
    }
    return co.commit(parts).then(
      () => {
        if (this.ddlSent) {
          this.ddlSent = false;
          void this.svc.schemaChanged();
        }
        this.svc.observer.transaction(kind, 'commit');
        this.applyEffects(effects);
        answer('COMMIT', null);
      },
      (e) => {
        this.svc.observer.transaction(kind, 'rollback');
        answer(null, toPgError(e));
      },
    );
  }

  /** True when nothing is outstanding on the leased backend; otherwise registers the pump to resume. */
  private idleBackend(): boolean {
    if (this.syncPoints === 0 && !this.extendedOpen && !this.copyIn) return true;
    if (!this.idleWaiters.length) this.idleWaiters.push(() => this.pump());
    return false;
  }

  /** Before the first request on a freshly leased backend: bring its session state in line, send a held BEGIN. */
  private sendPreamble(out?: Buffer[]): void {
    const be = this.backend!;
    if (!this.preambleDone) {
      this.preambleDone = true;
      const sql = stateSyncSql(this.vars, be);
      if (sql) this.sendInternal(sql, out);
    }
    if (this.localTx === 'failed') {
      // A transaction pgshard failed before any backend held it: recreate it, failed, on this backend, so
      // that what the client sends next gets exactly Postgres's answers (25P02 until ROLLBACK).
      this.localTx = 'none';
      this.txShard = be.shard.id;
      this.sendInternal('BEGIN', out);
      this.push({ kind: 'query', swallow: true, quiet: true });
      this.syncPoints++;
      if (out) out.push(FAILING_QUERY);
      else be.write(FAILING_QUERY);
    }
    if (this.joinTx) {
      this.joinTx = false;
      const bound = this.svc.deadlockTimeoutMs > 0 ? [`SET LOCAL lock_timeout = ${this.svc.deadlockTimeoutMs}`] : [];
      this.sendInternal([this.beginSql, ...bound, ...this.savepoints.map((sp) => `SAVEPOINT ${quoteIdent(sp)}`)].join('; '), out);
    }
    if (this.localTx === 'begin-pending') {
      this.localTx = 'none';
      this.txShard = be.shard.id;
      this.sendInternal(this.pendingBegin ?? 'BEGIN', out);
      this.pendingBegin = null;
    }
  }
  private preambleDone = false;

  private sendInternal(sql: string, out?: Buffer[]): void {
    this.push({ kind: 'query', swallow: true });
    this.syncPoints++;
    const msg = M.queryMessage(sql);
    if (out) out.push(msg);
    else this.backend!.write(msg);
  }

  /** Transaction pooling: give the backend back as soon as nothing is outstanding and no transaction is open. */
  private maybeRelease(): void {
    const be = this.backend;
    if (!be || this.svc.poolMode !== 'transaction' || this.busy) return;
    // A shared connection is left as soon as the answers are in: the queue waits for that (see pump).
    if (this.queue.length > 0 && !this.ticketAttached) return;
    if (this.syncPoints === 0 && !this.extendedOpen && !this.copyIn && be.txStatus === 'I') {
      const shared = this.ticketAttached;
      this.releaseBackend();
      if (shared) this.pump();
    }
  }

  private releaseBackend(): void {
    const be = this.backend;
    if (!be) return;
    this.flushRun();
    this.backend = null;
    const pool = this.backendPool!;
    this.backendPool = null;
    this.preambleDone = false;
    this.resetExpectations();
    if (this.ticketAttached) {
      // The pipeline moves on to the next request by itself (it counted this one's ReadyForQuery messages).
      this.ticket = null;
      this.ticketAttached = false;
    } else pool.release(be);
    if (this.pendingNotifications.length) this.flushNotifications();
  }

  private resetExpectations(): void {
    // Every expectation is answered when a backend goes back idle: reuse the array (one per transaction otherwise).
    if (this.expectHead === this.expect.length) this.expect.length = 0;
    else this.expect = [];
    this.expectHead = 0;
    this.syncPoints = 0;
    this.extendedOpen = false;
    this.openExecuted = false;
    this.copyIn = false;
  }

  private push(e: Expectation): void {
    this.expect.push(e);
  }

  /** Writes pgshard's own answers that have reached the head of the FIFO. */
  private advance(): void {
    while (this.expectHead < this.expect.length) {
      const h = this.expect[this.expectHead]!;
      if (h.kind !== 'synthetic') return;
      this.expectHead++;
      this.flushRun();
      this.socket.write(h.synthetic!());
      h.onDone?.();
    }
  }

  /** A client request finished: report it once. */
  private completed(h: Expectation): void {
    if (!h.request) return;
    this.finishTimed(h.request, h.sql);
    h.request = undefined;
  }

  /** Reports a finished request to the metrics, and to the log when it was slow. */
  private finishTimed(r: RequestTiming, sql: string | undefined): void {
    finishRequest(this.svc.observer, r);
    const ms = performance.now() - r.t0;
    if (ms >= this.svc.slowStatementMs && this.svc.slowStatementMs > 0)
      this.log.warn({ shard: r.shard, route: r.route, duration_ms: Math.round(ms * 10) / 10, statement: (sql ?? '').slice(0, 200) }, 'slow statement');
  }

  private shift(): Expectation | undefined {
    const h = this.expect[this.expectHead];
    if (h) {
      this.expectHead++;
      if (this.expectHead > 256 && this.expectHead * 2 > this.expect.length) {
        this.expect = this.expect.slice(this.expectHead);
        this.expectHead = 0;
      }
    }
    return h;
  }

  // ---------------------------------------------------------------- backend messages (BackendListener)

  message(type: number, buf: Buffer, start: number, end: number): void {
    // Asynchronous messages can come at any time and belong to no request.
    if (type === Backend.NoticeResponse || type === Backend.NotificationResponse || type === Backend.ParameterStatus) {
      const h = this.expect[this.expectHead];
      if (h && h.swallow) this.drop();
      else this.forward(buf, start, end);
      return;
    }
    const h = this.expect[this.expectHead];
    if (!h) {
      this.forward(buf, start, end);
      return;
    }
    if (h.gather && this.gathered(h.gather, type, buf, start, end)) return;
    switch (type) {
      case Backend.ErrorResponse:
        this.onBackendError(h, buf, start, end);
        return;
      case Backend.ReadyForQuery:
        this.onReadyForQuery(h, buf, start, end);
        return;
      case Backend.CommandComplete:
        if (h.effects) this.noteEffect(h, buf, start, end);
        if (h.kind === 'execute') this.completed(this.shift()!);
        break;
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        if (h.kind === 'execute') this.completed(this.shift()!);
        break;
      case Backend.ParseComplete:
      case Backend.BindComplete:
      case Backend.CloseComplete:
      case Backend.NoData:
        if (h.kind !== 'query') this.shift()?.onDone?.();
        break;
      case Backend.RowDescription:
        if (h.kind === 'describe') this.shift();
        else if (h.prependRow) {
          this.forward(buf, start, end);
          this.flushRun();
          this.socket.write(h.prependRow);
          h.prependRow = undefined;
          return;
        }
        break;
      case Backend.CopyInResponse:
        this.copyIn = true;
        break;
      default:
        break;
    }
    if (h.swallow) this.drop();
    else this.forward(buf, start, end);
    this.advance();
  }

  /** Handles a broadcast statement's answer; true when the message was consumed here. */
  private gathered(g: Gather, type: number, buf: Buffer, start: number, end: number): boolean {
    const f = g.firstOnly;
    if (f) {
      const want =
        !f.done &&
        ((type === Backend.ParseComplete && f.parse) || type === Backend.BindComplete || (f.describe && (type === Backend.ParameterDescription || type === Backend.NoData || type === Backend.RowDescription)));
      if (type === Backend.ParseComplete || type === Backend.BindComplete || type === Backend.ParameterDescription || type === Backend.NoData || (type === Backend.RowDescription && !f.describe)) {
        if (want) this.forward(buf, start, end);
        else this.drop();
        return true;
      }
      if (type === Backend.RowDescription) {
        if (want) this.forward(buf, start, end);
        else this.drop();
        return true;
      }
    }
    switch (type) {
      case Backend.DataRow:
        if (g.order) {
          g.order.add(this.backendPool!.shard.id, Buffer.from(buf.subarray(start, end)));
          this.drop();
          return true;
        }
        // RETURNING of a reference table write: every shard returns the same rows; one copy is the answer.
        if (g.same && g.verb !== null) this.drop();
        else this.forward(buf, start, end);
        return true;
      case Backend.RowDescription:
        if (g.rowDescriptionSent) this.drop();
        else {
          g.rowDescriptionSent = true;
          this.forward(buf, start, end);
        }
        return true;
      case Backend.CommandComplete: {
        const tag = M.decodeCommandTag(buf, start, end);
        const sp = tag.lastIndexOf(' ');
        const n = sp > 0 ? tag.slice(sp + 1) : '';
        if (g.same && g.verb !== null) {
          this.drop();
          return true;
        }
        if (/^\d+$/.test(n)) {
          g.verb = tag.slice(0, sp);
          g.count += BigInt(n);
        } else g.verb = tag;
        this.drop();
        return true;
      }
      case Backend.EmptyQueryResponse:
        this.drop();
        return true;
      case Backend.ErrorResponse:
        g.failed = true;
        return false; // forwarded as usual
      case Backend.ReadyForQuery: {
        // The broadcast writes one ReadyForQuery of its own at the end.
        const status = String.fromCharCode(buf[start + 5]!) as TxStatus;
        this.shift();
        this.syncPoints = Math.max(0, this.syncPoints - 1);
        if (status !== 'I' && this.backendPool) this.txShard = this.backendPool.shard.id;
        this.drop();
        if (this.syncPoints === 0) for (const f of this.idleWaiters.splice(0)) f();
        return true;
      }
      default:
        return false;
    }
  }

  private onBackendError(h: Expectation, buf: Buffer, start: number, end: number): void {
    this.errorInUnit = true;
    this.copyIn = false;
    this.skipped(h);
    if (h.replaceError) {
      this.flushRun();
      this.socket.write(h.replaceError);
    } else if (h.swallow && h.kind === 'query' && h.quiet) {
      this.drop();
    } else if (h.swallow && h.kind === 'query') {
      // Internal work failed (a SET replay): the client's request after it still runs; say so in the log.
      const f = M.decodeErrorFields(buf, start, end);
      this.log.warn({ code: f.C, message: f.M }, 'session state replay failed on backend');
      this.drop();
    } else {
      const f = M.decodeErrorFields(buf, start, end);
      this.svc.observer.error(f.C ?? SqlState.InternalError);
      if (f.C === '55P03' && this.parked.size > 0 && /lock timeout/i.test(f.M ?? '')) {
        this.flushRun();
        this.socket.write(
          M.errorResponse({
            severity: 'ERROR',
            code: '40P01',
            message: 'deadlock detected',
            detail: `A lock wait in a transaction spanning several shards lasted over ${this.svc.deadlockTimeoutMs} ms (transactions.deadlock_timeout_ms); pgshard takes it for a deadlock between shards, which no single shard can detect.`,
            hint: 'Retry the transaction.',
          }),
        );
      } else if (f.S === 'FATAL' || f.S === 'PANIC') {
        // The backend is going away, not the client's session: report it as an ERROR, which Postgres
        // clients recover from; lost() then only ends the unit with ReadyForQuery.
        this.fatalForwarded = true;
        this.flushRun();
        this.socket.write(fatalAsError(f));
      } else this.forward(buf, start, end);
    }
    if (h.kind === 'execute') this.completed(h);
    if (h.kind === 'query' || h.kind === 'sync') return; // the unit goes on to ReadyForQuery
    // Extended protocol: the backend skips everything up to Sync, so do the expectations.
    this.shift();
    while (this.expectHead < this.expect.length && this.expect[this.expectHead]!.kind !== 'sync') this.skipped(this.shift()!);
  }

  /** A message the backend did not carry out (failed, or skipped after an error). */
  private skipped(h: Expectation): void {
    if (h.parsedKey !== undefined && this.backend) this.backend.statements.delete(h.parsedKey);
    if (h.unnamedParse && this.backend) this.backend.unnamedKey = null;
  }

  private onReadyForQuery(h: Expectation, buf: Buffer, start: number, end: number): void {
    const status = String.fromCharCode(buf[start + 5]!) as TxStatus;
    if (h.kind === 'query' || h.kind === 'sync') this.completed(this.shift()!);
    this.syncPoints = Math.max(0, this.syncPoints - 1);
    this.finishUnit(status);
    if (h.swallow) this.drop();
    else this.forward(buf, start, end);
    this.advance();
    if (status !== 'I' && this.backendPool) this.txShard = this.backendPool.shard.id;
    if (status === 'I' && this.ddlSent) {
      this.ddlSent = false;
      this.svc.schemaChanged();
    }
    if (this.syncPoints === 0 && !this.extendedOpen && !this.copyIn) {
      if (status === 'I') {
        this.txShard = null;
        if (this.portals.size) this.portals.clear();
      }
      if (this.idleWaiters.length) for (const f of this.idleWaiters.splice(0)) f();
      this.maybeRelease();
    }
  }

  /** Session effects take hold when their transaction commits (a SET in a rolled-back one is undone). */
  private finishUnit(status: TxStatus): void {
    if (status === 'I') {
      if (!this.errorInUnit) this.applyEffects(this.pendingEffects);
      this.pendingEffects = [];
    } else if (status === 'E') {
      // Failed transaction: what it set will be rolled back.
    }
    if (status !== 'T') this.errorInUnit = false;
  }

  private noteEffect(h: Expectation, buf: Buffer, start: number, end: number): void {
    const i = h.effectIndex ?? 0;
    const eff = h.effects![i];
    h.effectIndex = i + 1;
    const tag = M.decodeCommandTag(buf, start, end);
    if (tag === 'COMMIT') this.svc.observer.transaction('single_shard', 'commit');
    else if (tag === 'ROLLBACK') this.svc.observer.transaction('single_shard', 'rollback');
    if (tag === 'COMMIT') {
      this.applyEffects(this.pendingEffects);
      this.pendingEffects = [];
    } else if (tag === 'ROLLBACK') this.pendingEffects = [];
    if (eff && eff.type !== 'pgshard-set' && eff.type !== 'deallocate' && !(eff.type === 'set' && eff.local)) this.pendingEffects.push(eff);
    if (eff && eff.type === 'deallocate') {
      if (eff.name === null) this.statements.clear();
      else this.statements.delete(eff.name);
    }
  }

  private applyEffects(effects: SessionEffect[]): void {
    const be = this.backend;
    for (const e of effects) {
      if (e.type === 'set') {
        this.vars.set(e.name, e.sql);
        be?.vars.set(e.name, e.sql);
      } else if (e.type === 'reset') {
        this.vars.delete(e.name);
        be?.vars.delete(e.name);
      } else if (e.type === 'reset-all') {
        this.vars.clear();
        be?.vars.clear();
        if (this.svc.poolMode === 'transaction') this.svc.notifications.drop(this); // DISCARD ALL includes UNLISTEN *
      }
    }
  }

  private forward(buf: Buffer, start: number, end: number, from: BackendConnection | null = this.backend): void {
    if (this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.flushRun();
    this.runBuf = buf;
    this.runFrom = from;
    this.runStart = start;
    this.runEnd = end;
  }

  private drop(): void {
    this.flushRun();
  }

  chunkDone(_buf: Buffer): void {
    this.backendReads++;
    this.flushRun();
    // Backpressure: a client that does not read must not make pgshard buffer a whole result.
    if (this.socket.writableLength > 4 << 20 && this.backend) this.backend.pause();
  }

  private resumeBackend(): void {
    this.backend?.resume();
    this.ticket?.backend.resume();
  }

  /** The leased backend died: every outstanding request gets an error, the session goes on. */
  lost(err: PgError): void {
    const shared = this.ticketAttached;
    if (shared) {
      this.ticket = null;
      this.ticketAttached = false;
    }
    const pool = this.backendPool;
    const be = this.backend;
    const outstanding = this.syncPoints + (this.extendedOpen ? 1 : 0);
    const inTx = (be?.txStatus ?? 'I') !== 'I' || this.txShard !== null;
    this.flushRun();
    this.backend = null;
    this.backendPool = null;
    this.preambleDone = false;
    this.resetExpectations();
    this.txShard = null;
    this.pendingEffects = [];
    if (be && pool) pool.destroy(be);
    const parked = [...this.parked.values()];
    this.parked.clear();
    if (parked.length) void this.svc.coordinator.rollback(parked);
    if (inTx || parked.length) this.svc.observer.transaction(transactionKind(parked.filter((p) => p.wrote).length + (this.curWrote ? 1 : 0)), 'rollback');
    if (outstanding > 0) this.svc.observer.error(err.code);
    this.localTx = inTx || parked.length ? 'failed' : 'none';
    const status: TxStatus = inTx || parked.length ? 'E' : 'I';
    const parts: Buffer[] = [];
    for (let i = 0; i < Math.max(outstanding, 1); i++) {
      if (i > 0 || !this.fatalForwarded) parts.push(err.toMessage());
      parts.push(M.readyForQuery(status));
    }
    this.fatalForwarded = false;
    if (outstanding > 0) this.writeClient(parts);
    this.log.warn({ shard: pool?.shard.id, err: err.message }, 'backend connection lost');
    const w = this.idleWaiters.splice(0);
    for (const f of w) f();
    if (shared) queueMicrotask(() => this.pump()); // what the client sent meanwhile waited for this answer
  }

  // ---------------------------------------------------------------- writing to the client

  private flushRun(): void {
    const b = this.runBuf;
    if (b === null) return;
    this.runBuf = null;
    const bytes = b.subarray(this.runStart, this.runEnd);
    const from = this.runFrom;
    const s = this.socket;
    // Bytes in the backend's reused read buffer must not stay referenced by our socket past this read.
    if (from === null || !from.readsInto(b)) s.write(bytes);
    else if (s.writableLength > 0) s.write(Buffer.from(bytes)); // queued behind earlier output: a copy
    else {
      s.write(bytes);
      if (s.writableLength > 0) from.holdChunk(); // the kernel did not take it all: the socket keeps the buffer
    }
  }

  private writeClient(parts: Buffer[]): void {
    this.flushRun();
    if (parts.length === 1) this.socket.write(parts[0]!);
    else this.socket.write(Buffer.concat(parts));
  }

  private replyLocal(parts: Buffer[], status: TxStatus): void {
    parts.push(M.readyForQuery(status));
    this.writeClient(parts);
  }

  /** Answers the current request with an error, through the backend when one holds the transaction. */
  private replyError(err: PgError, _fromInternal: boolean): void {
    this.svc.observer.error(err.code);
    if (this.backend) {
      this.push({ kind: 'query', swallow: false, replaceError: err.toMessage() });
      this.syncPoints++;
      this.backend.write(FAILING_QUERY);
      return;
    }
    let status: TxStatus = 'I';
    if (this.localTx !== 'none') {
      this.localTx = 'failed';
      status = 'E';
    }
    this.replyLocal([err.toMessage()], status);
  }

  private refuse(err: PgError): boolean {
    this.replyError(err, false);
    return true;
  }

  private copy: ShardedCopy | null = null;

  /**
   * COPY FROM STDIN into a sharded table: every shard becomes a participant of the transaction (the
   * client's, or an implicit one committed with two-phase commit), runs the same COPY, and receives the
   * rows whose keys it owns; the client sees one COPY.
   */
  private async startCopyIn(text: string, table: string, keyColumn: string | null): Promise<void> {
    if (keyColumn !== null && !this.svc.columnsOf(table)) await this.svc.schemaChanged();
    let opts: CopyOptions | null = null;
    // A reference table's data goes to every shard as it comes: nothing of it needs reading here.
    if (keyColumn !== null) {
      try {
        const parsed = parseSync(text) as { stmts?: { stmt?: { CopyStmt?: CopyStmt } }[] };
        const cs = parsed.stmts?.[0]?.stmt?.CopyStmt;
        const o = cs ? copyOptionsFromAst(cs, this.svc.columnsOf(table), keyColumn) : { error: 'not a COPY statement' };
        if ('error' in o) throw new PgError(SqlState.FeatureNotSupported, o.error);
        opts = o;
      } catch (e) {
        this.replyError(toPgError(e), false);
        return;
      }
    }
    if (this.backend) await this.waitIdle();
    const implicit = !(this.txShard !== null || this.parked.size > 0 || this.localTx !== 'none');
    if (this.localTx === 'failed' || this.backend?.txStatus === 'E') {
      this.replyError(new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block'), false);
      return;
    }
    if (implicit) this.beginImplicit();
    // Every shard joins the transaction (BEGIN, session state), then all run the COPY at once.
    for (const shard of this.svc.router.shardIds) {
      await this.joinForWrite(shard);
      await this.waitIdle();
    }
    const cur = { be: this.backend!, pool: this.backendPool!, wrote: true };
    this.parked.set(cur.pool.shard.id, cur);
    this.backend = null;
    this.backendPool = null;
    this.preambleDone = false;
    this.resetExpectations();
    const copy = new ShardedCopy(this.socket, [...this.parked.values()], text, opts, table, this.svc.router);
    this.copy = copy;
    const outcome = await copy.done;
    this.copy = null;
    // Back to normal: one participant current, the others parked (idle in the transaction).
    const parts = [...this.parked.values()];
    this.parked.clear();
    let first: Participant | null = null;
    for (const p of parts) {
      if (!p.be.isOpen) {
        p.pool.destroy(p.be);
        continue;
      }
      if (!first) {
        first = p;
        continue;
      }
      this.attach(p.be, p.pool, true);
      this.preambleDone = true;
      this.park();
    }
    if (first) {
      this.attach(first.be, first.pool, true);
      this.preambleDone = true;
      this.txShard = first.pool.shard.id;
    }
    if (implicit) {
      await this.endDistributed(outcome.error === null, (_tag, err) => {
        const e = outcome.error ?? err?.toMessage() ?? null;
        this.replyLocal([e ?? M.commandComplete(`COPY ${outcome.rows}`)], 'I');
      });
      return;
    }
    if (outcome.error) {
      this.writeClient([outcome.error]);
      this.replyLocal([], 'E');
    } else this.replyLocal([M.commandComplete(`COPY ${outcome.rows}`)], this.currentStatus());
  }

  /**
   * The extended-protocol form of a write on several shards (Parse?/Bind/Describe?/Execute/Sync): on each
   * shard the statement is parsed unnamed, bound (with the rows' own parameters for a split INSERT) and
   * executed; the first shard's ParseComplete/BindComplete/descriptions answer the client's, DataRows of
   * every shard are forwarded, and one CommandComplete and ReadyForQuery close it.
   */
  private async runExtendedMulti(msgs: FrontendMessage[], multiTarget: MultiTarget, portal: PortalInfo): Promise<void> {
    const st = portal.statement;
    const bindMsg = msgs.find((m) => m.type === Frontend.Bind)!;
    const describe = msgs.find((m) => m.type === Frontend.Describe);
    const parseMsg = msgs.find((m) => m.type === Frontend.Parse);
    const bind = decodeBind(bindMsg);
    let text = st.text;
    let target: Target = multiTarget.kind === 'generate' ? { kind: 'home' } : multiTarget;
    if (multiTarget.kind === 'generate') {
      // The key is generated here (one id per row), then the statement is routed as any INSERT.
      try {
        const g = st.analysis.statements[0]!.generateKey!;
        text = rewriteWithGeneratedKey(st.text, g.column, () => this.svc.nextId(g.variant)).sql;
        const a = this.svc.analyzeOnce(text);
        target = this.inTransactionShard(this.svc.router.route(a.statements[0]!, a.hint, decodeBindParams(bindMsg.buf, bindParamsStart(bindMsg), bindMsg.end), { sessionShard: this.sessionShard }));
      } catch (e) {
        this.answerBatchLocally(msgs, { index: msgs.indexOf(bindMsg), error: toPgError(e) }, true);
        return;
      }
      if (target.kind === 'error') {
        this.answerBatchLocally(msgs, { index: msgs.indexOf(bindMsg), error: target.error }, true);
        return;
      }
    }
    let plan: { shard: string; sql: string; params: number[] | null }[];
    if (target.kind === 'shard' || target.kind === 'home') plan = [{ shard: target.kind === 'shard' ? target.shard : this.defaultShard(), sql: text, params: null }];
    else if (target.kind === 'split-insert') {
      try {
        plan = [...splitInsert(text, target.rowShards, { renumberParams: true })].map(([shard, x]) => ({ shard, sql: x.sql, params: x.params }));
      } catch (e) {
        this.answerBatchLocally(msgs, { index: msgs.indexOf(bindMsg), error: toPgError(e) }, true);
        return;
      }
    } else if (target.kind === 'broadcast') plan = target.shards.map((shard) => ({ shard, sql: text, params: null }));
    else {
      this.answerBatchLocally(msgs, { index: msgs.indexOf(bindMsg), error: new PgError(SqlState.FeatureNotSupported, 'this statement cannot run on several shards in the extended query protocol') }, true);
      return;
    }
    const oids = paramOids(st.paramTypes);
    const messagesFor = (sql: string, params: number[] | null): Buffer => {
      const types = params ? params.map((i) => oids[i] ?? 0) : oids;
      const parse = buildParse('', { key: '', text: sql, paramTypes: encodeOids(types), analysis: st.analysis });
      const b = encodeBind(bind, params);
      const parts = [parse, b];
      if (describe) parts.push(DESCRIBE_UNNAMED_PORTAL);
      parts.push(EXECUTE_UNNAMED, SYNC);
      return Buffer.concat(parts);
    };
    const g: Gather = { rowDescriptionSent: false, verb: null, count: 0n, failed: false, same: target.kind === 'broadcast' && target.reference === true, firstOnly: { parse: !!parseMsg, describe: !!describe, done: false } };
    if (target.kind === 'split-insert') g.order = new ReturningOrder(target.rowShards);
    const tagOf = st.analysis.statements[0]?.tag ?? 'this statement';
    const inBlock = this.txShard !== null || this.parked.size > 0 || this.localTx !== 'none';
    const implicit = !inBlock;
    if (target.kind === 'broadcast' && !target.transactional) {
      this.answerBatchLocally(msgs, { index: msgs.indexOf(bindMsg), error: new PgError(SqlState.FeatureNotSupported, `${tagOf} on several shards is not supported in the extended query protocol; send it as a simple query`) }, true);
      return;
    }
    if (this.localTx === 'failed' || this.backend?.txStatus === 'E') {
      this.answerBatchLocally(msgs, { index: 0, error: new PgError(SqlState.InFailedSqlTransaction, 'current transaction is aborted, commands ignored until end of transaction block') }, true);
      return;
    }
    if (parseMsg) {
      const r = this.readParse(parseMsg);
      this.commitParse(r.name, r.st);
    }
    if (implicit) this.beginImplicit();
    for (const step of plan) {
      await this.joinForWrite(step.shard);
      this.push({ kind: 'query', swallow: false, gather: g });
      this.syncPoints++;
      this.backend!.write(messagesFor(step.sql, step.params));
      this.backend!.unnamedKey = null; // its unnamed slot now holds pgshard's statement
      await this.waitIdle();
      g.firstOnly!.done = true;
      if (g.failed) break;
    }
    const tag = g.verb === null ? null : /^(UPDATE|DELETE|MERGE|INSERT)/.test(g.verb) || g.verb === 'SELECT' ? `${g.verb} ${g.count}` : g.verb;
    await this.finishGathered(g, implicit, () => (tag ? M.commandComplete(tag) : M.emptyQueryResponse));
  }

  /** A cross-shard read sent with the extended protocol: ParseComplete/BindComplete from pgshard, the rest merged. */
  private runExtendedScatter(msgs: FrontendMessage[], target: Target & { kind: 'scatter' }, portal: PortalInfo): Promise<void> {
    const inTx = this.inTransactionBlock();
    if (this.backend && !inTx) this.releaseBackend();
    const st = portal.statement;
    const bind = decodeBind(msgs.find((m) => m.type === Frontend.Bind)!);
    const parseMsg = msgs.find((m) => m.type === Frontend.Parse);
    if (parseMsg) {
      const r = this.readParse(parseMsg);
      this.commitParse(r.name, r.st);
    }
    this.writeClient(parseMsg ? [M.parseComplete, M.bindComplete] : [M.bindComplete]);
    // A merge reads values in text: the shards answer in text, the client's binary columns are re-encoded.
    const merged = target.merge !== undefined && (target.merge.rewrite !== undefined || target.merge.aggregates.length > 0);
    const shardBind = merged ? { ...bind, resultFormats: Buffer.from([0, 0]) } : bind;
    const build = (sql: string): Buffer =>
      Buffer.concat([buildParse('', { key: '', text: sql, paramTypes: st.paramTypes, analysis: st.analysis }), encodeBind(shardBind, null), DESCRIBE_UNNAMED_PORTAL, EXECUTE_UNNAMED, SYNC]);
    const request = startRequest(target.shards, target.shards.length >= this.svc.router.shardIds.length ? 'all' : 'multi', statementTypeOf(st.analysis.statements[0]?.tag));
    const params = { values: bind.values, formats: bind.values.map((_, i) => ((bind.formats.length === 1 ? bind.formats[0] : bind.formats[i]) === 1 ? 1 : 0) as 0 | 1), types: paramOids(st.paramTypes) };
    const make = (pools: ShardPool[], participants: BackendConnection[] | null) =>
      new ScatterQuery(this.socket, pools, Buffer.alloc(0), this.vars, target.merge ?? null, { text: st.text, build, params, describe: describesPortal(msgs), resultFormats: bind.resultFormats }, participants);
    if (inTx) return this.scatterInTransaction(target.shards, make).finally(() => this.finishTimed(request, st.text));
    const sc = make(target.shards.map((x) => this.svc.pools.get(x)!), null);
    this.scatter = sc;
    return sc.run().finally(() => {
      this.scatter = null;
      this.finishTimed(request, st.text);
    });
  }

  private inTransactionBlock(): boolean {
    return this.txShard !== null || this.parked.size > 0 || this.localTx !== 'none';
  }

  /**
   * A cross-shard read inside a transaction block: each shard it reaches joins the transaction as for a
   * write (BEGIN and savepoints replayed; not counted as a writer, so a transaction that only read
   * commits without two-phase commit), the read runs on the participants (src/execute/scatter.ts), and
   * they stay in the transaction. An error fails the transaction as in Postgres.
   */
  private async scatterInTransaction(shards: string[], make: (pools: ShardPool[], participants: BackendConnection[]) => ScatterQuery): Promise<void> {
    if (this.backend) await this.waitIdle();
    if (this.localTx === 'failed' || this.backend?.txStatus === 'E') {
      this.replyError(inFailedTransaction(), false);
      return;
    }
    for (const shard of shards) {
      await this.attachShard(shard);
      if (this.closed) return;
      this.sendPreamble();
      await this.waitIdle();
    }
    const current = this.backendPool!.shard.id;
    this.park(); // every participant of the read leaves the session while it runs
    const parts = shards.map((x) => this.parked.get(x)!);
    const sc = make(
      parts.map((p) => p.pool),
      parts.map((p) => p.be),
    );
    this.scatter = sc;
    try {
      await sc.run();
    } finally {
      this.scatter = null;
    }
    for (const p of parts) {
      if (p.be.isOpen) continue;
      this.parked.delete(p.pool.shard.id);
      p.pool.destroy(p.be);
      this.parkedLost ??= new PgError(SqlState.ConnectionFailure, `shard "${p.pool.shard.id}" closed its connection during the transaction`);
    }
    // The participant where the transaction failed (or the one that was current) is current again.
    const open = [...this.parked.values()];
    const next = open.find((p) => p.be.txStatus === 'E') ?? this.parked.get(current) ?? open[0];
    if (!next) {
      this.txShard = null;
      if (this.localTx === 'none') this.localTx = 'failed';
      return;
    }
    this.parked.delete(next.pool.shard.id);
    if (sc.failed && next.be.txStatus !== 'E') {
      // pgshard's own error (a merge it cannot do, shards that disagree): the transaction fails as in Postgres.
      await runQuery(next.be, FAILING_SQL).catch(() => undefined);
    }
    this.attach(next.be, next.pool, next.wrote, next.lockBound === true);
    this.preambleDone = true;
    this.txShard = next.pool.shard.id;
  }

  private waitIdle(): Promise<void> {
    if (this.syncPoints === 0 && !this.extendedOpen && !this.copyIn) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * A write that must run on several shards (keyless UPDATE/DELETE, DDL, writes to reference tables): the
   * same statement on each shard in turn, inside one distributed transaction — the client's, or an
   * implicit one committed with two-phase commit at the end — answered as one statement. Statements
   * Postgres refuses in a transaction block run one shard at a time; a failure names where it applied.
   */
  private async runBroadcast(plan: { shard: string; text: string }[], transactional: boolean, same: boolean, order?: ReturningOrder): Promise<void> {
    const shards = plan.map((p) => p.shard);
    const textOf = (shard: string) => plan.find((p) => p.shard === shard)!.text;
    if (this.backend) await this.waitIdle();
    const g: Gather = { rowDescriptionSent: false, verb: null, count: 0n, failed: false, same };
    if (order) g.order = order;
    const tag = () => (g.verb === null ? 'EMPTY' : g.verb === 'SELECT' || g.verb === 'UPDATE' || g.verb === 'DELETE' || g.verb.startsWith('INSERT') || g.verb === 'MERGE' || g.verb === 'COPY' ? `${g.verb} ${g.count}` : g.verb);
    const inBlock = this.txShard !== null || this.parked.size > 0 || this.localTx !== 'none';
    if (!transactional) {
      if (inBlock) {
        this.replyError(new PgError('25001', `${this.svc.analyze(plan[0]!.text).statements[0]?.tag ?? 'this statement'} cannot run inside a transaction block`), false);
        return;
      }
      const done: string[] = [];
      for (const shard of shards) {
        await this.runOn(shard, textOf(shard), g);
        if (g.failed) {
          const left = shards.filter((x) => x !== shard && !done.includes(x));
          this.replyLocal(
            [
              M.noticeResponse({
                severity: 'WARNING',
                code: '01000',
                message: `the statement failed on shard "${shard}"; it was applied on ${done.length ? done.map((x) => `"${x}"`).join(', ') : 'no shard'} and not on ${[shard, ...left].map((x) => `"${x}"`).join(', ')}`,
              }),
            ],
            'I',
          );
          return;
        }
        done.push(shard);
      }
      this.replyLocal([M.commandComplete(tag())], 'I');
      return;
    }
    const implicit = !inBlock;
    if (implicit) this.beginImplicit();
    for (const shard of shards) {
      await this.runOn(shard, textOf(shard), g);
      if (g.failed) break;
    }
    if (!g.failed && g.verb !== null && /^(CREATE|ALTER|DROP) TABLE/.test(g.verb)) this.ddlSent = true;
    await this.finishGathered(g, implicit, () => M.commandComplete(tag()));
  }

  /**
   * Ends a statement run on several shards: in an implicit transaction, commits (or rolls back) and
   * answers; in the client's transaction, answers (a failure leaves the transaction failed). Held RETURNING
   * rows go out in VALUES order just before the command tag; when their order cannot be known, the
   * statement fails instead.
   */
  private async finishGathered(g: Gather, implicit: boolean, complete: () => Buffer): Promise<void> {
    const rows = g.order && !g.failed ? g.order.ordered() : [];
    const orderError = rows instanceof PgError ? rows : null;
    if (implicit) {
      if (orderError) this.svc.observer.error(orderError.code);
      await this.endDistributed(!g.failed && !orderError, (_t, err) => {
        if (g.failed) this.replyLocal([], 'I');
        else if (orderError) this.replyLocal([orderError.toMessage()], 'I');
        else this.replyLocal(err ? [err.toMessage()] : [...(rows as Buffer[]), complete()], 'I');
      });
      return;
    }
    if (g.failed) this.replyLocal([], 'E');
    else if (orderError) this.replyError(orderError, false); // through the participant: its transaction fails too
    else this.replyLocal([...(rows as Buffer[]), complete()], this.currentStatus());
  }

  /** A write on several shards outside a transaction block runs in a transaction of its own. */
  private beginImplicit(): void {
    this.localTx = 'begin-pending';
    this.pendingBegin = 'BEGIN';
    this.beginSql = 'BEGIN';
  }

  /** Makes `shard` the current participant (joining the transaction if needed) for a write. */
  private async joinForWrite(shard: string): Promise<void> {
    await this.attachShard(shard);
    if (this.closed) throw new PgError(SqlState.ConnectionFailure, 'the client closed the connection'); // nothing more to run
    this.sendPreamble();
    this.curWrote = true;
  }

  /** Makes `shard` the current backend, waiting for the current one to finish and for a connection. */
  private async attachShard(shard: string): Promise<void> {
    for (;;) {
      const r = this.useShard(shard);
      if (r === true) return;
      if (r === false) await this.waitIdle();
      else await r;
      if (this.closed) return;
    }
  }

  /** Sends a statement to one shard's participant and waits for its answer (gathered into g). */
  private async runOn(shard: string, text: string, g: Gather): Promise<void> {
    await this.joinForWrite(shard);
    this.push({ kind: 'query', swallow: false, gather: g });
    this.syncPoints++;
    this.backend!.write(M.queryMessage(text));
    await this.waitIdle();
  }

  /** A read on several shards whose rows are concatenated; nothing else runs for the client meanwhile. */
  private runScatter(m: FrontendMessage, shards: string[], merge: MergePlan | null, statement: StatementType): boolean | Promise<void> {
    if (this.inTransactionBlock()) {
      const request = startRequest(shards, shards.length >= this.svc.router.shardIds.length ? 'all' : 'multi', statement);
      const query = Buffer.from(m.buf.subarray(m.start, m.end));
      return this.scatterInTransaction(shards, (pools, participants) => new ScatterQuery(this.socket, pools, query, this.vars, merge, null, participants)).finally(() =>
        this.finishTimed(request, m.buf.toString('utf8', m.start + 5, m.end - 1)),
      );
    }
    if (this.backend) {
      if (!this.idleBackend()) return false;
      this.releaseBackend();
    }
    const request = startRequest(shards, shards.length >= this.svc.router.shardIds.length ? 'all' : 'multi', statement);
    const pools = shards.map((s) => this.svc.pools.get(s)!);
    const sc = new ScatterQuery(this.socket, pools, Buffer.from(m.buf.subarray(m.start, m.end)), this.vars, merge);
    this.scatter = sc;
    return sc.run().finally(() => {
      this.scatter = null;
      this.finishTimed(request, m.buf.toString('utf8', m.start + 5, m.end - 1));
    });
  }

  // ---------------------------------------------------------------- ending

  private fatal(err: PgError): void {
    if (this.closed) return;
    this.svc.observer.error(err.code);
    this.flushRun();
    this.socket.end(err.toMessage());
    this.onClientClose();
  }

  private terminate(): void {
    this.socket.end();
    this.onClientClose();
  }

  private onClientClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.framer.stop();
    this.queue = [];
    this.pendingNotifications = [];
    this.svc.notifications.drop(this);
    if (this.parked.size > 0 || (this.backend && this.backend.txStatus !== 'I'))
      this.svc.observer.transaction(transactionKind([...this.parked.values()].filter((p) => p.wrote).length + (this.curWrote ? 1 : 0)), 'rollback');
    for (const p of this.parked.values()) p.pool.destroy(p.be); // closing rolls their transactions back
    this.parked.clear();
    if (this.ticket) {
      this.ticket.forget(); // its answer is read and dropped; the shared connection goes on
      this.ticket = null;
      if (this.ticketAttached) {
        this.ticketAttached = false;
        this.backend = null;
        this.backendPool = null;
      }
    }
    const be = this.backend;
    const pool = this.backendPool;
    if (be && pool) {
      this.backend = null;
      this.backendPool = null;
      be.listener = null;
      if (this.syncPoints === 0 && !this.extendedOpen && !this.copyIn && be.txStatus === 'I') pool.release(be);
      else pool.destroy(be); // mid-transaction or mid-request: closing rolls the transaction back
    }
    this.onClosed?.();
  }

  onClosed: (() => void) | null = null;

  /** A CancelRequest naming this session: cancel what its backend is running, if anything. */
  cancel(): void {
    const be = this.backend;
    // A pipelined statement is cancelled only while it runs: what the connection runs otherwise is another client's.
    const t = this.ticket;
    if (t) {
      if (t.running) sendCancel(t.backend.shard.host, t.backend.shard.port, t.backend.pid, t.backend.secret);
    } else if (be && (this.syncPoints > 0 || this.extendedOpen)) sendCancel(be.shard.host, be.shard.port, be.pid, be.secret);
    this.scatter?.cancel();
  }

  private gateHeld = false;
  /** The gate's epoch when this session last started work (a statement or transaction) while it was closed. */
  private workEpoch = 0;

  /**
   * Waits at the cut-over gate if one of the statements touches a moving key; null: go on now. Work
   * begun before the gate closed (an open transaction) goes on on the old ring: the cut-over waits for it.
   */
  private holdAtGate(stmts: readonly StatementInfo[], hint: RoutingHint | null, params: BindParams | null): Promise<void> | null {
    const gate = this.svc.gate;
    if (!this.backend && this.parked.size === 0) this.workEpoch = gate.epoch;
    else if (this.workEpoch !== gate.epoch) return null;
    for (const st of stmts) {
      const held = this.svc.gate.holdFor(st, hint, params, this.sessionShard);
      if (held) {
        this.gateHeld = true;
        return held.then(() => void (this.gateHeld = false));
      }
    }
    return null;
  }

  /**
   * For a cut-over: nothing this session routed with the ring being replaced is still running or about to
   * run (it holds no backend, and is not between routing and checkout unless it waits at the gate).
   */
  get quietForCutover(): boolean {
    // Work started while the gate is closed passed it: it touches no moving key.
    if (this.gateHeld || this.workEpoch === this.svc.gate.epoch) return true;
    return !this.busy && !this.backend && this.ticket === null && this.parked.size === 0;
  }

  /** What the admin console's SHOW CLIENTS says of this session: its state and the shards it holds now. */
  get consoleState(): { state: 'idle' | 'active' | 'idle in transaction' | 'idle in transaction (aborted)'; shards: string[] } {
    const shards = new Set(this.parked.keys());
    if (this.backendPool) shards.add(this.backendPool.shard.id);
    if (this.ticket) shards.add(this.ticket.backend.shard.id);
    const working = this.ticket !== null || this.busy || this.syncPoints > 0 || this.extendedOpen || this.copyIn || this.scatter !== null || this.queue.length > 0;
    const tx = this.currentStatus();
    const state = working ? 'active' : tx === 'T' ? 'idle in transaction' : tx === 'E' ? 'idle in transaction (aborted)' : 'idle';
    return { state, shards: [...shards].sort() };
  }

  /** What the session is doing, for the timeout sweep. */
  get activity(): SessionActivity {
    const be = this.backend;
    if (this.scatter || this.ticket) return this.socket.writableNeedDrain ? 'client-not-reading' : 'active';
    // COPY FROM STDIN waits for the client's data; an open extended batch without Sync, for its next message.
    if (this.copyIn || this.copy) return 'busy';
    if (be && (this.syncPoints > 0 || this.expectHead < this.expect.length)) return this.socket.writableNeedDrain ? 'client-not-reading' : 'active';
    if (this.busy || this.extendedOpen || this.queue.length > 0 || this.syncPoints > 0) return 'busy';
    if ((be && be.txStatus !== 'I') || this.localTx !== 'none' || this.parked.size > 0) return 'idle-in-transaction';
    return 'idle';
  }

  /** Progress of the running request: bytes from its backend, or, for a read on several shards, to the client. */
  get progress(): number {
    return this.scatter ? this.socket.bytesWritten : this.backendReads;
  }

  /** The timeout backstop: the shard(s) of the running request stopped answering. */
  abandon(err: PgError): void {
    if (this.scatter) this.scatter.abandon(err);
    else if (this.ticket) this.ticket.abandon(err);
    else this.lost(err);
  }

  /** For graceful shutdown: true when no transaction or request is open. */
  get isIdle(): boolean {
    return !this.backend && this.ticket === null && this.localTx === 'none' && this.queue.length === 0;
  }

  close(reason: PgError): void {
    this.fatal(reason);
  }
}

/** A statement that may run on a connection shared with other clients: a read-only SELECT with no effect on the session. */
function shares(st: StatementInfo): boolean {
  return st.tag === 'SELECT' && st.readOnly && !st.session && !st.tx && !st.copy && !st.explainText;
}

/** A FATAL the shard sent as it closed its connection, as the ERROR the client gets: its session goes on. */
function fatalAsError(f: ReturnType<typeof M.decodeErrorFields>): Buffer {
  return M.errorResponse({ severity: 'ERROR', code: f.C ?? SqlState.ConnectionFailure, message: f.M ?? 'backend terminated', ...(f.D ? { detail: f.D } : {}), ...(f.H ? { hint: f.H } : {}) });
}

/**
 * Whether a chunk, walked message by message from its start, holds only simple Queries. A chunk that
 * continues a message begun in the previous read walks as garbage: the answer only decides whether it is
 * copied first, and the session still holds the buffer if a message other than a Query turns up.
 */
function startsWithQueriesOnly(chunk: Buffer): boolean {
  let p = 0;
  while (p + 5 <= chunk.length) {
    if (chunk[p] !== Frontend.Query) return false;
    const len = chunk.readInt32BE(p + 1);
    if (len < 4) return false;
    p += 1 + len;
  }
  return true;
}

function readPortalName(m: FrontendMessage): string {
  return M.readCString(m.buf, m.start + 5, m.end)[0];
}

/** The parameters of a Bind message, from just after its statement name. */
export function decodeBindParams(buf: Buffer, pos: number, end: number): BindParams {
  const nf = buf.readInt16BE(pos);
  pos += 2;
  const fcodes: number[] = [];
  for (let i = 0; i < nf; i++, pos += 2) fcodes.push(buf.readInt16BE(pos));
  const np = buf.readInt16BE(pos);
  pos += 2;
  const values: (Buffer | null)[] = [];
  const formats: (0 | 1)[] = [];
  for (let i = 0; i < np; i++) {
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) values.push(null);
    else {
      if (pos + len > end) throw new PgError(SqlState.ProtocolViolation, 'Bind message parameter runs past the message end');
      values.push(buf.subarray(pos, pos + len));
      pos += len;
    }
    formats.push((nf === 0 ? 0 : nf === 1 ? fcodes[0] : fcodes[i]) === 1 ? 1 : 0);
  }
  return { values, formats };
}

/** 'commit' or 'rollback' when the batch's only Execute ends the transaction. */
function transactionEnd(msgs: FrontendMessage[], portal: (name: string) => PortalInfo | undefined): 'commit' | 'rollback' | null {
  const execs = msgs.filter((m) => m.type === Frontend.Execute);
  if (execs.length !== 1) return null;
  const st = portal(readPortalName(execs[0]!))?.statement.analysis.statements;
  const tx = st && st.length === 1 ? st[0]!.tx : undefined;
  return tx?.type === 'commit' || tx?.type === 'rollback' ? tx.type : null;
}

type MultiTarget = (Target & { kind: 'broadcast' | 'split-insert' }) | { kind: 'generate' };

/** Where a Bind message's parameter section starts (after its portal and statement names). */
function bindParamsStart(m: FrontendMessage): number {
  const [, p1] = M.readCString(m.buf, m.start + 5, m.end);
  return M.readCString(m.buf, p1, m.end)[1];
}

const EXECUTE_UNNAMED = Buffer.from([Frontend.Execute, 0, 0, 0, 9, 0, 0, 0, 0, 0]);
const DESCRIBE_UNNAMED_PORTAL = Buffer.from([Frontend.Describe, 0, 0, 0, 6, 0x50, 0]);

/** The batch describes its portal (so the client expects the RowDescription a scatter forwards). */
function describesPortal(msgs: FrontendMessage[]): boolean {
  return msgs.some((m) => m.type === Frontend.Describe && m.buf[m.start + 5] === 0x50);
}

/** Parse?, Bind, Describe?, Execute, Sync: one statement, as drivers send it. */
function simpleBatchShape(msgs: FrontendMessage[]): boolean {
  const types = msgs.map((m) => m.type);
  const count = (t: number) => types.filter((x) => x === t).length;
  return (
    count(Frontend.Bind) === 1 &&
    count(Frontend.Execute) === 1 &&
    count(Frontend.Parse) <= 1 &&
    count(Frontend.Describe) <= 1 &&
    types[types.length - 1] === Frontend.Sync &&
    types.every((t) => t === Frontend.Parse || t === Frontend.Bind || t === Frontend.Describe || t === Frontend.Execute || t === Frontend.Sync)
  );
}

interface DecodedBind {
  formats: number[];
  values: (Buffer | null)[];
  resultFormats: Buffer; // the result-format section as sent
}

function decodeBind(m: FrontendMessage): DecodedBind {
  const [, p1] = M.readCString(m.buf, m.start + 5, m.end);
  let pos = M.readCString(m.buf, p1, m.end)[1];
  const nf = m.buf.readInt16BE(pos);
  pos += 2;
  const formats: number[] = [];
  for (let i = 0; i < nf; i++, pos += 2) formats.push(m.buf.readInt16BE(pos));
  const np = m.buf.readInt16BE(pos);
  pos += 2;
  const values: (Buffer | null)[] = [];
  for (let i = 0; i < np; i++) {
    const len = m.buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) values.push(null);
    else {
      values.push(m.buf.subarray(pos, pos + len));
      pos += len;
    }
  }
  return { formats, values, resultFormats: m.buf.subarray(pos, m.end) };
}

/** A Bind of the unnamed statement into the unnamed portal, with a subset of the parameters (null: all). */
function encodeBind(b: DecodedBind, params: number[] | null): Buffer {
  const idx = params ?? b.values.map((_, i) => i);
  const formatOf = (i: number) => (b.formats.length === 0 ? 0 : b.formats.length === 1 ? b.formats[0]! : (b.formats[i] ?? 0));
  const vals = idx.map((i) => b.values[i] ?? null);
  const len = 4 + 1 + 1 + 2 + idx.length * 2 + 2 + vals.reduce((a, v) => a + 4 + (v ? v.length : 0), 0) + b.resultFormats.length;
  const out = Buffer.allocUnsafe(1 + len);
  out[0] = Frontend.Bind;
  out.writeInt32BE(len, 1);
  let o = 5;
  out[o++] = 0; // portal ''
  out[o++] = 0; // statement ''
  out.writeInt16BE(idx.length, o);
  o += 2;
  for (const i of idx) {
    out.writeInt16BE(formatOf(i), o);
    o += 2;
  }
  out.writeInt16BE(vals.length, o);
  o = M.writeValues(out, o + 2, vals);
  b.resultFormats.copy(out, o);
  return out;
}

function paramOids(paramTypes: Buffer): number[] {
  if (paramTypes.length < 2) return [];
  const n = paramTypes.readInt16BE(0);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(paramTypes.readInt32BE(2 + i * 4));
  return out;
}

function encodeOids(oids: number[]): Buffer {
  const b = Buffer.allocUnsafe(2 + oids.length * 4);
  b.writeInt16BE(oids.length, 0);
  oids.forEach((o, i) => b.writeInt32BE(o, 2 + i * 4));
  return b;
}

function crossShardBatch(): PgError {
  return new PgError(SqlState.FeatureNotSupported, 'the statements before this Sync reach different shards, which needs distributed transactions (not supported yet)', {
    hint: 'Send a Sync between statements on different shard keys, or keep the batch on one shard key value.',
  });
}

/**
 * A batch of single-shard statements for different shards up to one Sync (pgjdbc's executeBatch,
 * psycopg's executemany): cut into groups that each end with an Execute, with the shard each runs on
 * (null: wherever the transaction is); null when the batch has another shape (messages after its last
 * Execute, an Execute whose statement pgshard could not route alone).
 */
function batchGroups(msgs: FrontendMessage[], targets: Map<number, Target>): { shard: string | null; msgs: FrontendMessage[] }[] | null {
  const groups: { shard: string | null; msgs: FrontendMessage[] }[] = [];
  let cur: FrontendMessage[] = [];
  for (let i = 0; i < msgs.length - 1; i++) {
    const m = msgs[i]!;
    if (m.type !== Frontend.Parse && m.type !== Frontend.Bind && m.type !== Frontend.Describe && m.type !== Frontend.Execute && m.type !== Frontend.Close) return null;
    cur.push(m);
    if (m.type !== Frontend.Execute) continue;
    const t = targets.get(i);
    if (t && t.kind !== 'shard' && t.kind !== 'home') return null;
    groups.push({ shard: t?.kind === 'shard' ? t.shard : null, msgs: cur });
    cur = [];
  }
  if (cur.length || msgs[msgs.length - 1]!.type !== Frontend.Sync) return null;
  return groups;
}

function mergeTargets(a: Target, b: Target): Target {
  if (a.kind === 'home') return b;
  if (b.kind === 'home') return a;
  if (a.kind === 'shard' && b.kind === 'shard' && a.shard === b.shard) return a;
  return { kind: 'error', error: crossShardBatch() };
}

function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'home':
      return 'home';
    case 'shard':
      return `shard ${t.shard}`;
    case 'scatter':
      return `scatter ${t.shards.join(',')}`;
    case 'broadcast':
      return `broadcast ${t.shards.join(',')}`;
    case 'copy-in':
      return t.keyColumn === null ? `copy into ${t.table} on every shard` : `copy into ${t.table} by ${t.keyColumn}`;
    case 'split-insert':
      return `split insert over ${[...new Set(t.rowShards)].join(',')}`;
    case 'error':
      return `refused ${t.error.code}`;
  }
}
