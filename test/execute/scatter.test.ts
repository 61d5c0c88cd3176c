/**
 * The scatter executor's guards, against real shards: merges that cannot be exact are refused before any
 * row is sent (a column under an ICU collation, DateStyle other than ISO, a float sum), shards that
 * disagree on columns are an error, a merged statement must come alone, a client's CancelRequest
 * reaches every shard, and a merge leaves the pooled connections usable.
 */
import t from 'tap';
import type pg from 'pg';
import { errorOf, pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { withShards } from '../helpers/shards.js';
import { sendCancelRequest } from '../helpers/raw-client.js';

const raw = { getTypeParser: () => (v: string) => v };

t.test('scatter guards', async (t) => {
  const shards = await withShards(t, 3);
  await Promise.all(
    shards.clusters.map((c, i) =>
      c.query(
        `CREATE TABLE t (id bigint PRIMARY KEY, name text, d date, f float8, v ${i === 2 ? 'bigint' : 'int'});
         INSERT INTO t SELECT ${i} * 100 + g, 'n' || g, date '2024-01-01' + g, g / 3.0, g FROM generate_series(1, 20) g;
         CREATE TABLE u (id bigint PRIMARY KEY, s text COLLATE "en-x-icu");
         INSERT INTO u VALUES (${i} * 10 + 1, 'b'), (${i} * 10 + 2, 'B'), (${i} * 10 + 3, 'a');`,
        'app',
      ),
    ),
  );
  const proxy = await startProxy(t, shards.clusters, { tables: { t: { shard_key: 'id', key_type: 'bigint' }, u: { shard_key: 'id', key_type: 'bigint' } } });
  const c = await pgClient(proxy.port, { t });
  const q = (sql: string): Promise<pg.QueryResult> => c.query({ text: sql, rowMode: 'array', types: raw } as pg.QueryConfig);

  await t.test('text under a non-C column collation is not merged by bytes', async (t) => {
    const e = await errorOf(() => q('SELECT s FROM u ORDER BY s'));
    t.equal(e?.code, '0A000');
    t.match(e?.message ?? '', /collation/);
    t.same((await q('SELECT s FROM u ORDER BY s COLLATE "C" LIMIT 4')).rows, [['B'], ['B'], ['B'], ['a']], 'COLLATE "C" is exact');
  });

  await t.test('dates need DateStyle ISO to be ordered; answered again once it is', async (t) => {
    await c.query("SET DateStyle = 'SQL, DMY'");
    const e = await errorOf(() => q('SELECT d FROM t ORDER BY d LIMIT 3'));
    t.equal(e?.code, '0A000');
    t.match(e?.message ?? '', /DateStyle/);
    await c.query('RESET DateStyle');
    t.same((await q('SELECT d FROM t ORDER BY d LIMIT 3')).rows, [['2024-01-02'], ['2024-01-02'], ['2024-01-02']]);
  });

  await t.test('a float sum is refused (its result depends on the order of addition)', async (t) => {
    const e = await errorOf(() => q('SELECT sum(f) FROM t'));
    t.equal(e?.code, '0A000');
    t.match(e?.message ?? '', /double precision/);
    t.same((await q('SELECT sum(f::numeric)::numeric(10,4) FROM t')).rows.length, 1, 'the numeric sum is merged');
  });

  await t.test('shards that disagree on a column type: a clear error', async (t) => {
    const e = await errorOf(() => q('SELECT v FROM t ORDER BY v'));
    t.equal(e?.code, 'XX000');
    t.match(e?.message ?? '', /different columns/);
  });

  await t.test('a merged statement must be sent alone', async (t) => {
    const e = await errorOf(() => c.query('SELECT id FROM t ORDER BY id LIMIT 1; SELECT 1'));
    t.equal(e?.code, '0A000');
  });

  await t.test('a CancelRequest during a merge cancels every shard', async (t) => {
    const started = Date.now();
    const pending = errorOf(() => c.query('SELECT id, pg_sleep(0.5) FROM t ORDER BY id'));
    await sleep(300);
    // A CancelRequest with the key pgshard gave this client, on a new connection (as the protocol has it).
    const pgc = c as unknown as { processID: number; secretKey: number };
    await sendCancelRequest(proxy.port, pgc.processID, pgc.secretKey);
    const e = await pending;
    t.equal(e?.code, '57014', 'canceled');
    t.ok(Date.now() - started < 8000, 'before the shards finished sleeping');
    t.same((await q('SELECT count(*) FROM t')).rows, [['60']], 'connections usable afterwards');
  });
});
