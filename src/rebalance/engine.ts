/**
 * The rebalance: moves the rows whose owner changes when a shard is added or removed, while clients keep
 * reading and writing, and switches the ring once the new owners hold every row of it.
 *
 *   planning → schema → copying → catching_up → cutting_over → cleaning → done
 *                                      (any step before the switch) → failed | cancelled, rolled back
 *
 * Each step is persisted in the topology store before it starts. The ring that routes is switched in the
 * same file write that records `cleaning`, so after a crash the file says which side of the switch we are
 * on: before it, everything copied is rolled back (the old ring's shards still hold all their rows);
 * after it, the clean-up is finished.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type pg from 'pg';
import { isShardedTable, type Config, type KeyType, type ShardConfig } from '../config/schema.js';
import type { Topology } from '../topology/topology.js';
import { ringOf } from '../topology/topology.js';
import type { RebalanceRecord } from '../topology/types.js';
import type { CutoverGate } from './gate.js';
import type { Peers } from '../topology/peers.js';
import { Moves } from './moves.js';
import { connect, end, ident, literal, rows, type Row } from './pg.js';
import { copyRows, type CopyCounts } from './copy.js';
import { copySchema, dropCreated, listTables, type SourceTable } from './schema-copy.js';
import { deleteRows, hasRows, scan, upsertRow } from './rows.js';
import { ChangeStream, type Change } from './stream.js';

export interface RebalanceMetrics {
  rebalanceRowsCopied(rows: number): void;
  setRebalanceLag(bytes: number): void;
  cutover(pauseSeconds: number): void;
}

export interface RebalanceHost {
  config: Config;
  topology: Topology;
  /** The instances routing on this topology: a cut-over waits until every live one holds (cutover-follower.ts). */
  peers: Peers;
  /** Statements that waited at this instance's gate (for the log). */
  gate: CutoverGate;
  log: Logger;
  metrics: RebalanceMetrics | null;
}

/** A request the current state refuses (HTTP 409 / 400). */
export class RebalanceError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

/** Progress of a copy is counted at every batch_rows rows but written to the topology store at most this often. */
const PROGRESS_SAVE_MS = 100;

const ACTIVE = new Set(['planning', 'schema', 'copying', 'catching_up', 'cutting_over', 'cleaning']);

interface TableInfo {
  name: string;
  columns: string[];
  primaryKey: string[];
  /** Sharded tables: the key column and type. Reference tables: null. */
  key: { column: string; index: number; type: KeyType } | null;
}

class Cancelled extends Error {}
/** pgshard is stopping: the persisted state stays as it is, for the next start to finish or roll back. */
class Stopped extends Error {}

export class Rebalancer {
  private running: Promise<void> | null = null;
  private cancelRequested = false;
  private streams: ChangeStream[] = [];
  private streamError: Error | null = null;
  lagBytes = 0;
  private readonly log: Logger;

  constructor(private readonly host: RebalanceHost) {
    this.log = host.log.child({ component: 'rebalance' });
  }

  get record(): RebalanceRecord | null {
    return this.host.topology.rebalance;
  }

  get active(): boolean {
    const r = this.record;
    return r !== null && ACTIVE.has(r.phase);
  }

  /** Waits for the running rebalance (tests, shutdown). */
  async settled(): Promise<void> {
    await this.running;
  }

  async addShard(shard: ShardConfig): Promise<RebalanceRecord> {
    const cur = this.host.topology.shards;
    if (cur.some((s) => s.id === shard.id)) throw new RebalanceError(409, `shard "${shard.id}" is already in the topology: choose another id, or remove it first`);
    this.refuseIfBusy();
    return this.checked(() => this.preflight(cur, [shard]), () => this.begin('add', shard.id, [...cur.map((s) => ({ ...s })), shard]));
  }

  async removeShard(id: string): Promise<RebalanceRecord> {
    const cur = this.host.topology.shards;
    if (!cur.some((s) => s.id === id)) throw new RebalanceError(404, `shard "${id}" is not in the topology: GET /shards lists the shards`);
    if (cur.length === 1) throw new RebalanceError(409, `shard "${id}" is the only shard: add another one before removing it`);
    this.refuseIfBusy();
    return this.checked(() => this.preflight(cur.filter((s) => s.id === id), cur.filter((s) => s.id !== id)), () => this.begin('remove', id, cur.filter((s) => s.id !== id).map((s) => ({ ...s }))));
  }

  private starting = false;

