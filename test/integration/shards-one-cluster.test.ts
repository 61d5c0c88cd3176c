/**
 * Two shards may be two databases of one Postgres server. Names of prepared transactions are unique per
 * server, not per database, so a transaction writing to both must prepare under a different name on each
 * (it failed with 42710 "transaction identifier … is already in use" when both used the same).
 */
import t from 'tap';
import { APP, withShards } from '../helpers/shards.js';
import { directClient, pgClient, startProxy } from '../helpers/proxy.js';

const shards = await withShards(t, 1, { databases: [{ name: 'app2', owner: APP.user }] });
const server = shards.clusters[0]!;

t.test('a transaction writing to two shards of one server commits on both', async (t) => {
  const dbs = ['app', 'app2'];
  for (const database of dbs) {
    const d = await directClient(server, { t, database });
    await d.query('CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL)');
  }
  const proxy = await startProxy(t, shards.clusters, {
    shards: dbs.map((database, i) => ({ id: `s${i}`, host: '127.0.0.1', port: server.port, database, user: APP.user, password: APP.password })),
    tables: { users: { shard_key: 'id', key_type: 'bigint' } },
  });
  const keysOn = (shard: string): number[] => {
    const out: number[] = [];
    for (let k = 1; out.length < 3; k++) if (proxy.server.router.shardForKey('users', String(k)) === shard) out.push(k);
    return out;
  };
  const as = keysOn('s0');
  const bs = keysOn('s1');
  const c = await pgClient(proxy.port, { t });
  for (let round = 0; round < 3; round++) {
    await c.query('BEGIN');
    await c.query(`INSERT INTO users (id, name) VALUES (${as[round]}, 'a${round}')`);
    await c.query(`INSERT INTO users (id, name) VALUES (${bs[round]}, 'b${round}')`);
    t.equal((await c.query('COMMIT')).command, 'COMMIT', `round ${round}: COMMIT`);
  }
  t.equal(proxy.server.coordinator.stats.twoPhase, 3, 'each with two-phase commit');
  const direct = await directClient(server, { t });
  t.same((await direct.query('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows, [{ n: 0 }], 'nothing left prepared');
  for (const [i, database] of dbs.entries()) {
    const d = await directClient(server, { t, database });
    const names = (await d.query('SELECT name FROM users ORDER BY name')).rows.map((r) => r.name);
    t.same(names, i === 0 ? ['a0', 'a1', 'a2'] : ['b0', 'b1', 'b2'], `${database} has its rows`);
  }
});
