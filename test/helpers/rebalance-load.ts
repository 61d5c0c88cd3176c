/**
 * The load a rebalance must survive, and the check afterwards: writers insert users (some with an order
 * in the same transaction), update and delete their own rows and read back what they acknowledged,
 * through one or several pgshard instances; every acknowledged write is recorded, every error kept.
 * `checkPlacement` then asserts every acknowledged row exists exactly once, on the shard the final ring
 * names, and nowhere else.
 */
import pg from 'pg';
import type { PostgresCluster } from '../../src/embedded/cluster.js';
import type { HashRing } from '../../src/routing/ring.js';
import { canonicalFromText } from '../../src/routing/canonical.js';
import { sleep, testLogger } from './proxy.js';
import type { Teardownable } from './shards.js';
import type { PgShardServer } from '../../src/server/server.js';
import { Metrics } from '../../src/admin/metrics.js';
import { startAdmin } from '../../src/admin/http.js';

export const SCHEMA = `
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, n int NOT NULL DEFAULT 0, created timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (user_id bigint NOT NULL, id int NOT NULL, amount numeric(10,2) NOT NULL, PRIMARY KEY (user_id, id));
CREATE INDEX orders_amount ON orders (amount);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO countries VALUES ('de','Germany'),('fr','France'),('jp','Japan');
`;
export const TABLES = { users: { shard_key: 'id', key_type: 'bigint' }, orders: { shard_key: 'user_id', key_type: 'bigint' }, countries: { reference: true } };
export const PRELOAD = 3000;

export interface Expected {
  name: string;
  orders: number;
}

export interface Load {
  expected: Map<bigint, Expected>;
  errors: string[];
  /** Statements run, the longest one (ms) and, per URL, how many statements went through it. */
  stats: { statements: number; longest: number; perUrl: number[] };
  stop(): Promise<void>;
}

/** Preloads PRELOAD users through `urls[0]`. */
export async function preload(url: string, expected: Map<bigint, Expected>): Promise<void> {
  const loader = new pg.Client({ connectionString: url });
  await loader.connect();
  try {
    for (let i = 0; i < PRELOAD; i += 300) {
      const ids = Array.from({ length: 300 }, (_, k) => BigInt(i + k + 1));
      await loader.query(`INSERT INTO users (id, name) VALUES ${ids.map((id) => `(${id}, 'pre${id}')`).join(', ')}`);
      for (const id of ids) expected.set(id, { name: `pre${id}`, orders: 0 });
    }
  } finally {
    await loader.end();
  }
}

/**
 * Starts `writers` clients, spread over `urls` round-robin. `txPauseMs[i]` keeps each two-statement
 * transaction through `urls[i]` open that long between its statements, so that a cut-over finds
 * transactions in flight there.
 */
