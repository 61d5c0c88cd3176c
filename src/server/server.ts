/**
 * The listener: accepts client connections, runs their startup phase, and keeps the registry that
 * CancelRequests and graceful shutdown need.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config, ShardConfig } from '../config/schema.js';
import { fileStore, Topology } from '../topology/topology.js';
import { PgTopologyStore } from '../topology/pg-store.js';
import { LocalPeers, type Peers } from '../topology/peers.js';
import { CutoverFollower } from '../rebalance/cutover-follower.js';
import { PgDecisionLog } from '../topology/decision-log.js';
import type { TopologyStore } from '../topology/store.js';
import type { WorkerLink } from '../cluster/worker-link.js';
import { CutoverGate } from '../rebalance/gate.js';
import { Rebalancer, type RebalanceMetrics } from '../rebalance/engine.js';
import { clientDatabase } from '../config/load.js';
import { ShardPool } from '../pool/pool.js';
import { loadCredentials } from '../auth/credentials.js';
import { LoginThrottle } from '../auth/login-throttle.js';
import { runStartup, startupVars } from './startup.js';
import { backstopDelays, statementTimeoutVar, TimeoutSweep } from './timeouts.js';
import { ClientSession, type SessionServices } from './session.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import { initParser, StatementAnalyzer } from '../sql/analyze.js';
import { initHash } from '../routing/hash.js';
import { HashRing } from '../routing/ring.js';
import { Router } from '../routing/router.js';
import { queryShard } from '../pool/internal-query.js';
import { GenerationCache } from '../sql/generation-cache.js';
import { literalShape } from '../sql/literal-shape.js';
import type { Analysis } from '../sql/types.js';
import type { BindParams } from '../routing/keys.js';
import { noopObserver, type ProxyObserver } from '../admin/observer.js';
import { AdminConsole } from '../admin/console.js';
import { idleRebalance, type RebalanceStatusProvider } from '../admin/rebalance-status.js';
import { TxLog, type DecisionLog } from '../execute/txlog.js';
import { IdGenerator } from '../routing/ids.js';
import { TransactionCoordinator } from '../execute/two-phase.js';
import { hostname } from 'node:os';
import path from 'node:path';
import { NotificationHub } from './notifications.js';

export interface ServerOptions {
  /** This server is worker `link.index` of a pgshard started with `workers: N` (src/cluster). */
  worker?: { link: WorkerLink };
}

/** This instance's id: `transactions.instance_id`, or the host name and port. */
export function instanceId(cfg: Config): string {
  return cfg.transactions.instance_id ?? `${hostname().replace(/[^A-Za-z0-9]/g, '')}${cfg.listen.port}`;
}

