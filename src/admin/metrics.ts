/**
 * pgshard's Prometheus metrics, in a Registry of their own (never prom-client's global one).
 *
 * Naming follows Prometheus conventions: base units (seconds, bytes), `_total` for counters, `_seconds`
 * for durations; labels come from small fixed sets (shard ids, route kinds, statement types, SQLSTATE
 * classes), never from statement text or key values. grafana/README.md lists every metric.
 *
 * The hot-path methods (query, error, transaction, checkoutWait) update pre-resolved cells (cells.ts);
 * everything read from the server's state (clients, pools, health, parse cache, ring) is read at scrape
 * time. Series that a feature has not produced yet (rebalancing, a first error) are exported at 0 so
 * that dashboards show 0 instead of "no data".
 */
import type { Socket } from 'node:net';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { PgShardServer } from '../server/server.js';
import type { ShardPool } from '../pool/pool.js';
import { HashRing } from '../routing/ring.js';
import { PGSHARD_VERSION } from '../version.js';
import { CellCounter, CellHistogram, type CounterCell, type HistogramCell, ReadMetric } from './cells.js';
import { HealthMonitor } from './health.js';
import {
  NO_SHARD,
  ROUTE_KINDS,
  STATEMENT_TYPES,
  type ProxyObserver,
  type RouteKind,
  type StatementType,
  type TransactionKind,
  type TransactionOutcome,
} from './observer.js';

export const METRIC_PREFIX = 'pgshard_';

/** Seconds: 100 µs (a cached single-shard read on loopback) to 30 s. */
export const QUERY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds: an idle connection is ~0; a new one a few ms; a saturated pool up to checkout_timeout_ms. */
export const CHECKOUT_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsOptions {
  /** Node.js process metrics (event-loop lag, heap, GC, CPU, file descriptors), prefixed pgshard_. Default true. */
  processMetrics?: boolean;
  /** How often shard health is probed once attached, in ms. Default 5000. */
  healthIntervalMs?: number;
  /** How long a health probe waits for a connection, in ms. Default 2000. */
  healthTimeoutMs?: number;
}

const ROUTES = ROUTE_KINDS.length;
const STMTS = STATEMENT_TYPES.length;
const routeIndex = Object.fromEntries(ROUTE_KINDS.map((r, i) => [r, i])) as Record<RouteKind, number>;
const stmtIndex = Object.fromEntries(STATEMENT_TYPES.map((s, i) => [s, i])) as Record<StatementType, number>;
const SQLSTATE_CLASS = /^[0-9A-Z]{2}/;
/**
 * SQLSTATE classes exported at 0 from the start, so that error panels and alerts have a series before the
 * first error: 08 connection, 0A not supported (cross-shard refusals), 22 data, 23 integrity, 25 transaction
 * state, 28 authorization, 40 rollback (serialization, deadlock), 42 syntax or access, 53 resources (pool
 * timeout, too many clients), 57 operator intervention (shutdown, cancel), XX internal.
 */
const COMMON_ERROR_CLASSES = ['08', '0A', '22', '23', '25', '28', '40', '42', '53', '57', 'XX'];

interface SocketBytes {
  read: number;
  written: number;
}

export class Metrics implements ProxyObserver {
  readonly registry = new Registry();
  private server: PgShardServer | null = null;
  /** Shard health probes; set by attach(). */
  health: HealthMonitor | null = null;
  private readonly opts: Required<MetricsOptions>;

  private readonly queries: CellCounter;
  private readonly errors: CellCounter;
  private readonly transactions: CellCounter;
  private readonly checkout: CellHistogram;
  private readonly rebalanceRows: CounterCell;
  private readonly rebalanceLag: Gauge;
  private readonly cutoverPause: Gauge;

  // Pre-resolved cells: queries by shard → [route × statement type]; latency by route; the rest by key.
  private readonly queryCells = new Map<string, (CounterCell | undefined)[]>();
  private readonly latencyCells: HistogramCell[];
  private readonly errorCells = new Map<string, CounterCell>();
  private readonly txCells = new Map<string, CounterCell>();
  private readonly checkoutCells = new Map<string, HistogramCell>();
  /** Open client sockets and the byte counts already added for them. */
  private readonly sockets = new Map<Socket, SocketBytes>();
  private readonly bytes = { received: 0, sent: 0 };