export function startLoad(urls: readonly string[], writers: number, expected: Map<bigint, Expected>, txPauseMs: readonly number[] = []): Load {
  const errors: string[] = [];
  const stats = { statements: 0, longest: 0, perUrl: urls.map(() => 0) };
  let stop = false;
  const writer = async (w: number) => {
    const u = w % urls.length;
    const client = new pg.Client({ connectionString: urls[u] });
    await client.connect();
    const mine: bigint[] = [];
    let seq = 0;
    const timed = async <T>(fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        stats.longest = Math.max(stats.longest, performance.now() - t0);
        stats.statements++;
        stats.perUrl[u]!++;
      }
    };
    try {
      while (!stop) {
        const op = seq % 10;
        try {
          if (op < 5 || mine.length < 5) {
            const id = BigInt((w + 1) * 1_000_000 + ++seq);
            if (op === 1) {
              await timed(async () => {
                await client.query('BEGIN');
                await client.query('INSERT INTO users (id, name) VALUES ($1, $2)', [id, `w${w}-${id}`]);
                if (txPauseMs[u]) await sleep(txPauseMs[u]!);
                await client.query('INSERT INTO orders (user_id, id, amount) VALUES ($1, 1, 9.99)', [id]);
                await client.query('COMMIT');
              });
              expected.set(id, { name: `w${w}-${id}`, orders: 1 });
            } else {
              await timed(() => client.query(`INSERT INTO users (id, name) VALUES (${id}, 'w${w}-${id}')`));
              expected.set(id, { name: `w${w}-${id}`, orders: 0 });
            }
            mine.push(id);
          } else if (op < 7) {
            seq++;
            const id = mine[(seq * 7919) % mine.length]!;
            const name = `u${seq}`;
            const r = await timed(() => client.query('UPDATE users SET name = $2, n = n + 1 WHERE id = $1', [id, name]));
            if (r.rowCount !== 1) errors.push(`writer ${w}: UPDATE of ${id} touched ${r.rowCount} rows`);
            expected.get(id)!.name = name;
          } else if (op === 7) {
            seq++;
            const id = mine.splice((seq * 31) % mine.length, 1)[0]!;
            const r = await timed(() => client.query(`DELETE FROM users WHERE id = ${id}`));
            if (r.rowCount !== 1) errors.push(`writer ${w}: DELETE of ${id} touched ${r.rowCount} rows`);
            if (expected.get(id)!.orders) await timed(() => client.query('DELETE FROM orders WHERE user_id = $1', [id]));
            expected.delete(id);
          } else {
            seq++;
            const id = seq % 2 ? mine[(seq * 13) % mine.length]! : BigInt(1 + (seq % PRELOAD));
            const want = expected.get(id);
            const r = await timed(() => client.query('SELECT name FROM users WHERE id = $1', [id]));
            if (want && r.rows[0]?.name !== want.name) errors.push(`writer ${w}: read ${id}: ${JSON.stringify(r.rows)} instead of ${want.name}`);
          }
        } catch (e) {
          errors.push(`writer ${w}: ${(e as Error).message}`);
          await client.query('ROLLBACK').catch(() => undefined);
          if (errors.length > 20) return;
        }
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  const running = Array.from({ length: writers }, (_, w) => writer(w));
  return {
    expected,
    errors,
    stats,
    stop: async () => {
      stop = true;
      await Promise.all(running);
    },
  };
}

export type Api = (method: string, p: string, body?: unknown) => Promise<{ status: number; body: Record<string, unknown> }>;

/** The admin API (and its metrics) of an in-process pgshard, stopped at the end of the test. */
export async function startAdminApi(t: Teardownable, server: PgShardServer): Promise<{ api: Api; metrics: Metrics }> {
  const metrics = new Metrics({ healthIntervalMs: 60_000 });
  const admin = await startAdmin(server, metrics, { host: '127.0.0.1', port: 0 }, testLogger());
  t.teardown(async () => {
    await admin.close();
    metrics.close();
  });
  return { api: adminApi(admin.port), metrics };
}

/** An admin API client for the API on `port`. */
export function adminApi(port: number): Api {
  return async (method, p, body) => {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { method, headers: { 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
}

/** Waits for the rebalance to end; returns GET /rebalance's last answer. */
export async function rebalanceEnded(api: Api, what: string, timeoutMs = 240_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api('GET', '/rebalance');
    if (['done', 'failed', 'cancelled'].includes(String(r.body.state))) return r.body;
    if (Date.now() > deadline) throw new Error(`${what}: still ${r.body.state} after ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

interface Assert {
  same(a: unknown, b: unknown, msg?: string): void;
  equal(a: unknown, b: unknown, msg?: string): void;
}

/** Every acknowledged row exactly once, on its owner by `ring`; nothing anywhere else; orders counted. */
export async function checkPlacement(t: Assert, shards: Record<string, PostgresCluster>, ring: HashRing, expected: Map<bigint, Expected>): Promise<Map<string, number>> {
  const found = new Map<bigint, string[]>();
  const names = new Map<bigint, string>();
  for (const [id, c] of Object.entries(shards)) {
    for (const row of await c.query<{ id: string; name: string }>('SELECT id::text, name FROM users', 'app')) {
      const k = BigInt(row.id);
      found.set(k, [...(found.get(k) ?? []), id]);
      names.set(k, row.name);
    }
  }
  const misplaced: string[] = [];
  for (const [id, want] of expected) {
    const owner = ring.shardFor(canonicalFromText('bigint', String(id)));
    const where = found.get(id) ?? [];
    if (where.length !== 1 || where[0] !== owner) misplaced.push(`${id}: on [${where.join(',')}], owner ${owner}`);
    else if (names.get(id) !== want.name) misplaced.push(`${id}: name ${names.get(id)} instead of ${want.name}`);
  }
  const strays = [...found.keys()].filter((id) => !expected.has(id));
  t.same(misplaced.slice(0, 10), [], `every acknowledged row (${expected.size}) exactly once on its owner`);
  t.same(strays.slice(0, 10), [], 'no row that was deleted or never acknowledged');
  const orders = new Map<string, number>();
  for (const [id, c] of Object.entries(shards)) orders.set(id, Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM orders', 'app'))[0]!.n));
  const wantOrders = [...expected.values()].filter((e) => e.orders).length;
  t.equal([...orders.values()].reduce((a, b) => a + b, 0), wantOrders, `orders: ${JSON.stringify(Object.fromEntries(orders))}`);
  return orders;
}