  private refuseIfBusy(): void {
    const r = this.record;
    if (r?.phase === 'failed' && r.pending)
      throw new RebalanceError(409, `the ${r.pending.action === 'rollback' ? 'roll-back' : 'clean-up'} of the last rebalance (${r.kind} ${r.shard}) has not finished: pgshard retries it every few seconds (${r.error}); make the shards it names reachable`);
    if (this.active || this.running || this.starting)
      throw new RebalanceError(409, `a rebalance is already running (${this.record?.kind} ${this.record?.shard}, phase ${this.record?.phase}): wait for it (GET /rebalance) or cancel it (POST /rebalance/cancel)`);
  }

  /** Runs the checks with the start reserved, so that two requests cannot both pass them. */
  private async checked(check: () => Promise<void>, start: () => Promise<RebalanceRecord>): Promise<RebalanceRecord> {
    this.starting = true;
    try {
      await check();
    } finally {
      this.starting = false;
    }
    return start();
  }

  /**
   * What can be known before anything changes: every shard involved answers, the sources decode logical
   * replication, and the tables have the primary keys the move needs. A failure is a 400 saying what to fix.
   */
  private async preflight(sources: readonly ShardConfig[], destinations: readonly ShardConfig[]): Promise<void> {
    const clients: pg.Client[] = [];
    try {
      for (const s of [...sources, ...destinations]) {
        let c: pg.Client;
        try {
          c = await connect(s);
        } catch (e) {
          throw new RebalanceError(400, `cannot connect to shard "${s.id}" at ${s.host}:${s.port} database ${s.database} as ${s.user} (${(e as Error).message}): check its host, port, database, user and password`);
        }
        clients.push(c);
        if (sources.includes(s)) {
          const [[level]] = (await rows(c, 'SHOW wal_level')) as [[string]];
          if (level !== 'logical') throw new RebalanceError(400, `shard "${s.id}" has wal_level = ${level}: rebalancing reads its changes by logical decoding; set wal_level = logical in its postgresql.conf and restart it`);
        }
      }
      this.tableInfo(await listTables(clients[0]!));
    } finally {
      for (const c of clients) await end(c);
    }
  }

  /** Asks the rebalance to stop and roll back, on whichever instance runs it (the request goes through the store). */
  async cancel(): Promise<RebalanceRecord> {
    const refusal = (r: RebalanceRecord | null): RebalanceError | null => {
      if (!r || !ACTIVE.has(r.phase)) return new RebalanceError(409, 'no rebalance is running: GET /rebalance shows the last one');
      if (r.phase === 'cleaning') return new RebalanceError(409, 'the rebalance has already switched the ring and is deleting moved rows from their old shards: it can no longer be cancelled, let it finish');
      return null;
    };
    const first = refusal(this.record);
    if (first) throw first;
    if (this.running) this.cancelRequested = true;
    let refused: RebalanceError | null = null;
    const written = await this.host.topology.update((cur) => {
      refused = refusal(cur.rebalance);
      return refused ? null : { ...cur, rebalance: { ...cur.rebalance!, cancelRequested: true } };
    });
    if (!written) throw refused ?? first;
    return written.rebalance!;
  }

  /**
   * A rebalance left running by a process that is gone (this one before a restart, or another instance
   * whose heartbeat stopped) is taken over: finished when the ring already switched, else rolled back.
   * Called at start and then every so often.
   */
  async resume(): Promise<void> {
    if (this.running || this.starting) return;
    const r = this.record;
    const unfinished = (x: RebalanceRecord | null | undefined): boolean => !!x && (ACTIVE.has(x.phase) || (x.phase === 'failed' && x.pending !== undefined));
    if (!r || !unfinished(r)) return;
    const me = this.host.peers.instance;
    if (r.owner && r.owner !== me && (await this.host.peers.alive(r.owner))) return; // it runs there
    if (this.running) return;
    const taken = await this.host.topology.update((cur) => (cur.rebalance?.id === r.id && unfinished(cur.rebalance) && cur.rebalance.owner === r.owner ? { ...cur, rebalance: { ...cur.rebalance, owner: me } } : null));
    if (!taken?.rebalance || this.running) return;
    const rec: RebalanceRecord = { ...taken.rebalance };
    const retry = rec.phase === 'failed' ? rec.pending : undefined;
    if (retry) {
      // Again from the phase the roll-back or clean-up started in, with the outcome it was to record.
      rec.phase = retry.phase;
      this.log.warn({ rebalance: rec.id, action: retry.action }, `retrying the ${retry.action === 'rollback' ? 'roll-back' : 'clean-up'} of a rebalance`);
      this.running = (retry.action === 'cleanup' ? this.cleanUp(rec).catch((e: Error) => this.cleanUpFailed(rec, e)) : this.rollBack(rec, retry.outcome, retry.error)).finally(() => (this.running = null));
      return;
    }
    const switched = sameShards(this.host.topology.shards, rec.to);
    const whose = r.owner && r.owner !== me ? `instance ${r.owner} (gone)` : 'this instance before it restarted';
    this.log.warn({ rebalance: rec.id, phase: rec.phase, switched, from: r.owner }, switched ? `finishing the clean-up of a rebalance left by ${whose}` : `rolling back a rebalance left by ${whose}`);
    this.running = (switched ? this.cleanUp(rec).catch((e: Error) => this.cleanUpFailed(rec, e)) : this.rollBack(rec, 'failed', `interrupted in phase ${rec.phase} (${whose === 'this instance before it restarted' ? 'pgshard restarted' : `${whose}`}); rolled back: start it again`)).finally(() => (this.running = null));
  }

