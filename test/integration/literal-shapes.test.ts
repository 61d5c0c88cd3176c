/**
 * Simple-protocol statements that differ only in their literals share one analysis (src/sql/literal-shape.ts):
 * pgbench's TPC-B, like most ORMs without bind parameters, sends a new text for every statement, and a
 * full parse of each was most of pgshard's CPU on it. Writes to reference tables take that path too; they
 * must still reach every shard, each with its own literals.
 */
import t from 'tap';
import { withShards } from '../helpers/shards.js';
import { startProxy, pgClient, directClient } from '../helpers/proxy.js';

const shards = await withShards(t, 2);

t.test('reference-table writes differing in literals are parsed once and reach every shard', async (t) => {
  for (const s of shards.clusters) {
    const d = await directClient(s, { t });
    await d.query('CREATE TABLE ref (id int PRIMARY KEY, v bigint NOT NULL)');
    await d.query('CREATE TABLE ref_log (id int, note text)');
    await d.query('INSERT INTO ref SELECT g, 0 FROM generate_series(1, 3) g');
  }
  const proxy = await startProxy(t, shards.clusters, { tables: { items: { shard_key: 'id', key_type: 'bigint' } } });
  const c = await pgClient(proxy.port, { t });
  const want = new Map<number, number>([
    [1, 0],
    [2, 0],
    [3, 0],
  ]);
  const run = async (i: number): Promise<void> => {
    const id = (i % 3) + 1;
    await c.query(`UPDATE ref SET v = v + -${i} WHERE id = ${id}`);
    await c.query(`INSERT INTO ref_log (id, note) VALUES (${i}, 'n''${i}')`);
    want.set(id, want.get(id)! - i);
  };
  for (let i = 1; i <= 3; i++) await run(i);
  const stats = proxy.server.analyzer.stats;
  const misses = stats.misses;
  for (let i = 4; i <= 40; i++) await run(i);
  t.equal(stats.misses, misses, '37 more statements of the same two shapes: no statement parsed again');
  for (const [k, s] of shards.clusters.entries()) {
    const d = await directClient(s, { t });
    const ref = (await d.query('SELECT id, v FROM ref ORDER BY id')).rows.map((r) => [r.id, Number(r.v)]);
    t.same(ref, [...want], `shard s${k} has every update, each with its own literals`);
    const log = await d.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE note = 'n''' || id)::int AS ok FROM ref_log");
    t.same(log.rows[0], { n: 40, ok: 40 }, `shard s${k} has every insert with its own values`);
  }
});

t.test('inline decimals share a shape, and a decimal where the key is never takes an integer shape', async (t) => {
  for (const s of shards.clusters) {
    const d = await directClient(s, { t });
    await d.query('CREATE TABLE items (id bigint PRIMARY KEY, price numeric NOT NULL)');
  }
  const proxy = await startProxy(t, shards.clusters, { tables: { items: { shard_key: 'id', key_type: 'bigint' } } });
  const c = await pgClient(proxy.port, { t });
  for (let id = 1; id <= 10; id++) await c.query(`INSERT INTO items (id, price) VALUES (${id}, ${id}.5)`);
  const stats = proxy.server.analyzer.stats;
  const want: [string, string][] = [];
  let misses = 0;
  for (let id = 1; id <= 10; id++) {
    await c.query(`UPDATE items SET price = price + ${id}.25e1 WHERE id = ${id}`);
    if (id === 1) misses = stats.misses; // the first of the shape: the text and the shape are analysed
    want.push([String(id), String(id + 0.5 + (id + 0.25) * 10)]);
  }
  t.equal(stats.misses, misses, 'nine updates with other decimals and keys: no statement parsed again');
  const got = (await c.query('SELECT id, price FROM items ORDER BY id')).rows.map((r) => [r.id, String(Number(r.price))]);
  t.same(got, want, 'every row has its own price');
  // `id = 5` teaches the integer shape; `id = 5.0` and `id = 5.5` compare numerically, as in Postgres.
  t.same((await c.query('SELECT id FROM items WHERE id = 5')).rows, [{ id: '5' }]);
  t.same((await c.query('SELECT id FROM items WHERE id = 5.0')).rows, [{ id: '5' }], 'id = 5.0 finds row 5');
  t.same((await c.query('SELECT id FROM items WHERE id = 5.5')).rows, [], 'id = 5.5 finds nothing (no error)');
  t.same((await c.query('SELECT id FROM items WHERE id = 7.0')).rows, [{ id: '7' }], 'the decimal shape is not the integer one');
});
