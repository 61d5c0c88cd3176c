/**
 * The topology store several pgshard instances share: a Postgres database (`metadata` in the config).
 * Postgres is the arbiter: every write of the topology is a compare-and-set on its revision in one
 * statement, and the same statement NOTIFYs the other instances, which LISTEN and also read the store
 * every `poll_ms` (a notification sent while their listening connection was down is not lost for long).
 * Instances record a heartbeat; a cut-over waits for every live instance to hold statements on moving keys.
 *
 * Tables, in `metadata.schema` (created when missing):
 *   topology   (id = 1, rev, state jsonb)         the shard list, ring version, rebalance state
 *   instances  (id, address, heartbeat_at, ack)   who routes, and the cut-over each one holds for
 *   decisions  (gid, instance, shards)            two-phase commit decisions (decision-log.ts)
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Logger } from 'pino';
import type { MetadataConfig } from '../config/schema.js';
import type { Peers } from './peers.js';
import { persistable, type TopologyStore } from './store.js';
import type { TopologyState } from './types.js';

const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export class MetadataError extends Error {}

/** Connections to the metadata database: a small pool for queries (it replaces broken ones), and single ones to LISTEN on. */
export class MetadataConnection {
  private readonly pool: pg.Pool;
  private closed = false;

  constructor(
    private readonly cfg: MetadataConfig,
    private readonly applicationName: string,
    private readonly log: Logger,
  ) {
    this.pool = new pg.Pool({ ...this.settings(), max: 4, idleTimeoutMillis: 30_000 });
    this.pool.on('error', (e) => this.log.warn({ err: e.message }, 'metadata connection lost'));
  }

  get description(): string {
    return `postgres://${this.cfg.user}@${this.cfg.host}:${this.cfg.port}/${this.cfg.database} (schema ${this.cfg.schema})`;
  }

