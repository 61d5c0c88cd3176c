// Keys pgshard generates: an INSERT that omits the key gets a unique id, visible through RETURNING, and the
// row lands on the shard that id routes to.
import t from 'tap';
import { pgClient } from '../helpers/proxy.js';
import { SHARD_IDS, TABLES, withSharded } from '../helpers/three-shards.js';
import { IdGenerator } from '../../src/routing/ids.js';

const s = await withSharded(t, { schema: 'CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL); CREATE TABLE notes53 (id bigint PRIMARY KEY, body text NOT NULL);' });
const p = await s.startAnotherProxy({
  tables: { ...TABLES, notes: { shard_key: 'id', key_type: 'bigint', generated: 'int64' }, notes53: { shard_key: 'id', key_type: 'bigint', generated: 'int53' } },
  ids: { node_id: 7 },
});

t.test('ids are generated, returned, routed, unique and increasing', async (t) => {
  const c = await pgClient(p.port, { t });
  const ids: bigint[] = [];
  for (let i = 0; i < 30; i++) {
    const r = await c.query(`insert into notes (body) values ('n${i}') returning id`);
    ids.push(BigInt(r.rows[0].id));
  }
  const multi = await c.query("insert into notes (body) values ('a'), ('b'), ('c'), ('d'), ('e'), ('f') returning id, body");
  t.equal(multi.rowCount, 6, 'a multi-row INSERT gets one id per row (split over shards as needed)');
  for (const r of multi.rows) ids.push(BigInt(r.id));
  const ext = await c.query('insert into notes (body) values ($1) returning id', ['bound']);
  ids.push(BigInt(ext.rows[0].id));
  t.equal(new Set(ids.map(String)).size, ids.length, 'all unique');
  t.ok(ids.slice(0, 30).every((v, i, a) => i === 0 || v > a[i - 1]!), 'increasing');
  for (const id of ids) t.same(await s.holders('select 1 from notes where id = $1', [String(id)]), [s.owner('users', id)], `id ${id} on its owner`);
  t.ok(new Set(await Promise.all(ids.map(async (id) => s.owner('users', id)))).size > 1, 'spread over shards');
  t.equal(await s.total('select count(*) from notes'), ids.length);
  t.ok(ids.every((id) => ((id >> 12n) & 1023n) === 7n), 'the node id is in every id');
});

t.test('int53 ids stay below 2^53', async (t) => {
  const c = await pgClient(p.port, { t });
  for (let i = 0; i < 10; i++) {
    const r = await c.query('insert into notes53 (body) values ($1) returning id', [`x${i}`]);
    const id = BigInt(r.rows[0].id);
    t.ok(id < 2n ** 53n && id > 0n, `${id} < 2^53`);
  }
  t.equal(await s.total('select count(*) from notes53'), 10);
  t.same((await Promise.all(SHARD_IDS.map((x) => s.direct(x, 'select 1 from pg_prepared_xacts')))).flat(), [], 'no prepared transaction left');
});

t.test('the generator never repeats, even when the clock stands still or goes back', async (t) => {
  let now = 1_800_000_000_000;
  const g = new IdGenerator(3, 'int64', () => now);
  const seen = new Set<string>();
  let last = -1n;
  let decreasing = 0;
  for (let i = 0; i < 20_000; i++) {
    if (i === 10_000) now -= 5_000; // clock goes back
    const id = g.next();
    if (id <= last) decreasing++;
    last = id;
    seen.add(String(id));
  }
  t.equal(decreasing, 0, 'every id is greater than the one before');
  t.equal(seen.size, 20_000, 'no id repeats');
  t.throws(() => new IdGenerator(64, 'int53'), 'node id out of range for int53');
});
