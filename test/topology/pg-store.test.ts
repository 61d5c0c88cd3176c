// The Postgres topology store against a real Postgres: seeding once, compare-and-set between instances,
// NOTIFY reaching the other instance, heartbeats and cut-over acknowledgements, the decision log.
import t from 'tap';
import { withShards, APP } from '../helpers/shards.js';
import { sleep, testLogger } from '../helpers/proxy.js';
import { initHash } from '../../src/routing/hash.js';
import { validateConfig } from '../../src/config/load.js';
import { Topology } from '../../src/topology/topology.js';
import { PgTopologyStore } from '../../src/topology/pg-store.js';
import { PgDecisionLog } from '../../src/topology/decision-log.js';
import type { Config } from '../../src/config/schema.js';

await initHash();

const shard = (id: string, port: number) => ({ id, host: '127.0.0.1', port, database: 'app', user: 'app', password: 'app', weight: 1 });

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
}

t.test('two instances share one topology through Postgres', async (t) => {
  const pg = await withShards(t, 1, { databases: [{ name: 'meta', owner: APP.user }] });
  const meta = { host: '127.0.0.1', port: pg.ports[0]!, database: 'meta', user: APP.user, password: APP.password, heartbeat_ms: 100, lease_ms: 400, poll_ms: 60_000 };
  const cfg = (shards = [shard('a', 5001), shard('b', 5002)]): Config => validateConfig({ users: [{ name: 'app', password: 'app' }], shards, ring: { vnodes: 16 }, metadata: meta });
  const open = async (instance: string, c = cfg()) => {
    const store = await PgTopologyStore.open(c.metadata!, instance, `host:${instance}`, testLogger());
    const topo = await Topology.open(c, store);
    t.teardown(() => topo.close());
    return { store, topo };
  };

  const a = await open('a');
  // The second instance's configuration lists other seed shards: the store, seeded by the first, wins.
  const b = await open('b', cfg([shard('z', 5009)]));
  t.equal(a.topo.version, 1);
  t.same(b.topo.ring.shardIds, ['a', 'b'], 'seeded once, by the first instance');
  t.match(a.topo.where, /^postgres:\/\/app@127\.0\.0\.1:\d+\/meta \(schema pgshard\)$/);

  // A change on one instance reaches the other through NOTIFY (polling is off: poll_ms is a minute).
  const seen: number[] = [];
  b.topo.onChange((next) => seen.push(next.version));
  await a.topo.setShards([...a.topo.shards, shard('c', 5003)], null);
  await until('b hears of the new ring', () => b.topo.version === 2);
  t.same(b.topo.ring.shardIds, ['a', 'b', 'c']);
  t.same(b.topo.ring.points(), a.topo.ring.points(), 'the same ring on both');
  t.same(seen, [2]);

  // Compare-and-set: b writes from a state a has moved past; its update is asked again with a's state.
  const rec = (id: string) => ({ id, kind: 'add' as const, shard: 'd', phase: 'copying' as const, from: [], to: [], sources: [], rowsCopied: 0, rowsScanned: 0, rowsTotal: 0, rowsCleaned: 0, pauseMs: null, cutoverAttempts: 0, startedAt: 'now', finishedAt: null, error: null });
  const stale = b.topo.state.rev;
  await a.topo.setRebalance(rec('r1'));
  t.equal(await b.store.save({ ...b.topo.state, rev: stale + 1 }, stale), false, 'a write from a revision another instance has moved past is refused');
  const asked: (string | null)[] = [];
  const written = await b.topo.update((cur) => {
    asked.push(cur.rebalance?.id ?? null);
    return cur.rebalance ? null : { ...cur, rebalance: rec('r2') };
  });
  t.equal(written, null, 'b gives up: a rebalance is running');
  t.equal(asked[asked.length - 1], 'r1', 'b was asked again with what a wrote');
  t.equal((await a.store.load())?.rebalance?.id, 'r1', 'r1 stays');

  // Heartbeats and acknowledgements.
  t.same(await a.store.notAcked('r1:1'), ['a', 'b'], 'both live, neither acknowledged');
  await b.store.ack('r1:1');
  t.same(await a.store.notAcked('r1:1'), ['a']);
  await a.store.ack('r1:1');
  t.same(await a.store.notAcked('r1:1'), []);
  t.same(await a.store.notAcked('r1:2'), ['a', 'b'], 'another attempt needs new acknowledgements');
  t.ok(await a.store.alive('b'));
  t.notOk(a.store.fenced());
  const list = await a.store.list();
  t.same(list.map((x) => [x.id, x.address, x.alive]), [['a', 'host:a', true], ['b', 'host:b', true]]);
  // An instance that stops leaves the list; one that dies is taken for gone after 1.5 leases.
  await b.topo.close();
  t.same(await a.store.notAcked('r1:3'), ['a'], 'b left');
  await a.store.conn.query(`INSERT INTO pgshard.instances (id, address, heartbeat_at) VALUES ('ghost', 'x', now() - interval '1 hour')`);
  t.same(await a.store.notAcked('r1:3'), ['a'], 'a silent instance is not waited for');
  t.notOk(await a.store.alive('ghost'));
});

