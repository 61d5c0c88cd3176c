// Cross-shard reads through the extended protocol (bind parameters), compared with one Postgres that
// holds the same rows.
import t, { type Test } from 'tap';
import { directClient, errorOf, pgClient } from '../helpers/proxy.js';
import { withSharded } from '../helpers/three-shards.js';
import { APP, withShards } from '../helpers/shards.js';

const s = await withSharded(t);
const oracle = (await withShards(t, 1)).clusters[0]!;
await oracle.query('CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text, country text)', 'app');

const c = await pgClient(s.proxy.port, { t });
const o = await directClient(oracle, { t });
for (let id = 1; id <= 90; id++) {
  const row = [id, `user ${id % 7}`, `u${id}@example.com`, ['de', 'fr', 'jp'][id % 3]];
  await c.query('insert into users (id, name, email, country) values ($1, $2, $3, $4)', row);
  await o.query('insert into users (id, name, email, country) values ($1, $2, $3, $4)', row);
}

const sameAs = async (t: Test, text: string, values: unknown[], ordered: boolean) => {
  const want = await o.query(text, values);
  const got = await c.query(text, values);
  const norm = (rows: unknown[]) => (ordered ? rows : rows.map((r) => JSON.stringify(r)).sort());
  t.same(got.fields.map((f) => [f.name, f.dataTypeID]), want.fields.map((f) => [f.name, f.dataTypeID]), `${text}: same columns and types`);
  t.same(norm(got.rows), norm(want.rows), `${text}: same rows`);
};

t.test('concatenated, merged and ordered reads with bind parameters', async (t) => {
  await sameAs(t, 'select id, name from users where id = any($1)', [[1, 2, 3, 4, 5, 6, 7, 8]], false);
  await sameAs(t, 'select id from users where country = $1', ['de'], false);
  await sameAs(t, 'select count(*), sum(id), min(name), max(id) from users where country = $1', ['fr'], true);
  await sameAs(t, 'select country, count(*) from users where id > $1 group by country order by country', [10], true);
  await sameAs(t, 'select id, name from users where id > $1 order by name, id desc limit 7', [3], true);
  await sameAs(t, 'select distinct name from users where id < $1 order by name', [50], true);
  const named = { name: 'xs_named', text: 'select id from users where country = $1 order by id limit 3', values: ['jp'] };
  await sameAs(t, named.text, named.values, true);
  t.same((await c.query(named)).rows, (await o.query(named.text, named.values)).rows, 'a named statement, twice');
  t.same((await c.query(named)).rows, (await o.query(named.text, named.values)).rows);
});

t.test('LIMIT and OFFSET as bind parameters (node-pg: text parameters)', async (t) => {
  await sameAs(t, 'select id, name from users order by name, id limit $1 offset $2', [5, 12], true);
  await sameAs(t, 'select id, name from users order by id desc limit $1', [4], true);
  await sameAs(t, 'select id from users order by id offset $1', [85], true);
  await sameAs(t, 'select id from users where country = $1 order by id limit $2 offset $3', ['jp', 3, 2], true);
  await sameAs(t, 'select id from users order by id limit 4 offset $1', [80], true);
  await sameAs(t, 'select id from users order by id limit $1 offset 7', [3], true);
  await sameAs(t, 'select id from users order by id limit $1 offset $2', [null, 88], true);
  await sameAs(t, 'select id from users order by id limit $1 offset $2', [2, null], true);
  await sameAs(t, 'select id from users order by id limit $1', [0], true);
  await sameAs(t, 'select country, count(*) from users group by country order by country limit $1 offset $2', [1, 1], true);
  await sameAs(t, 'select distinct name from users order by name limit $1 offset $2', [2, 3], true);
  await sameAs(t, 'select id from users order by id fetch first $1 rows only', [3], true);
  await sameAs(t, 'select name, id from users where id < 30 order by name fetch first $1 rows with ties', [2], false);
  for (const [values, code] of [
    [[-1, 0], '2201W'],
    [[1, -1], '2201X'],
    [[-1, -1], '2201X'],
    [['x', 1], '22P02'],
  ] as const) {
    const want = await errorOf(() => o.query('select id from users order by id limit $1 offset $2', [...values]));
    const got = await errorOf(() => c.query('select id from users order by id limit $1 offset $2', [...values]));
    t.equal(want?.code, code, `Postgres answers ${JSON.stringify(values)} with ${code}`);
    t.same([got?.code, got?.message], [want?.code, want?.message], `pgshard answers ${JSON.stringify(values)} the same: ${got?.message}`);
  }
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
});

t.test('LIMIT and OFFSET as bind parameters (postgres.js: described, typed int8 parameters)', async (t) => {
  const { default: postgres } = await import('postgres');
  const pj = postgres(s.proxy.url, { max: 1, onnotice: () => undefined });
  const oj = postgres(`postgres://${APP.user}:${APP.password}@127.0.0.1:${oracle.port}/${APP.database}`, { max: 1, onnotice: () => undefined });
  t.teardown(async () => {
    await pj.end({ timeout: 1 });
    await oj.end({ timeout: 1 });
  });
  for (const [limit, offset] of [[5, 0], [3, 40], [0, 0], [100, 85]] as const) {
    const got = await pj`select id, name from users order by name desc, id limit ${limit} offset ${offset}`;
    const want = await oj`select id, name from users order by name desc, id limit ${limit} offset ${offset}`;
    t.same([...got], [...want], `limit ${limit} offset ${offset}`);
  }
  const got = await pj`select country, count(*)::int as n from users group by country order by n desc, country limit ${2}`;
  t.same([...got], [...(await oj`select country, count(*)::int as n from users group by country order by n desc, country limit ${2}`)], 'grouped, limited by a parameter');
});

t.test('binary results are concatenated; merges need text results', async (t) => {
  const r = await c.query({ text: 'select id from users where country = $1', values: ['de'], binary: true } as never);
  t.equal((r as { rowCount: number }).rowCount, 30, 'binary-format concatenation');
  const e = await errorOf(() => c.query({ text: 'select count(*) from users where country = $1', values: ['de'], binary: true } as never));
  t.equal(e?.code, '0A000', `a merge with binary results is refused: ${e?.message}`);
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
});
