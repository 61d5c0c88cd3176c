/**
 * What the proxy's core reports to the metrics, and the words it reports in. The core holds a
 * `ProxyObserver` (the no-op one when no admin port is configured) and calls it where things happen; it
 * never imports prom-client. Every label value here comes from a small fixed set: never a statement's
 * text, a key value or a user name.
 */
import type { Socket } from 'node:net';
import type { Target } from '../routing/router.js';
import type { StatementInfo } from '../sql/types.js';

/**
 * How a request was routed. single: one shard chosen by key (or by a routing hint); multi: several shards,
 * not all; all: every shard; reference: a read of reference tables; admin: answered by pgshard itself;
 * home: touches no sharded table, ran on the session's home shard.
 */
export type RouteKind = 'single' | 'multi' | 'all' | 'reference' | 'admin' | 'home';
export const ROUTE_KINDS: readonly RouteKind[] = ['single', 'multi', 'all', 'reference', 'admin', 'home'];

export type StatementType = 'select' | 'insert' | 'update' | 'delete' | 'other';
export const STATEMENT_TYPES: readonly StatementType[] = ['select', 'insert', 'update', 'delete', 'other'];

export type TransactionKind = 'single_shard' | 'two_phase';
export type TransactionOutcome = 'commit' | 'rollback';

/** A transaction with more than one writing shard is committed in two phases. */
export function transactionKind(writers: number): TransactionKind {
  return writers > 1 ? 'two_phase' : 'single_shard';
}

/** The shard label of requests pgshard answers itself (route kind `admin`). */
export const NO_SHARD = 'none';

export interface ProxyObserver {
  /**
   * One request (a simple Query, or an Execute) finished after `seconds`. `shard` is every shard it ran
   * on: each is counted once; the latency is observed once.
   */
  query(shard: string | readonly string[], route: RouteKind, statement: StatementType, seconds: number): void;
  /** An ErrorResponse went to a client (from a shard or from pgshard), by its SQLSTATE. */
  error(sqlstate: string): void;
  /** A transaction ended. */
  transaction(kind: TransactionKind, outcome: TransactionOutcome): void;
  /** A request waited this long for a connection of `shard`'s pool (0 when one was idle). */
  checkoutWait(shard: string, seconds: number): void;
  /** A client connection was accepted: its bytes in and out are counted until it closes. */
  clientSocket(socket: Socket): void;
}

/** The observer when nothing observes: every call does nothing. */
export const noopObserver: ProxyObserver = {
  query() {},
  error() {},
  transaction() {},
  checkoutWait() {},
  clientSocket() {},
};

/** The route kind of a routed request. `stmt`: its statement when it has exactly one. */
export function routeKindOf(target: Target, stmt: StatementInfo | undefined, shardCount: number): RouteKind {
  if (target.kind === 'error') return 'admin';
  if (stmt?.route.type === 'reference') return 'reference';
  if (target.kind === 'home') return 'home';
  if (target.kind === 'shard') return stmt?.route.type === 'none' ? 'home' : 'single';
  // Several shards (a scatter read, a broadcast write).
  const n = 'shards' in target ? target.shards.length : shardCount;
  return n >= shardCount ? 'all' : 'multi';
}

/** The route kind of a statement that runs on the one shard a session holds (the extended protocol). */
export function routeKindOfStatement(stmt: StatementInfo | undefined): RouteKind {
  switch (stmt?.route.type) {
    case 'keys':
    case 'all':
      return 'single';
    case 'reference':
      return 'reference';
    default:
      return 'home';
  }
}

/** The statement type of a command tag (StatementInfo.tag: SELECT, INSERT, …). */
export function statementTypeOf(tag: string | undefined): StatementType {
  switch (tag) {
    case 'SELECT':
      return 'select';
    case 'INSERT':
      return 'insert';
    case 'UPDATE':
      return 'update';
    case 'DELETE':
      return 'delete';
    default:
      return 'other';
  }
}

/** A request on its way: where it went and when it was sent. */
export interface RequestTiming {
  shard: string | readonly string[];
  route: RouteKind;
  statement: StatementType;
  t0: number;
}

export function startRequest(shard: string | readonly string[], route: RouteKind, statement: StatementType): RequestTiming {
  return { shard, route, statement, t0: performance.now() };
}

/** Reports a request started with startRequest as finished now. */
export function finishRequest(observer: ProxyObserver, r: RequestTiming): void {
  observer.query(r.shard, r.route, r.statement, (performance.now() - r.t0) / 1000);
}
