/**
 * Three real Postgres shards with the routing schema created on each directly, and pgshard in front of
 * them. `withSharded(t)` gives the shards, the proxy, and the questions routing tests ask: which shard owns
 * a key (`routeKey`, the same code as `pgshard route`), which shards actually hold a row, and SQL run
 * straight on one shard (as the superuser, database app) to check what pgshard did.
 */
import type { QueryConfig } from 'pg';
import type { PostgresCluster } from '../../src/embedded/cluster.js';
import { initHash } from '../../src/routing/hash.js';
import { routeKey } from '../../src/routing/route-cli.js';
import { withShards, type Shards, type Teardownable } from './shards.js';
import { startProxy, type Proxy } from './proxy.js';

/** Created on every shard. `countries` is a reference table: the same rows everywhere. */
export const SCHEMA = `
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text, country text);
CREATE TABLE orders (id bigint NOT NULL, user_id bigint NOT NULL, amount numeric(10,2) NOT NULL, PRIMARY KEY (user_id, id));
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO countries VALUES ('de','Germany'),('fr','France'),('jp','Japan'),('br','Brazil'),('us','United States'),('in','India');
CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL);
`;

export const TABLES = {
  users: { shard_key: 'id', key_type: 'bigint' },
  orders: { shard_key: 'user_id', key_type: 'bigint' },
  countries: { reference: true },
  pgbench_accounts: { shard_key: 'aid', key_type: 'bigint' },
  /** A sharded table with the cross-shard guardrail on. */
  events: { shard_key: 'id', key_type: 'bigint', cross_shard: 'refuse' },
} as const;

export const SHARD_IDS = ['s0', 's1', 's2'] as const;

export interface ShardedSetup {
  shards: Shards;
  clusters: PostgresCluster[];
  proxy: Proxy;
  /** The shard id (s0…s2) that owns `key` of `table`, as `pgshard route` says. */
  owner(table: string, key: string | number | bigint): string;
  /** The cluster behind a shard id. */
  cluster(id: string): PostgresCluster;
  /** The port of a shard id. */
  port(id: string): number;
  /** Rows of `sql` run straight on one shard. */
  direct<R extends Record<string, unknown> = Record<string, unknown>>(id: string, sql: string, params?: unknown[]): Promise<R[]>;
  /** The shard ids on which `sql` (run directly) returns at least one row, in shard order. */
  holders(sql: string, params?: unknown[]): Promise<string[]>;
  /** `n` keys (from `from` up) that `table`'s ring gives to `shard`. */
  keysOn(table: string, shard: string, n: number, from?: number): number[];
  /** Sum over the shards of a single-number query run directly, e.g. `select count(*) from users`. */
  total(sql: string, params?: unknown[]): Promise<number>;
  /** Another pgshard on the same shards with more overrides (e.g. `unknown_tables: 'refuse'`). */
  startAnotherProxy(overrides: Record<string, unknown>): Promise<Proxy>;
}

export interface WithShardedOptions {
  /** Extra SQL run on every shard after SCHEMA. */
  schema?: string;
  /** Overrides for the proxy's config document (tables default to TABLES). */
  overrides?: Record<string, unknown>;
}

export async function withSharded(t: Teardownable, opts: WithShardedOptions = {}): Promise<ShardedSetup> {
  await initHash();
  const shards = await withShards(t, 3);
  const clusters = shards.clusters;
  for (const c of clusters) {
    await c.query(SCHEMA, 'app');
    if (opts.schema) await c.query(opts.schema, 'app');
  }
  const proxy = await startProxy(t, clusters, { tables: TABLES, ...opts.overrides });
  const index = (id: string): number => {
    const i = proxy.config.shards.findIndex((s) => s.id === id);
    if (i < 0) throw new Error(`no shard ${id}`);
    return i;
  };
  const setup: ShardedSetup = {
    shards,
    clusters,
    proxy,
    owner: (table, key) => routeKey(proxy.config, table, String(key)).shard,
    cluster: (id) => clusters[index(id)]!,
    port: (id) => clusters[index(id)]!.port,
    direct: (id, sql, params) => clusters[index(id)]!.query(sql, 'app', params),
    async holders(sql, params) {
      const found = await Promise.all(SHARD_IDS.map(async (id) => ((await setup.direct(id, sql, params)).length > 0 ? id : null)));
      return found.filter((x): x is (typeof SHARD_IDS)[number] => x !== null);
    },
    keysOn(table, shard, n, from = 1) {
      const out: number[] = [];
      for (let k = from; out.length < n; k++) {
        if (k > from + 100_000) throw new Error(`no ${n} keys of ${table} on ${shard}`);
        if (setup.owner(table, k) === shard) out.push(k);
      }
      return out;
    },
    async total(sql, params) {
      const parts = await Promise.all(SHARD_IDS.map((id) => setup.direct(id, sql, params)));
      return parts.reduce((sum, rows) => sum + Number(Object.values(rows[0] ?? { n: 0 })[0]), 0);
    },
    startAnotherProxy: (overrides) => startProxy(t, clusters, { tables: TABLES, ...opts.overrides, ...overrides }),
  };
  return setup;
}

/** Two keys of `table` owned by different shards (the first key from `from` up, and the first not on its shard). */
export function keysOnTwoShards(s: ShardedSetup, table: string, from = 1): { a: number; b: number; shardA: string; shardB: string } {
  const a = from;
  const shardA = s.owner(table, a);
  let b = a + 1;
  while (s.owner(table, b) === shardA) b++;
  return { a, b, shardA, shardB: s.owner(table, b) };
}

/** A node-postgres query sent with the extended protocol even without parameters (pg's `queryMode`). */
export function extended(text: string): QueryConfig {
  return { text, queryMode: 'extended' } as QueryConfig;
}
