// postgres.js through pgshard: it pipelines and uses named prepared statements by default, and its
// cursors use Execute with a row limit and Flush.
import t from 'tap';
import postgres from 'postgres';
import { withShards, APP } from '../helpers/shards.js';
import { startProxy } from '../helpers/proxy.js';

const shards = await withShards(t, 1);
const shard = shards.clusters[0]!;
const proxy = await startProxy(t, shards.clusters, { pool: { size: 3 } });

function connect(port: number, opts: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  const sql = postgres({
    host: '127.0.0.1',
    port,
    user: APP.user,
    password: APP.password,
    database: APP.database,
    onnotice: () => undefined,
    connect_timeout: 10,
    ...opts,
  });
  t.teardown(() => sql.end({ timeout: 1 }));
  return sql;
}

const sql = connect(proxy.port, { max: 1 });
const direct = connect(shard.port, { max: 1 });

t.test('200 concurrent queries on one connection, pipelined', async (t) => {
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => sql`select ${i}::int as i`));
  t.same(
    results.map((r) => r[0]!.i),
    Array.from({ length: 200 }, (_, i) => i),
    'every answer correct and in order',
  );
  // Several different statements interleaved, each prepared once and reused.
  const mixed = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      i % 3 === 0 ? sql`select ${i}::int + 1 as v` : i % 3 === 1 ? sql`select ${String(i)}::text || 'x' as v` : sql`select ${i}::bigint * 2 as v`,
    ),
  );
  t.same(
    mixed.map((r) => String(r[0]!.v)),
    Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? String(i + 1) : i % 3 === 1 ? `${i}x` : String(i * 2))),
  );
});

t.test('sql.begin transactions', async (t) => {
  await sql`create table if not exists pj (id int primary key, v text)`;
  const rows = await sql.begin(async (tx) => {
    await tx`insert into pj values (1, 'one')`;
    await tx`insert into pj values (2, 'two')`;
    return tx`select id, v from pj order by id`;
  });
  t.same([...rows], [{ id: 1, v: 'one' }, { id: 2, v: 'two' }]);
  const failed = await sql
    .begin(async (tx) => {
      await tx`insert into pj values (3, 'three')`;
      await tx`insert into pj values (1, 'duplicate')`;
    })
    .then(
      () => null,
      (e: postgres.PostgresError) => e.code,
    );
  t.equal(failed, '23505', 'the failing transaction rejects');
  t.same([...(await sql`select count(*)::int as n from pj`)], [{ n: 2 }], 'and was rolled back');
  // Savepoints.
  await sql.begin(async (tx) => {
    await tx`insert into pj values (10, 'kept')`;
    await tx.savepoint(async (sp) => {
      await sp`insert into pj values (11, 'undone')`;
      throw new Error('undo');
    }).catch(() => undefined);
  });
  t.same([...(await sql`select id from pj where id >= 10 order by id`)], [{ id: 10 }], 'savepoint rolled back, transaction committed');
  const onShard = await shard.query('select count(*)::int as n from pj', 'app');
  t.same(onShard, [{ n: 3 }]);
});

t.test('an error in the middle of a pipeline fails only that query', async (t) => {
  const results = await Promise.allSettled([
    sql`select 1 as v`,
    sql`select 2 as v`,
    sql`select 1/${0}::int as v`,
    sql`select 4 as v`,
    sql`select ${'x'}::int as v`,
    sql`select 6 as v`,
  ]);
  t.same(
    results.map((r) => (r.status === 'fulfilled' ? r.value[0]!.v : (r.reason as postgres.PostgresError).code)),
    [1, 2, '22012', 4, '22P02', 6],
  );
});

t.test('sql.unsafe with several statements', async (t) => {
  const [a, b] = await Promise.all([sql.unsafe('select 1 as a; select 2 as b'), direct.unsafe('select 1 as a; select 2 as b')]);
  t.same(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)), 'as on the shard');
  t.same(JSON.parse(JSON.stringify(a)), [[{ a: 1 }], [{ b: 2 }]]);
});

t.test('a large result streams correctly', async (t) => {
  const rows = await sql`select g, md5(g::text) as h from generate_series(1, 100000) g`;
  t.equal(rows.length, 100000);
  let ok = true;
  for (let i = 0; i < rows.length; i += 997) if (rows[i]!.g !== i + 1) ok = false;
  t.ok(ok, 'rows in order');
  const [check] = await direct`select md5(string_agg(md5(g::text), '' order by g)) as digest from generate_series(1, 100000) g`;
  const { createHash } = await import('node:crypto');
  t.equal(createHash('md5').update(rows.map((r) => r.h as string).join('')).digest('hex'), check!.digest, 'every value as on the shard');
  // forEach streams rows as they arrive.
  let n = 0;
  await sql`select g from generate_series(1, 50000) g`.forEach((r) => {
    if (r.g === n + 1) n++;
  });
  t.equal(n, 50000, 'forEach saw every row in order');
});

t.test('cursors: Execute with a row limit, PortalSuspended', async (t) => {
  const batches: number[] = [];
  let seen = 0;
  for await (const rows of sql`select g from generate_series(1, 1050) g`.cursor(100)) {
    batches.push(rows.length);
    for (const r of rows) if (r.g === seen + 1) seen++;
  }
  t.same(batches, [...Array(10).fill(100), 50], 'batches of 100');
  t.equal(seen, 1050, 'every row in order');
  // Stopping early closes the cursor and the connection stays usable.
  let first: number[] = [];
  for await (const rows of sql`select g from generate_series(1, 1000) g`.cursor(10)) {
    first = rows.map((r) => r.g as number);
    break;
  }
  t.same(first, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.same([...(await sql`select 'after' as v`)], [{ v: 'after' }]);
  // A cursor inside a transaction.
  const inTx = await sql.begin(async (tx) => {
    let count = 0;
    for await (const rows of tx`select g from generate_series(1, 25) g`.cursor(7)) count += rows.length;
    return count;
  });
  t.equal(inTx, 25);
});

t.test('several connections over a smaller pool', async (t) => {
  const many = connect(proxy.port, { max: 8 });
  const results = await Promise.all(Array.from({ length: 400 }, (_, i) => many`select ${i}::int as i, pg_backend_pid() as pid`));
  t.same(
    results.map((r) => r[0]!.i),
    Array.from({ length: 400 }, (_, i) => i),
  );
  const pids = new Set(results.map((r) => r[0]!.pid));
  t.ok(pids.size <= 3, `at most the pool size of backends (${pids.size})`);
});