  constructor(options: MetricsOptions = {}) {
    this.opts = { processMetrics: true, healthIntervalMs: 5000, healthTimeoutMs: 2000, ...options };
    const r = this.registry;
    const p = METRIC_PREFIX;
    if (this.opts.processMetrics) {
      collectDefaultMetrics({ register: r, prefix: p });
      // prom-client also exports the sums of three labelled gauges as gauges named `…_total`, a suffix
      // Prometheus reserves for counters (promtool check metrics rejects them); sum() of the labelled
      // gauge gives the same number.
      for (const g of ['active_handles', 'active_requests', 'active_resources']) r.removeSingleMetric(`${p}nodejs_${g}_total`);
    }
    new ReadMetric(`${p}build_info`, 'The running pgshard version; always 1.', 'gauge', () => [{ labels: { version: PGSHARD_VERSION }, value: 1 }], 'first').register(r);

    this.queries = new CellCounter(
      `${p}queries_total`,
      'Requests (a simple Query or an Execute) run, by shard, route kind and statement type; a request on several shards counts once on each.',
      ['shard', 'route', 'statement'],
    ).register(r);
    this.queryCellsFor(NO_SHARD);
    const latency = new CellHistogram(`${p}query_duration_seconds`, 'Time from sending a request to its shard(s) to its completion, by route kind.', ['route'], QUERY_BUCKETS).register(r);
    this.latencyCells = ROUTE_KINDS.map((k) => latency.cell(k));
    this.errors = new CellCounter(`${p}errors_total`, 'ErrorResponses sent to clients, by SQLSTATE class (the first two characters of the code).', ['class']).register(r);
    for (const cls of COMMON_ERROR_CLASSES) this.error(`${cls}000`, 0);

    this.transactions = new CellCounter(`${p}transactions_total`, 'Transactions ended, by kind (two_phase: more than one shard wrote; else single_shard) and outcome (commit, rollback).', ['kind', 'outcome']).register(r);
    for (const k of ['single_shard', 'two_phase'] as const) for (const o of ['commit', 'rollback'] as const) this.txCell(k, o);
    new ReadMetric(`${p}transactions_in_doubt`, 'Two-phase transactions whose commit is decided and not yet finished on every shard (recovery retries them).', 'gauge', () => [
      { value: this.coordinator()?.inDoubt ?? 0 },
    ]).register(r);

    this.checkout = new CellHistogram(`${p}pool_checkout_wait_seconds`, 'Time a request waited for a connection from a shard pool (about 0 when one was idle).', ['shard'], CHECKOUT_BUCKETS).register(r);

    new ReadMetric(`${p}client_received_bytes_total`, 'Bytes received from clients.', 'counter', () => [{ value: this.flushSockets().received }]).register(r);
    new ReadMetric(`${p}client_sent_bytes_total`, 'Bytes sent to clients.', 'counter', () => [{ value: this.flushSockets().sent }]).register(r);

    this.rebalanceRows = new CellCounter(`${p}rebalance_rows_copied_total`, 'Rows copied to their new shard by rebalancing.', []).register(r).cell();
    // Only the worker (or instance) running a rebalance sets these; the others report 0.
    this.rebalanceLag = new Gauge({ name: `${p}rebalance_lag_bytes`, help: 'WAL of a running rebalance not yet applied on the receiving shard (0 when none runs).', registers: [r], aggregator: 'max' });
    this.rebalanceLag.set(0);
    this.cutoverPause = new Gauge({ name: `${p}rebalance_cutover_pause_seconds`, help: 'How long writes to the moving key range were held at the last cut-over (0: none yet).', registers: [r], aggregator: 'max' });
    this.cutoverPause.set(0);

    this.registerServerMetrics();
  }

  // ------------------------------------------------------------------ hot path (ProxyObserver)

  query(shard: string | readonly string[], route: RouteKind, statement: StatementType, seconds: number): void {
    const i = routeIndex[route] * STMTS + stmtIndex[statement];
    if (typeof shard === 'string') this.queryCell(shard, i).value++;
    else for (const s of shard) this.queryCell(s, i).value++;
    this.latencyCells[routeIndex[route]]!.observe(seconds);
  }

  error(sqlstate: string, count = 1): void {
    const cls = SQLSTATE_CLASS.test(sqlstate) ? sqlstate.slice(0, 2) : 'XX';
    let c = this.errorCells.get(cls);
    if (!c) {
      c = this.errors.cell(cls);
      this.errorCells.set(cls, c);
    }
    c.value += count;
  }

  transaction(kind: TransactionKind, outcome: TransactionOutcome): void {
    this.txCell(kind, outcome).value++;
  }

  checkoutWait(shard: string, seconds: number): void {
    this.checkoutCell(shard).observe(seconds);
  }

  /** Counts a client connection's bytes from now until it closes. Idempotent. */
  clientSocket(socket: Socket): void {
    if (this.sockets.has(socket)) return;
    const seen: SocketBytes = { read: socket.bytesRead, written: socket.bytesWritten };
    this.sockets.set(socket, seen);
    socket.once('close', () => {
      this.flushSocket(socket, seen);
      this.sockets.delete(socket);
    });
  }

