// EXPLAIN of a routed statement names its shard.
import t from 'tap';
import { pgClient } from '../helpers/proxy.js';
import { withSharded } from '../helpers/three-shards.js';

const s = await withSharded(t);

t.test('EXPLAIN starts with the shard the statement runs on', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  for (const key of [1, 2, 3, 4, 5]) {
    const owner = s.owner('users', key);
    const r = await c.query(`explain select * from users where id = ${key}`);
    const lines = r.rows.map((row: Record<string, string>) => row['QUERY PLAN']);
    t.equal(lines[0], `pgshard: runs on shard ${owner} (127.0.0.1:${s.port(owner)})`, `key ${key}: ${lines[0]}`);
    t.match(lines[1] ?? '', /Scan/, 'then the shard\'s own plan');
  }
  const json = await c.query('explain (format json) select * from users where id = 1');
  t.equal(json.rows.length, 1, 'JSON format is left as Postgres gives it (one document)');
});
