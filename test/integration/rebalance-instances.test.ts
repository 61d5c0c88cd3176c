// Online resharding with two pgshard instances serving the load and sharing a Postgres topology store
// (`metadata`): a fourth shard is added, then a shard removed, through one instance's admin API, followed
// through the other's; writers on both instances record every acknowledged write. Afterwards every acknowledged row
// exists exactly once, on the shard the final ring names; no client saw an error; both instances route on
// the same ring. Then an instance stops in the middle of a rebalance it runs: the other takes it over and
// rolls it back.
import t from 'tap';
import pg from 'pg';
import { canonicalFromText } from '../../src/routing/canonical.js';
import { withShards, APP } from '../helpers/shards.js';
import { startProxy, sleep, type Proxy } from '../helpers/proxy.js';
import { initHash } from '../../src/routing/hash.js';
import { checkPlacement, startAdminApi, preload, rebalanceEnded, SCHEMA, startLoad, TABLES, type Api, type Expected } from '../helpers/rebalance-load.js';

await initHash();

t.test('two instances, one metadata database: add a shard, then remove one, under load on both', async (t) => {
  // Four shards; the metadata database lives on the first shard's server (a database of its own).
  const shards = await withShards(t, 4, { databases: [{ name: 'meta', owner: APP.user }] });
  const [c0, c1, c2, c3] = shards.clusters;
  for (const c of [c0!, c1!, c2!]) await c.query(SCHEMA, 'app');
  const metadata = { host: '127.0.0.1', port: c0!.port, database: 'meta', user: APP.user, password: APP.password, heartbeat_ms: 200, lease_ms: 1000, poll_ms: 500 };
  const instance = async (id: string): Promise<{ proxy: Proxy; api: Api }> => {
    const proxy = await startProxy(t, [c0!, c1!, c2!], { tables: TABLES, metadata, transactions: { instance_id: id }, rebalance: { max_pause_ms: 2000, batch_rows: 500 } });
    return { proxy, api: (await startAdminApi(t, proxy.server)).api };
  };
  const a = await instance('a');
  const b = await instance('b');

  const peers = (await a.api('GET', '/instances')).body as { topology: string; instances: { id: string; alive: boolean; self: boolean }[] };
  t.match(peers.topology, /\/meta \(schema pgshard\)$/, 'the topology is in the metadata database');
  t.same(peers.instances.map((i) => [i.id, i.alive, i.self]), [['a', true, true], ['b', true, false]], 'GET /instances lists both, alive');

  const expected = new Map<bigint, Expected>();
  await preload(a.proxy.url, expected);
  // Two thirds of the writers go through b, whose transactions stay open 300 ms between their statements;
  // a cuts over. A cut-over that did not wait for the other instance's transactions on the old ring would
  // misplace or lose their rows (checked: it does, when the wait for other instances is taken out).
  const load = startLoad([a.proxy.url, b.proxy.url, b.proxy.url], 12, expected, [0, 300, 300]);
  const ended = async (api: Api, what: string) => {
    const r = await rebalanceEnded(api, what);
    t.equal(r.state, 'done', `${what}: ${r.error ?? 'done'}`);
    return r;
  };
  const sameRing = (what: string) => {
    t.equal(a.proxy.server.topology.version, b.proxy.server.topology.version, `${what}: same topology version on both`);
    t.same(a.proxy.server.topology.ring.points(), b.proxy.server.topology.ring.points(), `${what}: the same ring on both`);
  };

  try {
    await sleep(1000);
    const add = await a.api('POST', '/shards', { id: 's3', host: '127.0.0.1', port: c3!.port, database: APP.database, user: APP.user, password: APP.password, weight: 1 });
    t.equal(add.status, 202, 'adding s3 started on instance a');
    // The other instance knows of it: it shows it, and refuses to start another.
    const seen = Date.now();
    while ((await b.api('GET', '/rebalance')).body.state === 'none' && Date.now() - seen < 5000) await sleep(20);
    const onB = (await b.api('GET', '/rebalance')).body;
    t.equal(onB.instance, 'a', 'instance b sees the rebalance that a runs');
    const again = await b.api('POST', '/shards', { id: 's4', host: '127.0.0.1', port: c3!.port, database: APP.database, user: APP.user, password: APP.password });
    t.equal(again.status, 409, 'instance b refuses a second rebalance');
    t.match(again.body.error, /a rebalance is already running/);
    const added = await ended(b.api, 'add s3');
    t.comment(`add s3: read ${added.rows_scanned} rows, copied ${added.rows_copied}, cut-over pause ${added.pause_ms} ms after ${added.cutover_attempts} attempt(s), cleaned ${added.rows_cleaned}`);
    await sleep(600); // a poll interval: the instances have read the final state
    t.same(b.proxy.server.topology.shards.map((s) => s.id), ['s0', 's1', 's2', 's3'], 'instance b routes on the new ring');
    sameRing('after add');
    await sleep(500);

    const remove = await a.api('DELETE', '/shards/s1');
    t.equal(remove.status, 202, 'removing s1 started on instance a');
    const removed = await ended(b.api, 'remove s1');
    t.equal(removed.instance, 'a');
    t.comment(`remove s1: copied ${removed.rows_copied} rows, cut-over pause ${removed.pause_ms} ms after ${removed.cutover_attempts} attempt(s), cleaned ${removed.rows_cleaned}`);
    await sleep(600);
    t.same(a.proxy.server.topology.shards.map((s) => s.id), ['s0', 's2', 's3'], 'instance a routes on the new ring');
    sameRing('after remove');
    await sleep(500);
  } finally {
    await load.stop();
  }

  t.same(load.errors, [], 'no client saw an error');
  t.ok(load.stats.perUrl.every((n) => n > 100), `both instances served the load (statements through a, b, b: ${load.stats.perUrl.join(', ')})`);
  t.comment(`${load.stats.statements} statements through the rebalances; longest: ${load.stats.longest.toFixed(0)} ms`);
  t.ok(load.stats.longest < 2000 + 1500 + 300, `the longest statement (${load.stats.longest.toFixed(0)} ms) is within rebalance.max_pause_ms plus slack`);
  const orders = await checkPlacement(t, { s0: c0!, s1: c1!, s2: c2!, s3: c3! }, b.proxy.server.topology.ring, expected);
  t.equal(orders.get('s1'), 0, 'the removed shard keeps no sharded rows');
  for (const c of [c0!, c1!, c2!, c3!]) {
    t.same(await c.query('SELECT slot_name FROM pg_replication_slots', 'app'), [], `no slot left on port ${c.port}`);
    t.same(await c.query('SELECT pubname FROM pg_publication', 'app'), [], `no publication left on port ${c.port}`);
  }
  t.same(await c0!.query('SELECT count(*)::int AS n FROM pgshard.decisions', 'meta'), [{ n: 0 }], 'no two-phase commit decision left pending');

  // A transaction on two shards through b: its commit decision goes through the metadata database.
  const ring = b.proxy.server.topology.ring;
  const ids = [9_000_001n, 9_000_002n, 9_000_003n, 9_000_004n, 9_000_005n];
  const owners = ids.map((id) => ring.shardFor(canonicalFromText('bigint', String(id))));
  const two = [0, owners.findIndex((o) => o !== owners[0])];
  t.ok(two[1]! > 0, 'two keys on different shards');
  const before = b.proxy.server.coordinator.stats.twoPhase;
  const tx = new pg.Client({ connectionString: b.proxy.url });
  await tx.connect();
  await tx.query('BEGIN');
  for (const i of two) await tx.query('INSERT INTO users (id, name) VALUES ($1, $2)', [ids[i], 'two-phase']);
  await tx.query('COMMIT');
  await tx.end();
  t.equal(b.proxy.server.coordinator.stats.twoPhase, before + 1, 'committed with two-phase commit');
  for (const i of two) expected.set(ids[i]!, { name: 'two-phase', orders: 0 });
  let left = -1;
  for (let i = 0; i < 100 && left !== 0; i++, await sleep(20)) left = (await c0!.query<{ n: number }>('SELECT count(*)::int AS n FROM pgshard.decisions', 'meta'))[0]!.n;
  t.equal(left, 0, 'its decision is gone once both shards committed');

  // The instance running a rebalance stops half-way: the other takes it over once a has left, and rolls it back.
  const add1 = await a.api('POST', '/shards', { id: 's1', host: '127.0.0.1', port: c1!.port, database: APP.database, user: APP.user, password: APP.password, weight: 1 });
  t.equal(add1.status, 202, 'adding s1 back started on instance a');
  await a.proxy.server.stop(0);
  const taken = await rebalanceEnded(b.api, 'take-over', 60_000);
  t.equal(taken.state, 'failed', 'rolled back by instance b');
  t.match(taken.error, /instance a \(gone\)/, `the reason names the instance that left: ${taken.error}`);
  t.equal(taken.instance, 'b');
  t.same(b.proxy.server.topology.shards.map((s) => s.id), ['s0', 's2', 's3'], 'the ring stays');
  t.same(await c1!.query('SELECT count(*)::int AS n FROM users', 'app'), [{ n: 0 }], 'nothing copied stays on s1');
  for (const c of [c0!, c2!, c3!]) t.same(await c.query('SELECT slot_name FROM pg_replication_slots', 'app'), [], `no slot left on port ${c.port}`);
  const client = new pg.Client({ connectionString: b.proxy.url });
  await client.connect();
  const n = await client.query('SELECT count(*)::int AS n FROM users');
  t.equal(n.rows[0].n, expected.size, 'instance b still serves every row');
  await client.end();
});