  private settings(): pg.ClientConfig {
    const c = this.cfg;
    const ssl = c.sslmode === 'require' ? { rejectUnauthorized: false } : c.sslmode === 'verify-ca' || c.sslmode === 'verify-full' ? { ca: readFileSync(c.sslrootcert!, 'utf8'), ...(c.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}) } : undefined;
    return { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, application_name: this.applicationName, connectionTimeoutMillis: 5000, ...(ssl ? { ssl } : {}) };
  }

  /** A connection of its own (the listener's). */
  async open(): Promise<pg.Client> {
    const client = new pg.Client(this.settings());
    client.on('error', (e) => this.log.warn({ err: e.message }, 'metadata listening connection lost'));
    await client.connect();
    return client;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    if (this.closed) throw new MetadataError('the metadata store is closed');
    return this.pool.query<R>(sql, params);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

export class PgTopologyStore implements TopologyStore, Peers {
  private readonly t: { topology: string; instances: string; decisions: string };
  private readonly channel: string;
  private watchers: ((s: TopologyState) => void)[] = [];
  private listener: pg.Client | null = null;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** performance.now() when the last heartbeat that reached the store was sent. */
  private lastBeat = -Infinity;

  private constructor(
    readonly conn: MetadataConnection,
    private readonly cfg: MetadataConfig,
    readonly instance: string,
    private readonly address: string,
    private readonly log: Logger,
  ) {
    const s = ident(cfg.schema);
    this.t = { topology: `${s}.topology`, instances: `${s}.instances`, decisions: `${s}.decisions` };
    this.channel = `${cfg.schema}_topology`;
  }

  /** Connects, creates the tables when missing, registers this instance and starts listening. */
  static async open(cfg: MetadataConfig, instance: string, address: string, log: Logger): Promise<PgTopologyStore> {
    const conn = new MetadataConnection(cfg, `pgshard ${instance}`, log);
    const store = new PgTopologyStore(conn, cfg, instance, address, log);
    try {
      await store.createTables();
      await store.beat();
    } catch (e) {
      await conn.close();
      throw new MetadataError(`cannot use the metadata database ${conn.description}: ${(e as Error).message}; check metadata.host, port, database, user and password, and that the user may create the schema ${cfg.schema}`);
    }
    await store.listen().catch((e) => {
      log.warn({ err: (e as Error).message }, 'metadata: cannot LISTEN yet; retrying');
      store.relisten();
    });
    store.timers.push(setInterval(() => void store.beat().catch((e) => log.warn({ err: (e as Error).message }, 'metadata: heartbeat failed')), cfg.heartbeat_ms));
    store.timers.push(setInterval(() => void store.poll(), cfg.poll_ms));
    for (const t of store.timers) t.unref();
    return store;
  }

  get where(): string {
    return this.conn.description;
  }

  get tables(): { topology: string; instances: string; decisions: string } {
    return this.t;
  }

  private async createTables(): Promise<void> {
    // Two instances starting together would race on CREATE … IF NOT EXISTS (it is not atomic): serialise.
    await this.conn.query(`DO $$ BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('pgshard metadata ${this.cfg.schema}'));
      CREATE SCHEMA IF NOT EXISTS ${ident(this.cfg.schema)};
      CREATE TABLE IF NOT EXISTS ${this.t.topology} (id int PRIMARY KEY CHECK (id = 1), rev bigint NOT NULL, state jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE IF NOT EXISTS ${this.t.instances} (id text PRIMARY KEY, address text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), heartbeat_at timestamptz NOT NULL DEFAULT now(), ack text);
      CREATE TABLE IF NOT EXISTS ${this.t.decisions} (gid text PRIMARY KEY, instance text NOT NULL, shards text[] NOT NULL, decided_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX IF NOT EXISTS decisions_instance ON ${this.t.decisions} (instance);
    END $$`);
  }

  async load(): Promise<TopologyState | null> {
    const r = await this.conn.query<{ rev: string; state: TopologyState }>(`SELECT rev, state FROM ${this.t.topology} WHERE id = 1`);
    const row = r.rows[0];
    if (!row) return null;
    return { ...row.state, rev: Number(row.rev), rebalance: row.state.rebalance ?? null };
  }

  async save(next: TopologyState, expectedRev: number): Promise<boolean> {
    const state = JSON.stringify(persistable(next));
    // The write and the notification in one statement: the others hear of it exactly when it commits.
    const r =
      expectedRev === 0
        ? await this.conn.query(`WITH w AS (INSERT INTO ${this.t.topology} (id, rev, state) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING RETURNING rev) SELECT pg_notify($3, rev::text) FROM w`, [next.rev, state, this.channel])
        : await this.conn.query(`WITH w AS (UPDATE ${this.t.topology} SET rev = $1, state = $2, updated_at = now() WHERE id = 1 AND rev = $3 RETURNING rev) SELECT pg_notify($4, rev::text) FROM w`, [next.rev, state, expectedRev, this.channel]);
    return r.rowCount === 1;
  }

  watch(fn: (state: TopologyState) => void): void {
    this.watchers.push(fn);
  }

  private async poll(): Promise<void> {
    if (this.closed || this.watchers.length === 0) return;
    try {
      const s = await this.load();
      if (s) for (const fn of this.watchers) fn(s);
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'metadata: poll failed');
    }
  }

  /** A connection that only LISTENs; when it breaks it is opened again, and the store read (a missed notification). */
  private async listen(): Promise<void> {
    if (this.closed) return;
    const c = await this.conn.open();
    c.on('notification', () => void this.poll());
    const lost = () => {
      if (this.listener !== c) return;
      this.listener = null;
      this.relisten();
    };
    c.on('end', lost);
    c.on('error', lost);
    try {
      await c.query(`LISTEN ${ident(this.channel)}`);
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    this.listener = c;
  }

  private relisten(): void {
    if (this.closed) return;
    const t = setTimeout(() => void this.listen().then(() => this.poll(), () => this.relisten()), this.cfg.heartbeat_ms);
    t.unref();
  }

  private async beat(): Promise<void> {
    if (this.closed) return;
    const sent = performance.now();
    await this.conn.query(`INSERT INTO ${this.t.instances} (id, address) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), address = EXCLUDED.address`, [this.instance, this.address]);
    this.lastBeat = Math.max(this.lastBeat, sent);
  }

  fenced(): boolean {
    return performance.now() - this.lastBeat > this.cfg.lease_ms;
  }

  async ack(token: string): Promise<void> {
    await this.conn.query(`UPDATE ${this.t.instances} SET ack = $2, heartbeat_at = now() WHERE id = $1`, [this.instance, token]);
  }

  /** Liveness is judged by the database's clock alone, so instances' clocks need not agree. */
  async notAcked(token: string): Promise<string[]> {
    const r = await this.conn.query<{ id: string }>(`SELECT id FROM ${this.t.instances} WHERE heartbeat_at > now() - $1 * interval '1 millisecond' AND ack IS DISTINCT FROM $2 ORDER BY id`, [this.deadAfterMs, token]);
    return r.rows.map((x) => x.id);
  }

  async alive(instance: string): Promise<boolean> {
    const r = await this.conn.query(`SELECT 1 FROM ${this.t.instances} WHERE id = $1 AND heartbeat_at > now() - $2 * interval '1 millisecond'`, [instance, this.deadAfterMs]);
    return r.rowCount === 1;
  }

  async list(): Promise<{ id: string; address: string; heartbeatAgeMs: number; alive: boolean }[]> {
    const r = await this.conn.query<{ id: string; address: string; age: number }>(
      `SELECT id, address, (extract(epoch FROM now() - heartbeat_at) * 1000)::float8 AS age FROM ${this.t.instances} ORDER BY id`,
    );
    return r.rows.map((x) => ({ id: x.id, address: x.address, heartbeatAgeMs: Math.round(x.age), alive: x.age < this.deadAfterMs }));
  }

  /**
   * An instance is taken for gone half a lease after it fences itself (fenced() above): by then it holds
   * statements on moving keys on its own, even if its clock runs a little fast.
   */
  private get deadAfterMs(): number {
    return Math.round(this.cfg.lease_ms * 1.5);
  }

  /** Stops the timers and the listener; a graceful stop also leaves the instance list (nobody waits for it). */
  async close(leave = true): Promise<void> {
    if (this.closed) return;
    if (leave) await this.conn.query(`DELETE FROM ${this.t.instances} WHERE id = $1`, [this.instance]).catch(() => undefined);
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => undefined);
    await this.conn.close();
  }
}
