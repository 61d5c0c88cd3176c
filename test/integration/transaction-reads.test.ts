// Cross-shard reads inside a transaction block: they run on the transaction's participants (each shard
// joins when the read first reaches it), so the transaction sees its own writes; errors fail the
// transaction as in Postgres; a transaction that only read commits without two-phase commit.
import t from 'tap';
import { errorOf, pgClient } from '../helpers/proxy.js';
import { keysOnTwoShards, withSharded } from '../helpers/three-shards.js';

const s = await withSharded(t);
const c0 = await pgClient(s.proxy.port, { t });
for (let id = 1; id <= 30; id++) await c0.query('insert into users (id, name, country) values ($1, $2, $3)', [id, `n${id % 4}`, ['de', 'fr', 'jp'][id % 3]]);
const count = async (c: { query: (q: string) => Promise<{ rows: { n: string }[] }> }) => Number((await c.query('select count(*) as n from users')).rows[0]!.n);

t.test('a transaction sees its own writes on several shards in a cross-shard read; ROLLBACK undoes them', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b, shardA, shardB } = keysOnTwoShards(s, 'users', 50_000);
  t.not(shardA, shardB);
  await c.query('begin');
  await c.query('insert into users (id, name) values ($1, $2)', [a, 'zz-a']);
  await c.query(`insert into users (id, name) values (${b}, 'zz-b')`);
  t.equal(await count(c), 32, 'count(*) across shards (simple protocol) sees both inserts');
  t.same((await c.query('select id, name from users where name like $1 order by name desc', ['zz-%'])).rows, [{ id: String(b), name: 'zz-b' }, { id: String(a), name: 'zz-a' }], 'ORDER BY across shards (extended protocol) sees them');
  t.same((await c.query('select name from users order by id desc limit 2')).rows.map((r) => r.name), [a > b ? 'zz-a' : 'zz-b', a > b ? 'zz-b' : 'zz-a'], 'LIMIT across shards (no early cancel in a transaction)');
  t.equal(await count(c0), 30, 'another session does not see them');
  await c.query(`insert into users (id, name) values (${a + 3_000_000}, 'after')`);
  t.equal(await count(c), 33, 'the transaction goes on after the reads');
  t.equal((await c.query('rollback')).command, 'ROLLBACK');
  t.equal(await count(c), 30, 'rolled back everywhere');
  t.equal(await s.total('select count(*) from pg_prepared_xacts'), 0);
});

t.test('COMMIT after reads and writes on several shards keeps the writes', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b } = keysOnTwoShards(s, 'users', 60_000);
  await c.query('begin');
  t.equal(await count(c), 30, 'a read first: every shard joins');
  await c.query(`insert into users (id, name) values (${a}, 'c-a'), (${b}, 'c-b')`);
  t.same((await c.query("select count(*)::int as n from users where name like 'c-%'")).rows, [{ n: 2 }]);
  t.equal((await c.query('commit')).command, 'COMMIT');
  t.equal(await count(c0), 32, 'committed');
  await c0.query(`delete from users where id in (${a}, ${b})`);
});

t.test('a read-only transaction over several shards commits without two-phase commit', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const stats = s.proxy.server.coordinator.stats;
  const before = { ...stats };
  await c.query('begin');
  t.equal(await count(c), 30);
  t.same((await c.query('select country, count(*)::int as n from users group by country order by country')).rows, [
    { country: 'de', n: 10 },
    { country: 'fr', n: 10 },
    { country: 'jp', n: 10 },
  ]);
  t.equal((await c.query('commit')).command, 'COMMIT');
  t.equal(stats.twoPhase, before.twoPhase, 'no two-phase commit');
  t.equal(await s.total('select count(*) from pg_prepared_xacts'), 0);
  const { rows } = await c.query('select 1 as one');
  t.same(rows, [{ one: 1 }], 'the session goes on');
});

t.test('errors in a cross-shard read fail the transaction as in Postgres', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await c.query('begin');
  await c.query('insert into users (id, name) values (1000001, $1)', ['x']);
  const e = await errorOf(() => c.query('select id / (id - id) from users order by 1'));
  t.equal(e?.code, '22012', `a shard's error reaches the client: ${e?.message}`);
  const next = await errorOf(() => c.query('select count(*) from users'));
  t.equal(next?.code, '25P02', 'the next cross-shard read: 25P02');
  const one = await errorOf(() => c.query('select * from users where id = 1'));
  t.equal(one?.code, '25P02', 'a single-shard statement: 25P02');
  t.equal((await c.query('commit')).command, 'ROLLBACK', 'COMMIT answers ROLLBACK');
  t.equal(await count(c), 30, 'nothing of it stayed');

  await c.query('begin');
  const r = await errorOf(() => c.query('select sum(f) over () from (select id::float8 as f from users) x'));
  t.equal(r?.code, '0A000', `a refused merge inside a transaction: ${r?.message}`);
  t.equal((await errorOf(() => c.query('select count(*) from users')))?.code, '25P02', 'then 25P02, as after any error');
  t.equal((await c.query('rollback')).command, 'ROLLBACK');
  t.equal(await count(c), 30, 'the session is usable again');
});

t.test('savepoints: a read after ROLLBACK TO sees the state of the savepoint', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b } = keysOnTwoShards(s, 'users', 70_000);
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a}, 'sp')`);
  await c.query('savepoint one');
  await c.query(`insert into users (id, name) values (${b}, 'sp')`);
  t.equal(await count(c), 32);
  await c.query('rollback to savepoint one');
  t.equal(await count(c), 31, 'the second insert is gone on its shard');
  t.equal((await c.query('rollback')).command, 'ROLLBACK');
  t.equal(await count(c), 30);
});
