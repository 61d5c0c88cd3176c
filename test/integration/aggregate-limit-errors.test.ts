/**
 * A cross-shard GROUP BY with ORDER BY and LIMIT: which groups' select lists Postgres computes decides
 * whether an error in a dropped group (a cast overflow) reaches the client. Sorted by an aggregate, the
 * groups are sorted after aggregating and every group's select list is computed first, except columns
 * costly enough to be put off past the sort. Compared here with one plain Postgres holding all the rows.
 */
import t from 'tap';
import { withShards } from '../helpers/shards.js';
import { directClient, errorOf, pgClient, startProxy } from '../helpers/proxy.js';

const shards = await withShards(t, 3);

t.test('an overflow in a group the LIMIT drops fails as in Postgres', async (t) => {
  const [s0, s1, oracleServer] = shards.clusters;
  const ddl = 'CREATE TABLE items (id bigint PRIMARY KEY, grp int NOT NULL, ratio numeric NOT NULL)';
  // group 1: three ordinary rows; group 2: one row whose average overflows numeric(20,3)
  const rows = [
    [1, 1, '1.5'],
    [2, 1, '2.5'],
    [3, 1, '3.5'],
    [4, 2, '123456789012345678901'],
  ];
  const oracle = await directClient(oracleServer!, { t });
  await oracle.query(ddl);
  for (const s of [s0!, s1!]) await (await directClient(s, { t })).query(ddl);
  const proxy = await startProxy(t, [s0!, s1!], { tables: { items: { shard_key: 'id', key_type: 'bigint' } } });
  const c = await pgClient(proxy.port, { t });
  for (const [id, grp, ratio] of rows) {
    const sql = `INSERT INTO items VALUES (${id}, ${grp}, ${ratio})`;
    await oracle.query(sql);
    await c.query(sql);
  }
  const shardsOf = new Set(rows.map(([id]) => proxy.server.router.shardForKey('items', String(id))));
  t.equal(shardsOf.size, 2, 'the rows are on both shards');

  const cheap = 'avg(ratio)::numeric(20,3)';
  const costly = `(${cheap}${' + 0'.repeat(11)})`; // twelve operators: past Postgres's "10 × cpu_operator_cost"
  for (const [what, sql] of [
    ['sorted by count, a cheap cast', `SELECT grp, ${cheap} AS a, count(*) FROM items GROUP BY grp ORDER BY 3 DESC LIMIT 1`],
    ['sorted by count, OFFSET 0', `SELECT grp, ${cheap} AS a, count(*) FROM items GROUP BY grp ORDER BY count(*) DESC LIMIT 1 OFFSET 0`],
    ['sorted by count, a costly expression', `SELECT grp, ${costly} AS a, count(*) FROM items GROUP BY grp ORDER BY 3 DESC LIMIT 1`],
    ['sorted by count, no LIMIT', `SELECT grp, ${cheap} AS a, count(*) FROM items GROUP BY grp ORDER BY 3 DESC`],
  ] as const) {
    const want = await oracle.query(sql).then((r) => ({ rows: r.rows }), (e: { code: string }) => ({ code: e.code }));
    const err = await errorOf(() => c.query(sql));
    const got = err ? { code: err.code } : { rows: (await c.query(sql)).rows };
    t.same(got, want, `${what}: ${JSON.stringify(want).slice(0, 80)}`);
  }
});