  // ------------------------------------------------------------------ features to come (exported at 0 until then)

  rebalanceRowsCopied(rows: number): void {
    this.rebalanceRows.inc(rows);
  }

  setRebalanceLag(bytes: number): void {
    this.rebalanceLag.set(bytes);
  }

  cutover(pauseSeconds: number): void {
    this.cutoverPause.set(pauseSeconds);
  }

  // ------------------------------------------------------------------ the server's state

  /**
   * Reads the server's state at every scrape from now on, exports every shard's series (at 0), and starts
   * the health probes. Call after `server.start()`. Idempotent.
   */
  attach(server: PgShardServer): void {
    if (this.server === server) return;
    this.health?.stop();
    this.server = server;
    for (const s of server.topology?.shards ?? server.config.shards) {
      this.queryCellsFor(s.id);
      this.checkoutCell(s.id);
    }
    this.health = new HealthMonitor(() => server.pools.values(), this.opts.healthIntervalMs, this.opts.healthTimeoutMs);
    this.health.start();
  }

  /** Stops the health probes. */
  close(): void {
    this.health?.stop();
  }

  /** The text exposition of every metric. */
  /** Set in a worker of several (`workers: N`): the text of every worker's metrics, combined by the primary. */
  aggregate: (() => Promise<string>) | null = null;

