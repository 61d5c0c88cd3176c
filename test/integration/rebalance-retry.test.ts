// A roll-back that cannot finish (the shard being added went out of reach half-way) is not forgotten:
// the rebalance stays `failed` with the roll-back pending, no other rebalance starts, and pgshard retries
// until the shard is back; then the tables it created there are gone and a new add goes through.
import t from 'tap';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { withShards, APP } from '../helpers/shards.js';
import { startProxy, sleep } from '../helpers/proxy.js';
import { initHash } from '../../src/routing/hash.js';
import { checkPlacement, startAdminApi, preload, rebalanceEnded, SCHEMA, TABLES, type Expected } from '../helpers/rebalance-load.js';
import { tempDir } from '../helpers/temp-dir.js';

await initHash();

/** A TCP relay on a fixed port that can be shut (connections cut, new ones refused) and opened again. */
async function relayTo(target: number): Promise<{ port: number; shut(): Promise<void>; open(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const open = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((a) => {
        const b = net.connect(target, '127.0.0.1');
        for (const s of [a, b]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => undefined);
        }
        a.pipe(b).pipe(a);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  await open();
  return {
    get port() {
      return port;
    },
    shut: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server!.close(() => resolve());
      }),
    open,
  };
}

t.test('a roll-back that fails is retried until it succeeds', async (t) => {
  const shards = await withShards(t, 4);
  const [c0, c1, c2, c3] = shards.clusters;
  for (const c of [c0!, c1!, c2!]) await c.query(SCHEMA, 'app');
  const relay = await relayTo(c3!.port);
  t.teardown(() => relay.shut());
  const dir = tempDir('rbretry');
  const proxy = await startProxy(t, [c0!, c1!, c2!], { tables: TABLES, topology: { file: path.join(dir, 'topology.json') } });
  const { api } = await startAdminApi(t, proxy.server);
  const expected = new Map<bigint, Expected>();
  await preload(proxy.url, expected);

  // A transaction with an xid on s0 keeps the rebalance waiting at its slot, in phase copying, after
  // it created the tables on the new shard.
  const holder = new pg.Client({ host: '127.0.0.1', port: c0!.port, user: APP.user, password: APP.password, database: APP.database });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT txid_current()');
  const s3 = { id: 's3', host: '127.0.0.1', port: relay.port, database: APP.database, user: APP.user, password: APP.password, weight: 1 };
  t.equal((await api('POST', '/shards', s3)).status, 202, 'adding s3 started');
  for (let i = 0; i < 200 && (await api('GET', '/rebalance')).body.state !== 'copying'; i++) await sleep(50);
  t.equal((await api('GET', '/rebalance')).body.state, 'copying');
  t.same(await c3!.query("SELECT to_regclass('users')::text AS t", 'app'), [{ t: 'users' }], 'the tables exist on s3');

  // s3 goes out of reach; the copy fails, and so does the roll-back (it cannot drop what it created there).
  await relay.shut();
  await holder.query('COMMIT');
  await holder.end();
  let r: Record<string, unknown> = {};
  for (let i = 0; i < 300; i++) {
    r = (await api('GET', '/rebalance')).body;
    if (r.retrying === 'rollback') break;
    await sleep(50);
  }
  t.equal(r.state, 'failed');
  t.equal(r.retrying, 'rollback', 'the roll-back is pending');
  t.match(r.error, /the roll-back failed too .*retries it every few seconds/);
  const again = await api('POST', '/shards', { ...s3, port: c3!.port });
  t.equal(again.status, 409, 'no other rebalance starts meanwhile');
  t.match(again.body.error, /roll-back of the last rebalance \(add s3\) has not finished/);
  t.same(proxy.server.topology.shards.map((s) => s.id), ['s0', 's1', 's2'], 'the ring did not change');

  // s3 is back: the next retry (every 5 s) finishes the roll-back.
  await relay.open();
  for (let i = 0; i < 300; i++) {
    r = (await api('GET', '/rebalance')).body;
    if (r.retrying === null) break;
    await sleep(100);
  }
  t.equal(r.retrying, null, 'the roll-back finished');
  t.equal(r.state, 'failed', `the rebalance ends failed, with its first error: ${r.error}`);
  t.notMatch(r.error, /roll-back failed/);
  t.same(await c3!.query("SELECT to_regclass('users')::text AS t", 'app'), [{ t: null }], 'the tables it created on s3 are gone');
  for (const c of [c0!, c1!, c2!]) t.same(await c.query('SELECT slot_name FROM pg_replication_slots', 'app'), [], `no slot left on port ${c.port}`);

  // And a new add goes through.
  t.equal((await api('POST', '/shards', s3)).status, 202, 'a new add starts');
  const done = await rebalanceEnded(api, 'add s3 again');
  t.equal(done.state, 'done', `${done.error ?? 'done'}`);
  await checkPlacement(t, { s0: c0!, s1: c1!, s2: c2!, s3: c3! }, proxy.server.topology.ring, expected);
});
