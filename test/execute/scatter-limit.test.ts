/**
 * ORDER BY … LIMIT over a large cross-shard table (300k rows per shard, generated server-side): the
 * right rows, memory bounded by the number of shards (pgshard's own count of the shard rows it holds),
 * backpressure to a client that stops reading, and shards stopped as soon as the client has its rows.
 */
import t from 'tap';
import pg from 'pg';
import { scatterStats } from '../../src/execute/scatter.js';
import { pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { withShards } from '../helpers/shards.js';

const ROWS_PER_SHARD = 300_000;
/** Bound for the shard rows pgshard holds at once: a network read or two per shard, whatever the table size. */
const HELD_BOUND = 3 * 512 * 1024;

t.test('large cross-shard ORDER BY / LIMIT', async (t) => {
  const shards = await withShards(t, 3);
  await Promise.all(
    shards.clusters.map((c, i) =>
      c.query(
        `CREATE TABLE big (id bigint PRIMARY KEY, x int NOT NULL, pad text NOT NULL);
         INSERT INTO big SELECT ${i} * 1000000 + g, ((g::bigint * 7919 + ${i} * 13) % 1000003)::int, repeat('p', 40) FROM generate_series(1, ${ROWS_PER_SHARD}) g;
         ANALYZE big;
         CREATE FUNCTION slow_on_this_shard(int) RETURNS boolean LANGUAGE sql AS $$ SELECT ${i === 2 ? 'pg_sleep(30) IS NOT NULL' : 'true'} $$;`,
        'app',
      ),
    ),
  );
  const proxy = await startProxy(t, shards.clusters, { tables: { big: { shard_key: 'id', key_type: 'bigint' } } });
  const c = await pgClient(proxy.port, { t });

  // The answer, computed from each shard's own top 10.
  const tops = await Promise.all(shards.clusters.map((s) => s.query<{ id: string; x: number }>('SELECT id::text AS id, x FROM big ORDER BY x, id LIMIT 10', 'app')));
  const expected = tops
    .flat()
    .sort((a, b) => a.x - b.x || (BigInt(a.id) < BigInt(b.id) ? -1 : 1))
    .slice(0, 10)
    .map((r) => [r.id, String(r.x)]);

  await t.test('ORDER BY x, id LIMIT 10: the right rows, shards done', async (t) => {
    scatterStats.reset();
    const started = Date.now();
    const r = await c.query({ text: 'SELECT id, x FROM big ORDER BY x, id LIMIT 10', rowMode: 'array', types: { getTypeParser: () => (v: string) => v } } as pg.QueryConfig);
    const ms = Date.now() - started;
    t.same(r.rows, expected, 'the first 10 rows of the merged order');
    t.ok(scatterStats.peakHeldBytes < HELD_BOUND, `held at most ${scatterStats.peakHeldBytes} bytes of shard rows`);
    t.comment(`ORDER BY … LIMIT 10 over ${3 * ROWS_PER_SHARD} rows: ${ms} ms, ${scatterStats.peakHeldRows} rows held at most`);
    await sleep(200);
    for (const s of shards.clusters) {
      const active = await s.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%FROM big ORDER BY%' AND pid <> pg_backend_pid()", 'app');
      t.equal(active[0]!.n, 0, `shard on port ${s.port} no longer runs the query`);
    }
  });

  await t.test('ORDER BY with OFFSET: each shard asked for LIMIT + OFFSET rows', async (t) => {
    const r = await c.query({ text: 'SELECT id, x FROM big ORDER BY x, id LIMIT 4 OFFSET 6', rowMode: 'array', types: { getTypeParser: () => (v: string) => v } } as pg.QueryConfig);
    t.same(r.rows, expected.slice(6, 10));
  });

  await t.test('streaming 900k rows in order: bounded memory, backpressure to a client that stops reading', async (t) => {
    scatterStats.reset();
    const client = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'app', password: 'app', database: 'app' });
    await client.connect();
    t.teardown(() => client.end());
    const stream = (client as unknown as { connection: { stream: NodeJS.ReadableStream } }).connection.stream;
    let n = 0;
    let last = -1;
    let sorted = true;
    let pausedOnce = false;
    await new Promise<void>((resolve, reject) => {
      const q = new pg.Query({ text: 'SELECT x, pad FROM big ORDER BY x', types: { getTypeParser: () => (v: string) => v } } as pg.QueryConfig);
      q.on('row', (row: { x: string }) => {
        const x = Number(row.x);
        if (x < last) sorted = false;
        last = x;
        n++;
        if (n === 100_000 && !pausedOnce) {
          // The client stops reading for a while: pgshard must stop reading the shards, not buffer them.
          pausedOnce = true;
          stream.pause();
          setTimeout(() => stream.resume(), 700);
        }
      });
      q.on('end', () => resolve());
      q.on('error', reject);
      client.query(q);
    });
    t.equal(n, 3 * ROWS_PER_SHARD, 'every row');
    t.ok(sorted, 'in order');
    t.ok(scatterStats.peakHeldBytes < HELD_BOUND, `held at most ${scatterStats.peakHeldBytes} bytes (${scatterStats.peakHeldRows} rows) of shard rows`);
  });

  await t.test('a shard still running when the client has its rows is cancelled', async (t) => {
    scatterStats.reset();
    const started = Date.now();
    const r = await c.query('SELECT id FROM big WHERE slow_on_this_shard(x) LIMIT 10');
    const ms = Date.now() - started;
    t.equal(r.rowCount, 10, 'ten rows');
    t.ok(ms < 10_000, `answered in ${ms} ms, not after the slow shard's 30 s`);
    t.ok(scatterStats.cancelledEarly >= 1, `${scatterStats.cancelledEarly} shard(s) cancelled`);
    const slow = shards.clusters[2]!;
    let running = -1;
    for (let i = 0; i < 20; i++) {
      const a = await slow.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%slow_on_this_shard%' AND pid <> pg_backend_pid()", 'app');
      running = a[0]!.n;
      if (running === 0) break;
      await sleep(100);
    }
    t.equal(running, 0, 'the slow shard no longer runs the query');
    // The connections are usable afterwards (cancelled ones were answered or closed).
    const again = await c.query('SELECT count(*) AS n FROM big');
    t.equal(again.rows[0].n, String(3 * ROWS_PER_SHARD));
  });
});