  text(): Promise<string> {
    return this.aggregate ? this.aggregate() : this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private registerServerMetrics(): void {
    const r = this.registry;
    const p = METRIC_PREFIX;
    const pools = (): ShardPool[] => (this.server ? [...this.server.pools.values()] : []);
    const perShard = (f: (pool: ShardPool) => number) => pools().map((pool) => ({ labels: { shard: pool.shard.id }, value: f(pool) }));

    new ReadMetric(`${p}clients_connected`, 'Client connections past authentication.', 'gauge', () => [{ value: this.server?.sessions.size ?? 0 }]).register(r);
    new ReadMetric(`${p}clients_waiting`, 'Client requests waiting for a connection from a shard pool.', 'gauge', () => [
      { value: pools().reduce((n, pool) => n + pool.stats().waiting, 0) },
    ]).register(r);

    new ReadMetric(`${p}pool_connections`, 'Connections of each shard pool, by state: idle, active (leased to a client), creating.', 'gauge', () =>
      pools().flatMap((pool) => {
        const s = pool.stats();
        return (['idle', 'active', 'creating'] as const).map((state) => ({ labels: { shard: s.shard, state }, value: s[state] }));
      }),
    ).register(r);
    new ReadMetric(`${p}pool_connections_max`, 'Most connections a shard pool opens (pool.size).', 'gauge', () => perShard(() => this.server!.config.pool.size)).register(r);
    new ReadMetric(`${p}pipeline_statements_total`, 'Single-statement reads sent on a connection shared by several clients (pool.pipeline_connections).', 'counter', () =>
      perShard((pool) => pool.pipeline.submitted),
    ).register(r);
    new ReadMetric(`${p}pipeline_connections`, 'Connections of each shard pool carrying pipelined statements now (counted as active too).', 'gauge', () =>
      perShard((pool) => pool.pipeline.stats().connections),
    ).register(r);
    new ReadMetric(`${p}pool_clients_waiting`, 'Requests waiting for a connection, per shard pool.', 'gauge', () => perShard((pool) => pool.stats().waiting)).register(r);

    new ReadMetric(`${p}shard_received_bytes_total`, 'Bytes received from each shard by its pool connections.', 'counter', () => perShard((pool) => pool.bytes().received)).register(r);
    new ReadMetric(`${p}shard_sent_bytes_total`, 'Bytes sent to each shard by its pool connections.', 'counter', () => perShard((pool) => pool.bytes().sent)).register(r);

    const health = (pool: ShardPool) => {
      const h = this.health;
      if (!h) return null;
      if (pool.lastError !== null) h.noteError(pool.shard.id, pool.lastError);
      return h.get(pool.shard.id);
    };
    new ReadMetric(`${p}shard_up`, '1 when the shard pool handed out a connection at the last health probe (every 5 s), else 0.', 'gauge', () =>
      perShard((pool) => ((health(pool)?.up ?? true) ? 1 : 0)), 'min',
    ).register(r);
    new ReadMetric(`${p}shard_last_error_timestamp_seconds`, 'Unix time of the last failure to reach the shard (0: none since pgshard started).', 'gauge', () =>
      perShard((pool) => health(pool)?.lastErrorAt ?? 0), 'max',
    ).register(r);

    const cache = () => this.server?.analyzer?.stats ?? { hits: 0, misses: 0 };
    new ReadMetric(`${p}parse_cache_hits_total`, 'Statement analyses answered from the parse cache.', 'counter', () => [{ value: cache().hits }]).register(r);
    new ReadMetric(`${p}parse_cache_misses_total`, 'Statement analyses that parsed the statement.', 'counter', () => [{ value: cache().misses }]).register(r);

    new ReadMetric(`${p}ring_points`, 'Points each shard owns on the consistent-hash ring.', 'gauge', () =>
      [...(this.ringView()?.points ?? [])].map(([shard, value]) => ({ labels: { shard }, value })), 'first',
    ).register(r);
    new ReadMetric(`${p}ring_keyspace_ratio`, "Each shard's fraction of the 64-bit hash space (they sum to 1).", 'gauge', () =>
      [...(this.ringView()?.shares ?? [])].map(([shard, value]) => ({ labels: { shard }, value })), 'first',
    ).register(r);
  }

  /** The server's two-phase commit coordinator, once the server has one. */
  private coordinator(): { inDoubt: number } | null {
    const co = (this.server as unknown as { coordinator?: { inDoubt?: unknown } } | null)?.coordinator;
    return co && typeof co.inDoubt === 'number' ? (co as { inDoubt: number }) : null;
  }

  private ringCache: { ring: HashRing; points: Map<string, number>; shares: Map<string, number> } | null = null;

  /** Points and shares per shard of the current ring (computed once per ring). */
  ringView(): { ring: HashRing; points: Map<string, number>; shares: Map<string, number> } | null {
    const ring = this.server ? currentRing(this.server) : null;
    if (!ring) return null;
    if (this.ringCache?.ring !== ring) {
      const points = new Map<string, number>(ring.shardIds.map((id) => [id, 0]));
      for (const pt of ring.points()) points.set(pt.shard, points.get(pt.shard)! + 1);
      this.ringCache = { ring, points, shares: ring.shares() };
    }
    return this.ringCache;
  }

  /** Adds what open client sockets moved since the last call; also picks up sessions nobody reported (see clientSocket). */
  private flushSockets(): { received: number; sent: number } {
    for (const s of this.server?.sessions.values() ?? []) this.clientSocket(s.socket);
    for (const [socket, seen] of this.sockets) this.flushSocket(socket, seen);
    return this.bytes;
  }

  private flushSocket(socket: Socket, seen: SocketBytes): void {
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    this.bytes.received += read - seen.read;
    this.bytes.sent += written - seen.written;
    seen.read = read;
    seen.written = written;
  }

  /** A shard's query cells; the series pgshard can produce are exported from the start (at 0). */
  private queryCellsFor(shard: string): (CounterCell | undefined)[] {
    let cells = this.queryCells.get(shard);
    if (!cells) {
      cells = new Array<CounterCell | undefined>(ROUTES * STMTS);
      for (const route of ROUTE_KINDS)
        if ((route === 'admin') === (shard === NO_SHARD))
          for (const st of STATEMENT_TYPES) cells[routeIndex[route] * STMTS + stmtIndex[st]] = this.queries.cell(shard, route, st);
      this.queryCells.set(shard, cells);
    }
    return cells;
  }

  private queryCell(shard: string, i: number): CounterCell {
    const cells = this.queryCellsFor(shard);
    return (cells[i] ??= this.queries.cell(shard, ROUTE_KINDS[Math.floor(i / STMTS)]!, STATEMENT_TYPES[i % STMTS]!));
  }

  private checkoutCell(shard: string): HistogramCell {
    let c = this.checkoutCells.get(shard);
    if (!c) {
      c = this.checkout.cell(shard);
      this.checkoutCells.set(shard, c);
    }
    return c;
  }

  private txCell(kind: TransactionKind, outcome: TransactionOutcome): CounterCell {
    const key = `${kind}/${outcome}`;
    let c = this.txCells.get(key);
    if (!c) {
      c = this.transactions.cell(kind, outcome);
      this.txCells.set(key, c);
    }
    return c;
  }
}

const configRings = new WeakMap<object, HashRing>();

/**
 * The ring the router routes with. Resharding will replace it (Router.setRing), so the router's own ring
 * is used once the router exposes it as `currentRing()`; until then, the ring built from the configuration,
 * which is the router's ring while nothing calls setRing.
 */
export function currentRing(server: PgShardServer): HashRing {
  const router = server.router as unknown as { currentRing?: () => HashRing } | undefined;
  const live = router?.currentRing?.();
  if (live) return live;
  let ring = configRings.get(server.config);
  if (!ring) {
    ring = HashRing.build(server.config.shards, server.config.ring.vnodes);
    configRings.set(server.config, ring);
  }
  return ring;
}