  private async begin(kind: 'add' | 'remove', shard: string, to: ShardConfig[]): Promise<RebalanceRecord> {
    this.refuseIfBusy();
    const from = this.host.topology.shards.map((s) => ({ ...s }));
    const id = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const record: RebalanceRecord = {
      id,
      kind,
      shard,
      phase: 'planning',
      from,
      to,
      owner: this.host.peers.instance,
      sources: [],
      rowsCopied: 0,
      rowsScanned: 0,
      rowsTotal: 0,
      rowsCleaned: 0,
      pauseMs: null,
      cutoverAttempts: 0,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      error: null,
    };
    this.cancelRequested = false;
    this.streamError = null;
    // Compare-and-set: another instance may have started one, or changed the shards, since the checks.
    const written = await this.host.topology.update((cur) => (cur.rebalance && ACTIVE.has(cur.rebalance.phase)) || !sameShards(cur.shards, from) ? null : { ...cur, rebalance: record });
    if (!written) {
      const o = this.record;
      throw new RebalanceError(409, o && ACTIVE.has(o.phase) ? `a rebalance is already running (${o.kind} ${o.shard}, phase ${o.phase}, on instance ${o.owner ?? '?'}): wait for it (GET /rebalance) or cancel it (POST /rebalance/cancel)` : 'the shards changed while this request was checked (another pgshard instance?): look at GET /shards and retry');
    }
    this.running = this.run(record).finally(() => (this.running = null));
    return record;
  }

  /**
   * Persists the next step. A cancel request another instance wrote meanwhile is kept (and seen by
   * checkCancel); a record that is no longer this one's (another instance took the rebalance over because
   * this one was taken for gone) stops this run.
   */
  private async save(r: RebalanceRecord, patch: Partial<RebalanceRecord>): Promise<RebalanceRecord> {
    Object.assign(r, patch);
    let lost = false;
    await this.host.topology.update((cur) => {
      const stored = cur.rebalance;
      if (stored && stored.id === r.id && (stored.owner ?? r.owner) !== r.owner) {
        lost = true;
        return null;
      }
      if (stored?.id === r.id && stored.cancelRequested) r.cancelRequested = true;
      return { ...cur, rebalance: { ...r } };
    });
    if (lost) throw new Stopped(`rebalance ${r.id} was taken over by instance ${this.record?.owner}`);
    return r;
  }

