// The configurable limits, each against a real shard: prepared statements per client (53400), the
// statement-analysis cache size, the idle-session (57P05), idle-in-transaction (25P03), statement
// (57014) and startup timeouts. Each answer is compared with what Postgres itself says where it has one.
import t from 'tap';
import net from 'node:net';
import { withShards } from '../helpers/shards.js';
import { directClient, errorOf, pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { RawClient, serialize } from '../helpers/raw-client.js';

const shards = await withShards(t, 1, { settings: { idle_session_timeout: 0 } });
const shard = shards.clusters[0]!;
const setup = await directClient(shard);
await setup.query('create table if not exists lim_kv (k int primary key, v text)');
await setup.query("insert into lim_kv values (1, 'one') on conflict (k) do update set v = 'one'");
await setup.end();

t.test('prepared statements per client: 53400 at the limit, the session goes on', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { limits: { max_prepared_statements_per_client: 3 } });
  const c = await pgClient(proxy.port, { t });
  for (let i = 0; i < 3; i++) await c.query({ name: `s${i}`, text: `select ${i} as n`, values: [] });
  const e = await errorOf(() => c.query({ name: 's3', text: 'select 3 as n', values: [] }));
  t.match(e, { code: '53400', message: /too many prepared statements on this connection \(limit 3\)/ }, 'the 4th named Parse is refused');
  t.match((e as { hint?: string } | null)?.hint, /DEALLOCATE|limits\.max_prepared_statements_per_client/, 'the hint says what to do');
  t.same((await c.query({ name: 's1', text: 'select 1 as n', values: [] })).rows, [{ n: 1 }], 'statements already prepared still run');
  t.same((await c.query('select 42 as n')).rows, [{ n: 42 }], 'unnamed statements still run');
  await c.query('deallocate s0');
  t.same((await c.query({ name: 's3', text: 'select 3 as n', values: [] })).rows, [{ n: 3 }], 'after DEALLOCATE a new one fits');
  const other = await pgClient(proxy.port, { t });
  t.same((await other.query({ name: 's9', text: 'select 9 as n', values: [] })).rows, [{ n: 9 }], 'the limit is per client');
});

t.test('statement cache size bounds the analyses kept', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { limits: { statement_cache_size: 50 } });
  const c = await pgClient(proxy.port, { t });
  for (let i = 0; i < 300; i++) await c.query(`select ${i} as n, 'x${i}' as s from lim_kv where k = 1`);
  const cache = (proxy.server.analyzer as unknown as { cache: { size: number } }).cache;
  t.ok(cache.size <= 50, `at most 50 analyses are kept (${cache.size})`);
  t.ok(cache.size > 0, 'the cache is used');
});

t.test('idle client timeout: FATAL 57P05 as Postgres idle_session_timeout', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { limits: { idle_client_timeout_ms: 400 } });
  const idle = await RawClient.connect(proxy.port);
  t.teardown(() => idle.close());
  const busy = await pgClient(proxy.port, { t });
  const started = Date.now();
  const end = started + 1500;
  while (Date.now() < end) {
    await busy.query('select 1');
    await sleep(100);
  }
  const msgs = await idle.readUntilClosed(3000);
  const fatal = msgs.find((m) => m.type === 'E');
  t.match(fatal?.fields, { S: 'FATAL', C: '57P05', M: 'terminating connection due to idle-session timeout' }, 'the idle client gets FATAL 57P05');
  t.ok(idle.closed, 'and its connection is closed');
  t.same((await busy.query('select 2 as n')).rows, [{ n: 2 }], 'a client that keeps working is not closed');

  // Postgres says the same with idle_session_timeout.
  const direct = await directClient(shard, { t });
  await direct.query("set idle_session_timeout = '300ms'");
  await sleep(800);
  const pgErr = direct.errors[0] as (Error & { code?: string }) | undefined;
  t.equal(pgErr?.code ?? (await errorOf(() => direct.query('select 1')))?.code, '57P05', 'Postgres uses 57P05 too');
});