export class PgShardServer {
  private server: net.Server | null = null;
  readonly pools = new Map<string, ShardPool>();
  readonly sessions = new Map<number, ClientSession>();
  private nextClientId = 1;
  private services!: SessionServices;
  private notifications: NotificationHub | null = null;
  analyzer!: StatementAnalyzer;
  router!: Router;
  /** The shard list and ring, persisted (src/topology); the configuration's shards only seed it. */
  topology!: Topology;
  /** Holds statements on moving keys during a rebalance's cut-over. */
  gate!: CutoverGate;
  /** Adds and removes shards with their data (src/rebalance). */
  rebalancer!: Rebalancer;
  /** Where the rebalance reports rows copied, lag and pause (the admin API's metrics, when it runs). */
  rebalanceMetrics: RebalanceMetrics | null = null;
  private tlsContext: tls.SecureContext | null = null;
  /** Who else routes on this topology (a cut-over waits for every live one). */
  peers!: Peers;
  /** The shared Postgres store, when `metadata` is configured. */
  private metadata: PgTopologyStore | null = null;
  private follower: CutoverFollower | null = null;
  private resumeTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Told about requests, errors, transactions, checkouts and client sockets (the metrics). Set before start(). */
  observer: ProxyObserver = noopObserver;
  /** What SHOW REBALANCE reports; the rebalance engine replaces it. */
  rebalance: RebalanceStatusProvider = idleRebalance;
  private readonly console: AdminConsole;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    private readonly opts: ServerOptions = {},
  ) {
    this.console = new AdminConsole(this, () => this.nextClientId++, log.child({ component: 'console' }));
  }

  /** Loads the parser and hash WASM modules, builds pools and the ring, and listens. Resolves with the port. */
  async start(): Promise<number> {
    await Promise.all([initParser(), initHash()]);
    const cfg = this.config;
    this.gate = new CutoverGate(cfg.tables);
    const worker = this.opts.worker;
    const instance = worker ? worker.link.instance : instanceId(cfg);
    const address = `${hostname()}:${cfg.listen.port}${worker ? ` pid ${process.pid}` : ''}`;
    // Several instances share a Postgres metadata store; the workers of one instance, their primary
    // process; a lone instance keeps its topology in a file.
    let store: TopologyStore;
    if (cfg.metadata) {
      this.metadata = await PgTopologyStore.open(cfg.metadata, instance, address, this.log.child({ component: 'metadata' }));
      this.peers = store = this.metadata;
    } else if (worker) this.peers = store = worker.link;
    else {
      this.peers = new LocalPeers(instance, address);
      store = fileStore(cfg, instance);
    }
    if (worker) worker.link.onCancel = (pid, secret) => void this.cancelLocal(pid, secret);
    this.topology = await Topology.open(cfg, store);
    for (const s of this.topology.shards) this.pools.set(s.id, new ShardPool(s, cfg.pool, this.log));
    this.router = new Router(this.topology.ring, cfg.tables);
    this.topology.onChange((next, ring) => this.applyTopology(next.shards, ring));
    this.follower = new CutoverFollower(this.topology, this.gate, this.peers, () => this.sessionsQuietForCutover(), cfg.rebalance.max_pause_ms, this.log.child({ component: 'cutover' }));
    const server = this;
    this.rebalancer = new Rebalancer({
      config: cfg,
      topology: this.topology,
      peers: this.peers,
      gate: this.gate,
      log: this.log,
      get metrics() {
        return server.rebalanceMetrics;
      },
    });
    this.analyzer = new StatementAnalyzer(cfg.tables, cfg.unknown_tables, cfg.limits.statement_cache_size);
    const analyzer = this.analyzer;
    // Each worker generates keys under a node id of its own.
    const nodeId = cfg.ids.node_id + (worker?.link.index ?? 0);
    this.ids64 = new IdGenerator(nodeId, 'int64');
    this.ids53 = new IdGenerator(nodeId % 64, 'int53');
    this.txlog = this.metadata ? await PgDecisionLog.open(this.metadata, instance) : TxLog.open(cfg.transactions.log_file ?? path.resolve('.pgshard', `txlog-${instance}.jsonl`));
    this.coordinator = new TransactionCoordinator(instance, this.txlog, this.pools, this.log);
    if (cfg.limits.statement_timeout_ms > 0) this.coordinator.stepTimeoutMs = backstopDelays(cfg.limits.statement_timeout_ms).abandonMs;
    // Transactions a crash left prepared are finished before clients come; later runs catch shards that were down.
    await this.coordinator.recover().catch((e) => this.log.warn({ err: (e as Error).message }, 'recovery failed'));
    this.recoveryTimer = setInterval(() => void this.coordinator.recover().catch(() => undefined), cfg.transactions.recovery_interval_ms);
    this.recoveryTimer.unref();
    this.services = {
      pools: this.pools,
      router: this.router,
      analyze: (sql) => analyzer.analyze(sql),
      poolMode: cfg.pool.mode,
      maxMessageBytes: cfg.limits.max_message_bytes,
      maxPreparedStatements: cfg.limits.max_prepared_statements_per_client,
      dryRun: cfg.dry_run,
      schemaChanged: () => this.learnColumns(),
      observer: this.observer,
      coordinator: this.coordinator,
      columnsOf: (table) => this.analyzer.columnsOf(table),
      deadlockTimeoutMs: cfg.transactions.deadlock_timeout_ms,
      slowStatementMs: cfg.log.slow_statement_ms,
      analyzeOnce: (sql) => analyzer.analyzeOnce(sql),
      shaped: (sql) => this.shaped(sql),
      nextId: (variant) => (variant === 'int53' ? this.ids53 : this.ids64).next(),
      notifications: this.notifications = new NotificationHub(() => [...this.pools.values()].map((p) => p.shard), this.log, cfg.pool.connect_timeout_ms),
      gate: this.gate,
    };
    await this.learnColumns();
    this.columnTimer = setInterval(() => void this.learnColumns(), 30_000);
    this.columnTimer.unref();
    if (cfg.tls) this.tlsContext = tls.createSecureContext({ cert: readFileSync(cfg.tls.cert), key: readFileSync(cfg.tls.key) });
    const users = loadCredentials(cfg.users);
    const database = clientDatabase(cfg);
    const methodFor = (u: string) => cfg.users.find((x) => x.name === u)?.auth ?? cfg.auth.method;
    const a = cfg.auth;
    const throttle = new LoginThrottle({ freeFailures: a.login_delay_after_failures, baseDelayMs: a.login_delay_base_ms, maxDelayMs: a.login_delay_max_ms });

    this.timeouts = new TimeoutSweep(
      { idleSessionMs: cfg.limits.idle_client_timeout_ms, idleInTransactionMs: cfg.limits.idle_in_transaction_timeout_ms, statementMs: cfg.limits.statement_timeout_ms },
      () => this.sessions.values(),
    );
    this.timeouts.start();

    this.server = net.createServer({ noDelay: true }, (socket) => {
      socket.on('error', () => socket.destroy());
      this.observer.clientSocket(socket);
      // A refused connection is closed once its FATAL is flushed (Postgres's backend would exit).
      const refuse = (e: PgError) => {
        socket.resume();
        socket.end(e.toMessage(), () => socket.destroy());
      };
      if (this.stopping) return refuse(new PgError(SqlState.AdminShutdown, 'the database system is shutting down', { severity: 'FATAL' }));
      if (this.sessions.size + this.console.size >= cfg.limits.max_client_connections)
        return refuse(new PgError(SqlState.TooManyConnections, 'sorry, too many clients already', { severity: 'FATAL', hint: 'Raise limits.max_client_connections.' }));
      runStartup(socket, { tls: this.tlsContext, users, methodFor, database, consoleDatabase: this.console.database, timeoutMs: cfg.limits.startup_timeout_ms, throttle })
        .then((r) => {
          if (r.kind === 'cancel') return this.cancel(r.pid, r.secret);
          if (r.kind !== 'session') return;
          if (r.database === this.console.database && r.database !== database) return this.console.accept(r);
          this.openSession(r.socket, r.user, r.database, r.params, r.leftover);
        })
        .catch((e) => {
          this.log.error({ err: e }, 'startup failed');
          socket.destroy();
        });
    });
    this.server.on('error', (e) => this.log.error({ err: e }, 'listener error'));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(cfg.listen.port, cfg.listen.host, () => resolve());
    });
    // A rebalance the last process left running (or an instance that is gone) is finished or rolled back, in the background.
    const resume = () => void this.rebalancer.resume().catch((e) => this.log.warn({ err: (e as Error).message }, 'cannot take over the interrupted rebalance yet'));
    resume();
    this.resumeTimer = setInterval(resume, cfg.metadata?.lease_ms ?? 5000);
    this.resumeTimer.unref();
    const addr = this.server.address() as net.AddressInfo;
    this.log.info({ host: cfg.listen.host, port: addr.port, shards: this.topology.shards.map((s) => s.id), topology: this.topology.where, version: this.topology.version }, 'pgshard listening');
    return addr.port;
  }

  private openSession(socket: net.Socket, user: string, database: string, params: Map<string, string>, leftover: Buffer): void {
    const id = this.nextClientId++;
    let pid: number;
    do pid = randomInt(1, 0x7fffffff);
    while (this.sessions.has(pid));
    const key = { pid, secret: randomInt(0, 0x7fffffff) };
    const info = { id, user, database, applicationName: params.get('application_name') ?? '', remote: `${socket.remoteAddress}:${socket.remotePort}`, connectedAt: Date.now() };
    const log = this.log.child({ client: id });
    const vars = startupVars(params);
    const st = this.config.limits.statement_timeout_ms;
    if (st > 0 && !vars.has('statement_timeout')) vars.set(...statementTimeoutVar(st));
    const session = new ClientSession(socket, info, key, this.services, log, vars);
    this.sessions.set(pid, session);
    session.onClosed = () => {
      this.sessions.delete(pid);
      log.info('client disconnected');
    };
    socket.on('close', () => this.sessions.delete(pid));
    session
      .login()
      .then(() => {
        log.info({ user, database, application_name: info.applicationName }, 'client connected');
        session.start(leftover);
        socket.resume(); // paused since the startup phase ended (startup.ts detach)
      })
      .catch((e) => {
        const err = toPgError(e);
        log.warn({ err: err.message }, 'login failed');
        session.close(new PgError(err.code, err.message, { severity: 'FATAL', ...(err.hint ? { hint: err.hint } : {}) }));
        socket.resume();
      });
  }

  /**
   * A new shard list: pools for added shards exist before the ring names them; the router switches in one
   * assignment (sessions route on whichever ring is current when they route); removed shards' pools close
   * once no session holds one of their connections (bounded wait).
   */
  private applyTopology(shards: readonly ShardConfig[], ring: HashRing): void {
    for (const s of shards) if (!this.pools.has(s.id)) this.pools.set(s.id, new ShardPool(s, this.config.pool, this.log));
    this.router.setRing(ring);
    const keep = new Set(shards.map((s) => s.id));
    for (const [id, pool] of this.pools) {
      if (keep.has(id) || this.retiring.has(id)) continue;
      this.retiring.add(id);
      void this.drainPool(id, pool);
    }
  }

  /** Pools of shards that left the topology and are being drained. */
  private retiring = new Set<string>();

  private async drainPool(id: string, pool: ShardPool): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !this.stopping) {
      const st = pool.stats();
      if (st.active === 0 && st.creating === 0 && st.waiting === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // A rebalance may add the same shard back meanwhile: then the pool stays.
    if (this.topology.shards.some((s) => s.id === id)) {
      this.retiring.delete(id);
      return;
    }
    this.pools.delete(id);
    this.retiring.delete(id);
    await pool.close();
    this.log.info({ shard: id }, 'shard removed: its pool is closed');
  }

  /** For a cut-over: no session still runs or is about to run something routed on the old ring. */
  sessionsQuietForCutover(): boolean {
    for (const s of this.sessions.values()) if (!s.quietForCutover) return false;
    return true;
  }

  private columnTimer: NodeJS.Timeout | null = null;
  private timeouts: TimeoutSweep | null = null;
  private shapes = new GenerationCache<string, Analysis | false>(10_000);

  /**
   * The analysis shared by statements that differ only in literals. A shape is trusted only after its
   * analysis, with the first text's literals as parameters, routed exactly as that text's full analysis.
   */
  private shaped(sql: string): { analysis: Analysis; params: BindParams } | null {
    const ls = literalShape(sql);
    if (!ls) return null;
    const known = this.shapes.get(ls.key);
    if (known === false) return null;
    const n = ls.literals.length;
    const params: BindParams = { values: new Array<Buffer>(n), formats: new Array<0>(n) };
    for (let i = 0; i < n; i++) {
      params.values[i] = Buffer.from(ls.literals[i]!, 'utf8');
      params.formats[i] = 0;
    }
    if (known) return { analysis: known, params };
    const full = this.analyzer.analyze(sql);
    const shape = this.analyzer.analyze(ls.shape);
    this.shapes.set(ls.key, shapeUsable(full, shape) && sameRoute(this.router, full, shape, params) ? shape : false);
    return null; // this once, the full analysis answers
  }
  private recoveryTimer: NodeJS.Timeout | null = null;
  coordinator!: TransactionCoordinator;
  private ids64!: IdGenerator;
  private ids53!: IdGenerator;
  private txlog: DecisionLog | null = null;

  /**
   * Learns the column order of the sharded tables from the first reachable shard, so that an INSERT
   * without a column list can still be routed by its key. Failures only mean such INSERTs stay refused.
   */
  async learnColumns(): Promise<void> {
    const tables = this.analyzer.shardedTables();
    if (!tables.length) return;
    const list = tables.map((t) => `'${t.replace(/'/g, "''")}'`).join(',');
    const sql =
      'SELECT c.relname, a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid ' +
      `WHERE c.relname IN (${list}) AND c.relkind IN ('r','p') AND pg_catalog.pg_table_is_visible(c.oid) ` +
      'AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum';
    for (const pool of this.pools.values()) {
      try {
        const rows = await queryShard(pool, sql);
        const found = new Map<string, string[]>();
        for (const [rel, att] of rows) {
          if (!found.has(rel!)) found.set(rel!, []);
          found.get(rel!)!.push(att!);
        }
        for (const t of tables) this.analyzer.setColumns(t, found.get(t));
        this.shapes.clear(); // shapes were checked against the old column order
        return;
      } catch (e) {
        this.log.debug({ shard: pool.shard.id, err: (e as Error).message }, 'could not read table columns');
      }
    }
  }

  /** A CancelRequest: the session may be in another worker (each has its own sessions), which is then told. */
  private cancel(pid: number, secret: number): void {
    if (!this.cancelLocal(pid, secret)) this.opts.worker?.link.forwardCancel(pid, secret);
  }

  /** Cancels what session `pid` runs when it is one of this process's; false when there is no such session. */
  cancelLocal(pid: number, secret: number): boolean {
    const s = this.sessions.get(pid);
    if (!s) return false;
    if (s.key.secret === secret) s.cancel();
    return true;
  }

  /** Stops accepting, lets sessions finish their transactions for up to graceMs, then closes everything. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.columnTimer) clearInterval(this.columnTimer);
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    this.timeouts?.stop();
    if (this.resumeTimer) clearInterval(this.resumeTimer);
    await this.rebalancer?.shutdown();
    // close() resolves only when every connection has ended, so it is awaited after the sessions are closed.
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...this.sessions.values()].some((s) => !s.isIdle)) await new Promise((r) => setTimeout(r, 50));
    const bye = new PgError(SqlState.AdminShutdown, 'terminating connection due to administrator command', { severity: 'FATAL' });
    for (const s of this.sessions.values()) s.close(bye);
    this.console.closeAll(bye);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.coordinator?.close();
    this.notifications?.close();
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.txlog?.close();
    this.follower?.close();
    await this.topology?.close();
  }
}

/** A shape whose analysis is a plain single-statement route (nothing that depends on literal text). */
function shapeUsable(full: Analysis, shape: Analysis): boolean {
  if (full.statements.length !== 1 || shape.statements.length !== 1 || full.parseError || shape.parseError || full.hint || shape.hint) return false;
  const a = full.statements[0]!;
  const b = shape.statements[0]!;
  if (b.session || b.tx || b.copy || b.explain || b.merge || b.generateKey || b.nonTransactional || (b.insertRows ?? 1) > 1) return false;
  if (a.notConcatenable !== null || b.notConcatenable !== null) return false;
  if (a.tag !== b.tag || a.readOnly !== b.readOnly || a.route.type !== b.route.type) return false;
  // Reference-table statements route by their tables alone (writes to every shard, with the client's text).
  if (b.route.type !== 'keys' && b.route.type !== 'none' && b.route.type !== 'reference') return false;
  if (a.route.type === 'keys' && b.route.type === 'keys' && (a.route.table !== b.route.table || a.route.keys.length !== b.route.keys.length)) return false;
  if (a.route.type === 'reference' && b.route.type === 'reference' && (a.route.write !== b.route.write || a.route.tables.join('\0') !== b.route.tables.join('\0'))) return false;
  return true;
}

function sameRoute(router: Router, full: Analysis, shape: Analysis, params: BindParams): boolean {
  const ctx = { sessionShard: null };
  const x = router.route(full.statements[0]!, null, null, ctx);
  const y = router.route(shape.statements[0]!, null, params, ctx);
  if (x.kind !== y.kind) return false;
  return x.kind !== 'shard' || (y.kind === 'shard' && x.shard === y.shard);
}