t.test('two-phase commit decisions live in the metadata database', async (t) => {
  const pg = await withShards(t, 1, { databases: [{ name: 'meta', owner: APP.user }] });
  const cfg = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)], metadata: { host: '127.0.0.1', port: pg.ports[0]!, database: 'meta', user: APP.user, password: APP.password } });
  const store = await PgTopologyStore.open(cfg.metadata!, 'i1', 'h', testLogger());
  t.teardown(() => store.close());
  const log = await PgDecisionLog.open(store, 'i1');
  await log.recordCommit('pgshard_i1_x', ['a', 'b']);
  await log.recordCommit('pgshard_i1_y', ['b']);
  t.ok(log.isDecided('pgshard_i1_x'));
  t.same((await store.conn.query('SELECT gid, instance, shards FROM pgshard.decisions ORDER BY gid')).rows, [
    { gid: 'pgshard_i1_x', instance: 'i1', shards: ['a', 'b'] },
    { gid: 'pgshard_i1_y', instance: 'i1', shards: ['b'] },
  ]);
  log.markDone('pgshard_i1_y');
  await until('the finished decision is deleted', async () => (await store.conn.query('SELECT 1 FROM pgshard.decisions')).rowCount === 1);
  // Another process of the same instance (a restart, anywhere) finds what is still pending; other instances' are not its own.
  t.same([...(await PgDecisionLog.open(store, 'i1')).pending()], [['pgshard_i1_x', ['a', 'b']]]);
  t.same([...(await PgDecisionLog.open(store, 'i2')).pending()], []);
});

t.test('an unreachable metadata database is refused at start with what to check', async (t) => {
  const cfg = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)], metadata: { host: '127.0.0.1', port: 1, database: 'meta', user: 'app', password: 'app' } });
  await t.rejects(PgTopologyStore.open(cfg.metadata!, 'i1', 'h', testLogger()), /cannot use the metadata database postgres:\/\/app@127\.0\.0\.1:1\/meta.*check metadata\.host, port, database, user and password/);
});

t.test('the configuration: metadata and topology.file exclude each other; the lease outlasts two heartbeats', async (t) => {
  const base = { users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)] };
  const m = { host: 'h', database: 'meta', user: 'u' };
  t.throws(() => validateConfig({ ...base, metadata: m, topology: { file: '/tmp/x.json' } }), /topology\.file.*remove topology\.file/s);
  t.throws(() => validateConfig({ ...base, metadata: { ...m, heartbeat_ms: 1000, lease_ms: 1500 } }), /lease_ms must be at least twice heartbeat_ms/);
  t.equal(validateConfig({ ...base, metadata: m }).metadata?.schema, 'pgshard');
});