  /** Stops the streams and leaves the persisted state for the next start (resume()). */
  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.stopStreams();
    const running = this.running;
    if (running) await Promise.race([running, sleep(5000)]);
  }
  private stopped = false;

  private checkCancel(): void {
    if (this.stopped) throw new Stopped('pgshard is stopping');
    if (this.cancelRequested || this.record?.cancelRequested) throw new Cancelled('cancelled');
    if (this.streamError) throw this.streamError;
  }

  private async run(r: RebalanceRecord): Promise<void> {
    const clients = new Map<string, pg.Client>();
    const client = async (s: ShardConfig): Promise<pg.Client> => {
      let c = clients.get(s.id);
      if (!c) {
        c = await connect(s);
        clients.set(s.id, c);
      }
      return c;
    };
    try {
      const moves = new Moves(ringOf({ shards: r.from, vnodes: this.host.topology.state.vnodes }), ringOf({ shards: r.to, vnodes: this.host.topology.state.vnodes }));
      const sources = r.kind === 'add' ? r.from : r.from.filter((s) => s.id === r.shard);
      const destinations = r.kind === 'add' ? r.to.filter((s) => s.id === r.shard) : r.to;
      const byId = new Map([...r.from, ...r.to].map((s) => [s.id, s]));

      // planning: the tables, and what rebalancing needs of them.
      const catalog = await listTables(await client(sources[0]!));
      const tables = this.tableInfo(catalog);
      this.checkCancel();

      // schema: the new shard gets the tables (add only); its tables must be empty.
      await this.save(r, { phase: 'schema' });
      if (r.kind === 'add') {
        const target = await client(destinations[0]!);
        const created = await copySchema(await client(sources[0]!), target, catalog, async (objects) => {
          await this.save(r, { created: objects });
        });
        if (created.length) this.log.info({ shard: r.shard, tables: created }, 'created the tables on the new shard');
        for (const t of tables.values())
          if (await hasRows(target, t.name)) throw new RebalanceError(409, `table "${t.name}" on the new shard "${r.shard}" already has rows: empty it (or drop it) on that shard and add the shard again`);
      }
      this.checkCancel();

      // copying: a slot with an exported snapshot per source; the moving rows of that snapshot.
      await this.save(r, { phase: 'copying', sources: sources.map((s) => ({ shard: s.id, slot: `pgshard_rb_${r.id}_${s.id.replace(/[^A-Za-z0-9_]/g, '_')}`.toLowerCase(), publication: `pgshard_rb_${r.id}` })) });
      const sharded = [...tables.values()].filter((t) => t.key);
      const reference = [...tables.values()].filter((t) => !t.key);
      const referenceSource = sources[0]!.id;
      const dests = async (id: string) => client(byId.get(id)!);
      // A copy is never resumed (an interrupted one is rolled back and starts again from a new snapshot);
      // rows of the incoming ranges already on a destination (left by a roll-back that did not finish)
      // go first, so that it holds exactly the snapshot's rows, to which the stream applies what follows.
      for (const d of destinations) for (const t of sharded) await this.deleteWhere(await client(d), t, (key) => incoming(moves, t, key, d.id));
      const starts: { source: ShardConfig; slot: string; publication: string; snap: pg.Client }[] = [];
      try {
        // Every slot and its snapshot first (each held open by a transaction that imported it), so that
        // the total to read is counted in the very snapshots that are read.
        let total = 0;
        for (const src of r.sources) {
          const source = byId.get(src.shard)!;
          const c = await client(source);
          const published = [...sharded, ...(r.kind === 'add' && source.id === referenceSource ? reference : [])];
          await c.query(`CREATE PUBLICATION ${ident(src.publication)} FOR TABLE ${published.map((t) => qualifiedName(t.name)).join(', ')}`);
          const repl = await connect(source, true);
          try {
            const [[, , snapshot]] = (await rows(repl, `CREATE_REPLICATION_SLOT ${ident(src.slot)} LOGICAL pgoutput (SNAPSHOT 'export')`)) as [[string, string, string]];
            const snap = await connect(source);
            starts.push({ source, ...src, snap });
            await snap.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
            await snap.query(`SET TRANSACTION SNAPSHOT ${literal(snapshot)}`);
          } finally {
            await end(repl); // the snapshot is imported: the exporting connection may go
          }
          const last = starts[starts.length - 1]!;
          total += await this.countRows(last.snap, published);
          this.checkCancel();
        }
        await this.save(r, { rowsTotal: total });
        for (const { source, snap } of starts) {
          for (const t of sharded) await this.copyMoving(r, snap, source.id, t, moves, dests);
          if (r.kind === 'add' && source.id === referenceSource) for (const t of reference) await this.copyWhole(r, snap, t, await client(destinations[0]!), r.shard);
          await snap.query('COMMIT');
          this.checkCancel();
        }
      } finally {
        for (const { snap } of starts) await end(snap);
      }

      // catching_up: the changes since each snapshot, until the lag is small.
      await this.save(r, { phase: 'catching_up' });
      // One connection per source and destination: each stream applies its changes one at a time, and the
      // streams of different sources (disjoint keys) must not queue on each other's connection.
      const applyClients = new Map<string, pg.Client>();
      const applyClientFor = (source: string) => async (id: string): Promise<pg.Client> => {
        const k = `${source}\0${id}`;
        let c = applyClients.get(k);
        if (!c) {
          c = await connect(byId.get(id)!);
          applyClients.set(k, c);
        }
        return c;
      };
      let applying = true;
      for (const s of starts) {
        const applyClient = applyClientFor(s.source.id);
        const apply = (c: Change) => (applying ? this.applyChange(r, c, s.source.id, s.source.id === referenceSource, tables, moves, applyClient) : Promise.resolve());
        const stream = new ChangeStream(s.source, s.slot, s.publication, apply, this.log, (e) => (this.streamError ??= e));
        this.streams.push(stream);
        stream.start();
      }
      const cfg = this.host.config.rebalance;
      for (;;) {
        this.checkCancel();
        const t0 = Date.now();
        const lag = await this.markAll(client, 30_000);
        if (lag !== null && lag <= cfg.max_lag_bytes && Date.now() - t0 < cfg.max_pause_ms / 2) {
          // cutting_over: hold new statements on moving keys, let running ones end, apply the last changes, switch.
          await this.save(r, { phase: 'cutting_over', cutoverAttempts: r.cutoverAttempts + 1 });
          const switched = await this.cutOver(r, moves, client, () => (applying = false));
          if (switched) break;
          await this.save(r, { phase: 'catching_up' });
          if (r.cutoverAttempts >= 10) throw new Error(`the cut-over did not finish within rebalance.max_pause_ms (${cfg.max_pause_ms} ms) in ${r.cutoverAttempts} attempts: long transactions on moving keys kept it from finishing; raise rebalance.max_pause_ms or retry when the load is lighter`);
          await sleep(200 * r.cutoverAttempts);
        } else await sleep(100);
      }
      for (const c of applyClients.values()) await end(c);
      await this.stopStreams();
      await this.cleanUp(r, clients);
    } catch (e) {
      if (this.stopped) return;
      const cancelled = e instanceof Cancelled;
      if (!cancelled) this.log.error({ err: (e as Error).message, rebalance: r.id }, 'rebalance failed; rolling back');
      await this.stopStreams();
      // A failure after the switch is finished by the clean-up; before it, everything is rolled back.
      if (sameShards(this.host.topology.shards, r.to)) await this.cleanUp(r, clients).catch((e2: Error) => this.cleanUpFailed(r, e2));
      else await this.rollBack(r, cancelled ? 'cancelled' : 'failed', cancelled ? null : (e as Error).message, clients);
    } finally {
      for (const c of clients.values()) await end(c);
      this.host.metrics?.setRebalanceLag(0);
      this.lagBytes = 0;
    }
  }

  private tableInfo(catalog: readonly SourceTable[]): Map<string, TableInfo> {
    const out = new Map<string, TableInfo>();
    const cfgTables = this.host.config.tables;
    for (const t of catalog) {
      const conf = cfgTables[t.name] ?? cfgTables[`public.${t.name}`];
      const shardedConf = conf && isShardedTable(conf) ? conf : null;
      if (!conf && this.host.config.unknown_tables === 'refuse') continue; // pgshard serves no statement on it: not moved
      if (t.primaryKey.length === 0)
        throw new RebalanceError(400, `table "${t.name}" has no primary key: rebalancing needs one to apply changes made while it copies (ALTER TABLE ${t.name} ADD PRIMARY KEY …), or drop the table`);
      if (shardedConf) {
        const index = t.columns.indexOf(shardedConf.shard_key);
        if (index < 0) throw new RebalanceError(400, `table "${t.name}" has no column "${shardedConf.shard_key}" (its configured shard key)`);
        if (!t.primaryKey.includes(shardedConf.shard_key))
          throw new RebalanceError(400, `the primary key of "${t.name}" does not include its shard key "${shardedConf.shard_key}": rebalancing needs it there to know where a deleted row lived`);
        out.set(t.name, { name: t.name, columns: t.columns, primaryKey: t.primaryKey, key: { column: shardedConf.shard_key, index, type: shardedConf.key_type } });
      } else out.set(t.name, { name: t.name, columns: t.columns, primaryKey: t.primaryKey, key: null });
    }
    return out;
  }

  private async countRows(c: pg.Client, tables: readonly TableInfo[]): Promise<number> {
    let n = 0;
    for (const t of tables) n += Number((await rows(c, `SELECT count(*) FROM ${qualifiedName(t.name)}`))[0]![0]);
    return n;
  }

  private async copyMoving(r: RebalanceRecord, snap: pg.Client, source: string, t: TableInfo, moves: Moves, dest: (id: string) => Promise<pg.Client>): Promise<void> {
    const key = t.key!;
    await copyRows({ source: snap, table: t.name, columns: t.columns, keyIndex: key.index, route: (k) => moves.destination(key.type, k, source), destination: dest, ...this.copyProgress(r) });
    await this.save(r, {});
  }

  private async copyWhole(r: RebalanceRecord, snap: pg.Client, t: TableInfo, target: pg.Client, id: string): Promise<void> {
    await copyRows({ source: snap, table: t.name, columns: t.columns, keyIndex: null, route: () => id, destination: async () => target, ...this.copyProgress(r) });
    await this.save(r, {});
  }

  /** Counts copied rows as they go; the record is written at most every PROGRESS_SAVE_MS. */
  private copyProgress(r: RebalanceRecord): { progress: (d: CopyCounts) => Promise<void>; every: number } {
    let saved = performance.now();
    return {
      every: this.host.config.rebalance.batch_rows,
      progress: async (d) => {
        this.host.metrics?.rebalanceRowsCopied(d.copied);
        r.rowsCopied += d.copied;
        r.rowsScanned += d.scanned;
        if (performance.now() - saved >= PROGRESS_SAVE_MS) {
          await this.save(r, {});
          saved = performance.now();
        }
        this.checkCancel();
      },
    };
  }

  /** One replicated change: applied to the new owner when its key moves (or, for reference tables, to the new shard). */
  private async applyChange(
    r: RebalanceRecord,
    c: Change,
    source: string,
    referenceSource: boolean,
    tables: Map<string, TableInfo>,
    moves: Moves,
    client: (id: string) => Promise<pg.Client>,
  ): Promise<void> {
    if (c.kind === 'truncate') throw new Error(`TRUNCATE of ${c.tables.join(', ')} on shard "${source}" during the rebalance: the moved rows can no longer be followed; rolled back, start the rebalance again`);
    const t = tables.get(c.table);
    if (!t) return;
    let to: string | null;
    if (t.key) {
      const keyValue = c.kind === 'delete' ? c.key[t.key.column] : c.values[c.columns.indexOf(t.key.column)];
      to = moves.destination(t.key.type, keyValue ?? null, source);
    } else to = r.kind === 'add' && referenceSource ? r.shard : null;
    if (!to) return;
    const target = await client(to);
    if (c.kind === 'delete') {
      await deleteRows(target, t.name, t.primaryKey, [t.primaryKey.map((k) => c.key[k] ?? null)]);
      return;
    }
    if (c.kind === 'update' && c.oldKey && t.primaryKey.some((k) => c.oldKey![k] !== c.values[c.columns.indexOf(k)]))
      await deleteRows(target, t.name, t.primaryKey, [t.primaryKey.map((k) => c.oldKey![k] ?? null)]);
    await upsertRow(target, t.name, c.columns, c.values, t.primaryKey);
  }

  /** Emits a marker on every source and waits for all; the summed lag, or null when one timed out. */
  private async markAll(client: (s: ShardConfig) => Promise<pg.Client>, timeoutMs: number): Promise<number | null> {
    const lags = await Promise.all(this.streams.map(async (s) => s.marker(await client(s.source), timeoutMs)));
    if (lags.some((l) => l === null)) return null;
    const lag = lags.reduce<number>((a, b) => a + (b ?? 0), 0);
    this.lagBytes = lag;
    this.host.metrics?.setRebalanceLag(lag);
    return lag;
  }

  /**
   * Called with the record just saved as `cutting_over`: every instance's follower closes its gate and
   * acknowledges once nothing of its own runs on the old ring. When all live instances have, the last
   * changes are applied and the ring switches in one write of the store; the followers open their gates
   * when they read it. Past max_pause_ms the attempt is abandoned (the caller saves `catching_up`).
   */
  private async cutOver(r: RebalanceRecord, _moves: Moves, client: (s: ShardConfig) => Promise<pg.Client>, stopApplying: () => void): Promise<boolean> {
    const maxPause = this.host.config.rebalance.max_pause_ms;
    const t0 = performance.now();
    const deadline = t0 + maxPause;
    const token = `${r.id}:${r.cutoverAttempts}`;
    // Statements routed on the old ring before the gates closed finish (or their transactions end), everywhere.
    for (;;) {
      const waiting = await this.host.peers.notAcked(token);
      if (waiting.length === 0) break;
      if (performance.now() > deadline) return this.cutoverFailed(r, `statements on the old ring were still running on instance${waiting.length > 1 ? 's' : ''} ${waiting.join(', ')}`);
      await sleep(2);
    }
    // Everything they committed on the sources reaches the new owners.
    const left = Math.max(1, deadline - performance.now());
    const lag = await this.markAll(client, left);
    if (lag === null) return this.cutoverFailed(r, 'the last changes were not applied in time');
    stopApplying();
    const pauseMs = Math.round(performance.now() - t0);
    // The switch: new ring and the clean-up phase in one write of the store.
    const record: RebalanceRecord = { ...r, phase: 'cleaning', pauseMs: Math.max(pauseMs, r.pauseMs ?? 0) };
    Object.assign(r, record);
    await this.host.topology.setShards(r.to, { ...record });
    this.host.metrics?.cutover(pauseMs / 1000);
    this.log.info({ rebalance: r.id, pause_ms: pauseMs, held: this.host.gate.heldStatements, version: this.host.topology.version }, 'cut over to the new ring');
    return true;
  }

  private cutoverFailed(r: RebalanceRecord, why: string): false {
    this.log.warn({ rebalance: r.id, attempt: r.cutoverAttempts, why }, `cut-over abandoned after rebalance.max_pause_ms: ${why}; retrying`);
    return false;
  }

  private async stopStreams(): Promise<void> {
    const s = this.streams;
    this.streams = [];
    await Promise.all(s.map((x) => x.stop()));
  }

  /** Drops the slots and publications a rebalance made on its sources. */
  private async dropReplication(r: RebalanceRecord, client: (s: ShardConfig) => Promise<pg.Client>): Promise<void> {
    const byId = new Map([...r.from, ...r.to].map((s) => [s.id, s]));
    for (const src of r.sources) {
      const s = byId.get(src.shard);
      if (!s) continue;
      const c = await client(s);
      // A walsender still attached (a stream being stopped) keeps the slot active: end it first.
      for (let i = 0; i < 50; i++) {
        const [row] = await rows(c, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [src.slot]);
        if (!row) break;
        if (row[0] !== null) {
          await c.query('SELECT pg_terminate_backend($1)', [row[0]]);
          await sleep(50);
          continue;
        }
        await c.query('SELECT pg_drop_replication_slot($1)', [src.slot]).catch(() => undefined);
      }
      await c.query(`DROP PUBLICATION IF EXISTS ${ident(src.publication)}`);
    }
  }

  private clientsFor(existing?: Map<string, pg.Client>): { client: (s: ShardConfig) => Promise<pg.Client>; close: () => Promise<void> } {
    const own = new Map<string, pg.Client>();
    return {
      client: async (s) => {
        const c = existing?.get(s.id) ?? own.get(s.id);
        if (c) return c;
        const n = await connect(s);
        own.set(s.id, n);
        return n;
      },
      close: async () => {
        for (const c of own.values()) await end(c);
      },
    };
  }

  /** After the switch: the moved rows leave their old shards, in batches; slots and publications go. */
  private async cleanUp(r: RebalanceRecord, existing?: Map<string, pg.Client>): Promise<void> {
    const { client, close } = this.clientsFor(existing);
    try {
      if (r.phase !== 'cleaning') await this.save(r, { phase: 'cleaning' });
      await this.dropReplication(r, client);
      const moves = new Moves(ringOf({ shards: r.from, vnodes: this.host.topology.state.vnodes }), ringOf({ shards: r.to, vnodes: this.host.topology.state.vnodes }));
      const sources = r.kind === 'add' ? r.from : r.from.filter((s) => s.id === r.shard);
      for (const s of sources) {
        const c = await client(s);
        const tables = this.tableInfo(await listTables(c));
        for (const t of tables.values()) {
          if (!t.key) continue;
          const n = await this.deleteWhere(c, t, (key) => moves.destination(t.key!.type, key, s.id) !== null);
          if (n) await this.save(r, { rowsCleaned: r.rowsCleaned + n });
        }
      }
      await this.save(r, { phase: 'done', finishedAt: new Date().toISOString(), pending: undefined });
      this.log.info({ rebalance: r.id, kind: r.kind, shard: r.shard, rows_copied: r.rowsCopied, rows_scanned: r.rowsScanned, rows_cleaned: r.rowsCleaned, pause_ms: r.pauseMs }, 'rebalance done');
    } finally {
      await close();
    }
  }

  /** After the switch the rebalance can only go forward: a failed clean-up is retried, every few seconds and at start. */
  private async cleanUpFailed(r: RebalanceRecord, e: Error): Promise<void> {
    this.log.error({ rebalance: r.id, err: e.message }, 'the clean-up failed; retrying it every few seconds');
    await this.save(r, { phase: 'failed', error: `clean-up failed: ${e.message}; pgshard retries it every few seconds and at start`, pending: { action: 'cleanup', phase: 'cleaning', outcome: 'failed', error: null } }).catch(() => undefined);
  }

  /** Before the switch: the copies on the receiving shards go, and slots and publications; the ring stays. */
  private async rollBack(r: RebalanceRecord, phase: 'failed' | 'cancelled', error: string | null, existing?: Map<string, pg.Client>): Promise<void> {
    const { client, close } = this.clientsFor(existing);
    const from = r.phase;
    try {
      await this.dropReplication(r, client);
      const moves = new Moves(ringOf({ shards: r.from, vnodes: this.host.topology.state.vnodes }), ringOf({ shards: r.to, vnodes: this.host.topology.state.vnodes }));
      // An added shard loses what the rebalance created there (tables with their rows); what it had before stays.
      const added = r.kind === 'add' ? r.to.find((s) => s.id === r.shard) : undefined;
      if (added && r.created) {
        const dropped = await dropCreated(await client(added), r.created);
        if (dropped.length) this.log.info({ rebalance: r.id, shard: r.shard, tables: dropped }, 'dropped the tables the rebalance created on the new shard');
      }
      const copied = ['copying', 'catching_up', 'cutting_over'].includes(r.phase);
      const destinations = !copied ? [] : r.kind === 'add' ? r.to.filter((s) => s.id === r.shard) : r.to;
      // Copies went only into the tables of the source's catalog; other tables of a destination are not ours.
      const source = r.kind === 'add' ? r.from[0] : r.from.find((s) => s.id === r.shard);
      const copiedInto = destinations.length && source ? new Set((await listTables(await client(source))).map((t) => t.name)) : new Set<string>();
      for (const d of destinations) {
        const c = await client(d);
        const tables = this.tableInfo((await listTables(c)).filter((t) => copiedInto.has(t.name)));
        for (const t of tables.values()) {
          if (!t.key) {
            // Reference rows were copied only to a new shard, whose tables were empty before.
            if (r.kind === 'add') await c.query(`DELETE FROM ${qualifiedName(t.name)}`);
            continue;
          }
          // Rows whose key the routing ring gives to another shard are copies made by this rebalance.
          await this.deleteWhere(c, t, (key) => moves.owners(t.key!.type, key)?.from !== d.id);
        }
      }
      await this.save(r, { phase, error, finishedAt: new Date().toISOString(), pending: undefined });
      this.log.warn({ rebalance: r.id, phase, error }, 'rebalance rolled back');
    } catch (e) {
      this.log.error({ rebalance: r.id, err: (e as Error).message }, 'the roll-back failed; retrying it every few seconds');
      await this.save(r, {
        phase: 'failed',
        error: `${error ?? 'cancelled'}; the roll-back failed too (${(e as Error).message}): pgshard retries it every few seconds and at start`,
        pending: { action: 'rollback', phase: from, outcome: phase, error },
      }).catch(() => undefined);
    } finally {
      await close();
    }
  }

  /** Deletes, in batches, the rows of `t` whose key `doomed` says must go. */
  private async deleteWhere(c: pg.Client, t: TableInfo, doomed: (key: string | null) => boolean): Promise<number> {
    const key = t.key!;
    const cols = [...t.primaryKey];
    const keyAt = cols.indexOf(key.column);
    const batchRows = this.host.config.rebalance.batch_rows;
    const victims: Row[] = [];
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      await scan(c, t.name, cols, batchRows * 10, async (batch) => {
        for (const row of batch) if (doomed(row[keyAt] ?? null)) victims.push(row);
      });
    } finally {
      await c.query('COMMIT');
    }
    let n = 0;
    for (let i = 0; i < victims.length; i += batchRows) n += await deleteRows(c, t.name, cols, victims.slice(i, i + batchRows));
    return n;
  }
}

function qualifiedName(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? ident(name) : `${ident(name.slice(0, dot))}.${ident(name.slice(dot + 1))}`;
}

/** A row on `shard` whose key moves to it: a copy (only the routing ring's owner holds the original). */
function incoming(moves: Moves, t: TableInfo, key: string | null, shard: string): boolean {
  const o = moves.owners(t.key!.type, key);
  return o !== null && o.from !== shard && o.to === shard;
}

function sameShards(a: readonly ShardConfig[], b: readonly ShardConfig[]): boolean {
  const x = a.map((s) => s.id).sort();
  const y = b.map((s) => s.id).sort();
  return x.length === y.length && x.every((id, i) => id === y[i]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
