/**
 * The router: from a statement's analysis (and, for the extended protocol, its Bind values) to the shards
 * that must run it. Pure: the ring and the table schema in, a target out; the session executes it.
 */
import type { Config, KeyType } from '../config/schema.js';
import { isShardedTable } from '../config/schema.js';
import type { MergePlan, RoutingHint, StatementInfo } from '../sql/types.js';
import { PgError, SqlState } from '../protocol/errors.js';
import type { HashRing } from './ring.js';
import { shardsForKeys, type BindParams } from './keys.js';
import { canonicalFromText, KeyValueError } from './canonical.js';

export type Target =
  /** Touches no sharded table: the session's home shard (or the shard its transaction is on). */
  | { kind: 'home' }
  | { kind: 'shard'; shard: string }
  /** A read whose shards' rows, concatenated, are exactly the answer. */
  | { kind: 'scatter'; shards: string[]; merge?: MergePlan }
  /** A write on several shards: the same statement on each, in one distributed transaction (or one shard
   *  at a time, for statements Postgres refuses in a transaction block). */
  | { kind: 'broadcast'; shards: string[]; transactional: boolean; /** every shard holds the same rows: report one shard's count */ reference?: boolean }
  /** COPY FROM STDIN into a sharded table: rows are routed one by one by their key. */
  /** COPY FROM STDIN on every shard: rows split by `keyColumn`, or (null: a reference table) every row to every shard. */
  | { kind: 'copy-in'; table: string; keyColumn: string | null }
  /** A multi-row INSERT whose rows belong to several shards: each row's shard, in order. */
  | { kind: 'split-insert'; rowShards: string[] }
  | { kind: 'error'; error: PgError };

export interface RouteContext {
  /** `SET pgshard.shard = …` of the session, if any. */
  sessionShard: string | null;
}

export class Router {
  /** The shard that owns one canonical key (COPY routing, row by row). */
  shardForKey(table: string, key: string): string {
    return this.ring.shardFor(canonicalFromText(this.keyType(table), key));
  }

  /** The shard that owns a key already in canonical form (binary COPY routing). */
  shardForCanonical(canonical: Uint8Array): string {
    return this.ring.shardFor(canonical);
  }

  /** The configured key_type of a sharded table. */
  keyTypeOf(table: string): KeyType {
    return this.keyType(table);
  }

  constructor(
    private ring: HashRing,
    private readonly tables: Config['tables'],
  ) {}

  get shardIds(): readonly string[] {
    return this.ring.shardIds;
  }

  setRing(ring: HashRing): void {
    this.ring = ring;
  }

  /** The ring that routes now (it changes when the topology does). */
  currentRing(): HashRing {
    return this.ring;
  }

  hasShard(id: string): boolean {
    return this.ring.shardIds.includes(id);
  }

  private keyType(table: string | null): KeyType {
    const t = table ? this.tables[table] : undefined;
    return t && isShardedTable(t) ? t.key_type : 'bigint';
  }

  private crossShardRefused(table: string): boolean {
    const t = this.tables[table];
    return !!t && isShardedTable(t) && t.cross_shard === 'refuse';
  }

  /** Manual routing first (comment hint, then the session's pgshard.shard); null when neither applies. */
  private manual(hint: RoutingHint | null, stmt: StatementInfo | null, ctx: RouteContext): Target | null {
    const shard = hint?.shard ?? (hint?.key === undefined ? ctx.sessionShard : null);
    if (shard) {
      if (!this.hasShard(shard))
        return { kind: 'error', error: new PgError('42704', `shard "${shard}" does not exist`, { hint: `Known shards: ${this.ring.shardIds.join(', ')}.` }) };
      return { kind: 'shard', shard };
    }
    if (hint?.key !== undefined) {
      const table = stmt && (stmt.route.type === 'keys' || stmt.route.type === 'all') ? stmt.route.table : null;
      try {
        return { kind: 'shard', shard: this.ring.shardFor(canonicalFromText(this.keyType(table), hint.key)) };
      } catch (e) {
        if (e instanceof KeyValueError) return { kind: 'error', error: e };
        throw e;
      }
    }
    return null;
  }

