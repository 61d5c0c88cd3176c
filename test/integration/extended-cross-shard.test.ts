// Cross-shard reads through the extended protocol (bind parameters), compared with one Postgres that
// holds the same rows.
import t, { type Test } from 'tap';
import { directClient, errorOf, pgClient } from '../helpers/proxy.js';
import { withSharded } from '../helpers/three-shards.js';
import { withShards } from '../helpers/shards.js';

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

t.test('binary results are concatenated; merges need text results', async (t) => {
  const r = await c.query({ text: 'select id from users where country = $1', values: ['de'], binary: true } as never);
  t.equal((r as { rowCount: number }).rowCount, 30, 'binary-format concatenation');
  const e = await errorOf(() => c.query({ text: 'select count(*) from users where country = $1', values: ['de'], binary: true } as never));
  t.equal(e?.code, '0A000', `a merge with binary results is refused: ${e?.message}`);
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
});