t.test('idle-in-transaction timeout: FATAL 25P03, the transaction is rolled back', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { limits: { idle_in_transaction_timeout_ms: 400 } });
  const c = await pgClient(proxy.port, { t });
  await c.query('begin');
  await c.query("update lim_kv set v = 'held' where k = 1");
  await sleep(1200);
  t.match(c.errors[0], { code: '25P03', message: 'terminating connection due to idle-in-transaction timeout' }, 'the client is told why');
  const direct = await directClient(shard, { t });
  t.same((await direct.query('select v from lim_kv where k = 1')).rows, [{ v: 'one' }], 'the update was rolled back');
  await direct.query("set lock_timeout = '1s'");
  await direct.query("update lim_kv set v = 'one' where k = 1"); // not blocked: the row lock is gone
  const stuck = await direct.query("select count(*)::int as n from pg_stat_activity where usename = 'app' and state like 'idle in transaction%'");
  t.same(stuck.rows, [{ n: 0 }], 'no backend stays idle in transaction');
  const again = await pgClient(proxy.port, { t });
  t.same((await again.query('select v from lim_kv where k = 1')).rows, [{ v: 'one' }], 'new clients are served');
  // A transaction that keeps working is not cut.
  await again.query('begin');
  for (let i = 0; i < 8; i++) {
    await again.query('select 1');
    await sleep(150);
  }
  await again.query('commit');
  t.equal(again.errors.length, 0, 'an active transaction is not timed out');
});

t.test('statement timeout: 57014, the backend query is cancelled, the session goes on', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { limits: { statement_timeout_ms: 500 } });
  const c = await pgClient(proxy.port, { t });
  const t0 = Date.now();
  const e = await errorOf(() => c.query('select pg_sleep(10)'));
  const ms = Date.now() - t0;
  t.match(e, { code: '57014', message: 'canceling statement due to statement timeout' }, 'the statement is cancelled with 57014');
  t.ok(ms < 3000, `after about the timeout (${ms} ms)`);
  t.same((await c.query('select 1 as n')).rows, [{ n: 1 }], 'the session is usable afterwards');
  await c.query('begin');
  t.match(await errorOf(() => c.query('select pg_sleep(10)')), { code: '57014' }, 'in a transaction too');
  t.match(await errorOf(() => c.query('select 1')), { code: '25P02' }, 'which is then failed, as in Postgres');
  await c.query('rollback');
  t.same((await c.query('select 2 as n')).rows, [{ n: 2 }], 'and usable after ROLLBACK');
  const direct = await directClient(shard, { t });
  const active = await direct.query("select count(*)::int as n from pg_stat_activity where query like 'select pg_sleep(10)%' and state = 'active'");
  t.same(active.rows, [{ n: 0 }], 'no backend still runs the cancelled statement');
  await c.query('set statement_timeout = 100');
  t.match(await errorOf(() => c.query('select pg_sleep(1)')), { code: '57014' }, 'a client may lower its own statement_timeout');
});

t.test('startup timeout: a connection that never finishes startup is closed', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { limits: { startup_timeout_ms: 300 } });
  const silent = await closedAfter(proxy.port, Buffer.alloc(0));
  t.ok(silent !== null && silent < 2000, `a client that sends nothing is closed (${silent} ms)`);
  const partial = serialize.startup({ user: 'app', database: 'app' }).subarray(0, 10);
  const half = await closedAfter(proxy.port, partial);
  t.ok(half !== null && half < 2000, `a client that sends half a startup packet is closed (${half} ms)`);
  const c = await pgClient(proxy.port, { t });
  t.same((await c.query('select 1 as n')).rows, [{ n: 1 }], 'clients that log in are served');
  await sleep(600);
  t.same((await c.query('select 2 as n')).rows, [{ n: 2 }], 'the startup timeout does not apply after login');
});

/** Connects, sends `bytes`, and resolves with the ms until pgshard closed the connection (null: not within 5 s). */
function closedAfter(port: number, bytes: Buffer): Promise<number | null> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => {
      if (bytes.length) s.write(bytes);
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, 5000);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}