  /** One statement. `params` null means its Bind values are not known (simple protocol has none). */
  route(stmt: StatementInfo, hint: RoutingHint | null, params: BindParams | null, ctx: RouteContext): Target {
    const m = this.manual(hint, stmt, ctx);
    if (m) return m;
    const r = stmt.route;
    switch (r.type) {
      case 'none':
        return { kind: 'home' };
      case 'refuse':
        return { kind: 'error', error: new PgError(r.sqlstate, r.message, r.hint ? { hint: r.hint } : {}) };
      case 'reference':
        if (!r.write || this.ring.shardIds.length === 1) return { kind: 'home' };
        // The data follows the statement: every shard runs the COPY and gets every row.
        if (stmt.copy?.direction === 'from') return { kind: 'copy-in', table: r.tables[0]!, keyColumn: null };
        return { kind: 'broadcast', shards: [...this.ring.shardIds], transactional: !stmt.nonTransactional, reference: true };
      case 'all':
        return this.spread(stmt, r.table, this.ring.shardIds);
      case 'keys': {
        let set: Set<string> | 'all';
        try {
          set = shardsForKeys(this.ring, this.keyType(r.table), r.keys, params);
        } catch (e) {
          if (e instanceof KeyValueError) return { kind: 'error', error: e };
          throw e;
        }
        if (set === 'all') return this.spread(stmt, r.table, this.ring.shardIds);
        if (set.size === 0) return { kind: 'home' }; // only NULL keys: no row can match, any shard answers that
        if (set.size === 1) return { kind: 'shard', shard: set.values().next().value as string };
        if (stmt.insertRows !== undefined && r.keys.length === stmt.insertRows && !this.crossShardRefused(r.table)) {
          const rowShards: string[] = [];
          for (const k of r.keys) {
            const one = shardsForKeys(this.ring, this.keyType(r.table), [k], params);
            if (one === 'all' || one.size !== 1) return this.spread(stmt, r.table, [...set].sort());
            rowShards.push(one.values().next().value as string);
          }
          return { kind: 'split-insert', rowShards };
        }
        return this.spread(stmt, r.table, [...set].sort());
      }
    }
  }

  private spread(stmt: StatementInfo, table: string, shards: readonly string[]): Target {
    if (shards.length === 1) return { kind: 'shard', shard: shards[0]! };
    if (this.crossShardRefused(table))
      return {
        kind: 'error',
        error: new PgError(SqlState.FeatureNotSupported, `statement on table "${table}" would reach ${shards.length} shards, and the table is configured with cross_shard: refuse`, {
          hint: `Add a condition on the shard key of "${table}", or remove cross_shard: refuse from its configuration.`,
        }),
      };
    if (stmt.copy) {
      if (stmt.copy.direction === 'to' && stmt.notConcatenable !== null)
        return {
          kind: 'error',
          error: new PgError(SqlState.FeatureNotSupported, `COPY … TO STDOUT with ${stmt.notConcatenable} across shards is not supported (the shards' output would only be concatenated)`, {
            hint: 'Run the SELECT itself (pgshard merges it), or COPY from each shard.',
          }),
        };
      if (stmt.copy.direction === 'to') return { kind: 'scatter', shards: [...shards] };
      const t = this.tables[table];
      return { kind: 'copy-in', table, keyColumn: t && isShardedTable(t) ? t.shard_key : null };
    }
    if (stmt.explain)
      return { kind: 'error', error: new PgError(SqlState.FeatureNotSupported, 'EXPLAIN of a statement that reaches several shards is not supported yet', { hint: 'EXPLAIN it with a shard key condition, or with /* pgshard: shard=ID */.' }) };
    if (stmt.notConcatenable !== null && stmt.merge?.refuse)
      return {
        kind: 'error',
        error: new PgError(SqlState.FeatureNotSupported, stmt.merge.refuse.message, {
          detail: `The statement reaches ${shards.length} shards and has ${stmt.notConcatenable}.`,
          hint: stmt.merge.refuse.hint ?? 'Add a condition on the shard key so the statement reaches one shard, or route it with /* pgshard: shard=ID */.',
        }),
      };
    if (!stmt.readOnly) {
      if (stmt.tag === 'INSERT') return refuseMultiShardWrite(`an INSERT whose rows belong to several shards`);
      if (stmt.notConcatenable !== null) return refuseMultiShardWrite(`${stmt.tag} with ${stmt.notConcatenable}`);
      return { kind: 'broadcast', shards: [...shards], transactional: !stmt.nonTransactional };
    }
    if (stmt.notConcatenable !== null && stmt.merge) return { kind: 'scatter', shards: [...shards], merge: stmt.merge };
    if (stmt.notConcatenable !== null)
      return {
        kind: 'error',
        error: new PgError(SqlState.FeatureNotSupported, `cross-shard SELECT with ${stmt.notConcatenable} is not supported yet`, {
          detail: `The statement reaches ${shards.length} shards; pgshard can only concatenate their rows so far.`,
          hint: 'Add a condition on the shard key so the statement reaches one shard, or route it with /* pgshard: shard=ID */.',
        }),
      };
    return { kind: 'scatter', shards: [...shards] };
  }
}

export function refuseMultiShardWrite(what: string): Target {
  return {
    kind: 'error',
    error: new PgError(SqlState.FeatureNotSupported, `${what} would write to several shards, which needs distributed transactions (not supported yet)`, {
      hint: 'Write through the shard key so each statement reaches one shard, or run it on each shard directly.',
    }),
  };
}
