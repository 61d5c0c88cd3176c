// Text ordering across shards whose databases use a non-C collation (ICU "en-US"), against one plain
// Postgres with the same collation: ORDER BY, min/max and sorted aggregates on text are refused (the merge
// compares bytes, which is not the collation's order) naming the collation; with an explicit
// COLLATE "C" they are exact; equality-only uses of text (GROUP BY, DISTINCT, count(DISTINCT)) are exact
// under a deterministic collation; ordering on other types is unaffected.
import t from 'tap';
import type pg from 'pg';
import { initHash } from '../../src/routing/hash.js';
import { routeKey } from '../../src/routing/route-cli.js';
import { errorOf, pgClient, startProxy } from '../helpers/proxy.js';
import { APP, withShards } from '../helpers/shards.js';

await initHash();
const shards = await withShards(t, 4);
const clusters = shards.clusters;
const icu = (await clusters[0]!.query<{ n: string }>("select count(*)::text as n from pg_collation where collprovider = 'i'"))[0]!.n;
// The shards' Postgres (embedded 18, or Debian's as fallback) is built with ICU: without it this test cannot
// say anything, so that is a failure, not a skip.
if (icu === '0') throw new Error('the shards\' Postgres has no ICU collations: build or install one with ICU to run this test');
{
  const WORDS = ['apple', 'Apple', 'banana', 'Banana', 'éclair', 'eclair', 'Zebra', 'zebra', 'ångström', 'Ärger', 'cote', 'côte', 'coté', 'côté', '😀 smile', 'a b', 'ab'];
  for (const c of clusters) {
    await c.query(`CREATE DATABASE icu OWNER ${APP.user} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`);
    await c.query('CREATE TABLE words (id bigint PRIMARY KEY, w text, n int)', 'icu');
    await c.query(`GRANT ALL ON words TO ${APP.user}`, 'icu');
  }
  const proxy = await startProxy(t, [], {
    shards: clusters.slice(0, 3).map((c, i) => ({ id: `s${i}`, host: '127.0.0.1', port: c.port, database: 'icu', user: APP.user, password: APP.password })),
    tables: { words: { shard_key: 'id', key_type: 'bigint' } },
  });
  const oracle = await pgClient(clusters[3]!.port, { t, database: 'icu' });
  const rows = Array.from({ length: 60 }, (_, i) => [i + 1, WORDS[i % WORDS.length]!, i % 5] as const);
  for (const [id, w, n] of rows) {
    await oracle.query('insert into words values ($1, $2, $3)', [id, w, n]);
    const s = routeKey(proxy.config, 'words', String(id)).shard;
    await clusters[Number(s.slice(1))]!.query('insert into words values ($1, $2, $3)', 'icu', [id, w, n]);
  }
  const c = await pgClient(proxy.port, { t, database: 'icu' });
  const raw = { getTypeParser: () => (v: string) => v };
  const ask = (client: pg.Client, sql: string) => client.query({ text: sql, rowMode: 'array', types: raw } as pg.QueryConfig);
  const same = async (t: Tap.Test, sql: string, ordered = true) => {
    const want = await ask(oracle, sql);
    const got = await ask(c, sql);
    const norm = (r: unknown[][]) => (ordered ? r : r.map((x) => JSON.stringify(x)).sort());
    t.same(norm(got.rows), norm(want.rows), `${sql}: as one Postgres`);
  };

  t.test('the oracle really sorts differently from bytes', async (t) => {
    const icuOrder = (await ask(oracle, 'select w from words order by w, id')).rows.map((r) => r[0]);
    const byteOrder = (await ask(oracle, 'select w from words order by w collate "C", id')).rows.map((r) => r[0]);
    t.not(JSON.stringify(icuOrder), JSON.stringify(byteOrder), 'en-US order is not byte order');
  });

  t.test('ordering text under the ICU collation is refused, naming it', async (t) => {
    for (const sql of ['select w from words order by w', 'select min(w), max(w) from words', "select string_agg(w, ',' order by w) from words", 'select distinct w from words order by 1', 'select n, max(w) from words group by n']) {
      const e = await errorOf(() => c.query(sql));
      t.equal(e?.code, '0A000', `${sql}: 0A000`);
      t.match(e?.message ?? '', /ICU locale "en-US"/, `${sql}: names the collation: ${e?.message}`);
    }
    t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
  });

  t.test('COLLATE "C" orders by bytes exactly', async (t) => {
    await same(t, 'select w, id from words order by w collate "C", id');
    await same(t, 'select w, id from words order by w collate "C" desc, id limit 7 offset 3');
    await same(t, 'select w collate "C" as w, count(*) from words group by 1 order by 1');
    await same(t, 'select min(w collate "C"), max(w collate "C") from words');
    await same(t, `select n, string_agg(w, '|' order by w collate "C", id) from words group by n order by n`);
  });

  t.test('equality and non-text ordering are exact under a deterministic collation', async (t) => {
    await same(t, 'select w, count(*) from words group by w', false);
    await same(t, 'select distinct w from words', false);
    await same(t, 'select count(distinct w), count(*) from words');
    await same(t, 'select id, w from words order by n desc, id limit 10');
    await same(t, "select n, count(*) filter (where w = 'côte') from words group by n order by n");
  });
}
