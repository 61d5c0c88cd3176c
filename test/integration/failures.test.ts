// Failures at the front door: authentication, malformed and hostile input, cancel, backends and shards
// going away, pool exhaustion, connection limits.
import t, { type Test } from 'tap';
import { withShards } from '../helpers/shards.js';
import { errorOf, openConnections, pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { RawClient, fe, serialize } from '../helpers/raw-client.js';
import { psql } from '../helpers/tools.js';

const shards = await withShards(t, 1);
const shard = shards.clusters[0]!;
const proxy = await startProxy(t, shards.clusters);

/** Logs in with node-postgres and returns the error (code, message, severity). */
async function loginError(port: number, opts: { user?: string; password?: string; database?: string }) {
  const e = await errorOf(() => pgClient(port, opts).then((c) => c.end()));
  return e && { code: e.code, message: e.message, severity: e.severity };
}

async function stillServes(t: Test, port = proxy.port): Promise<void> {
  const c = await pgClient(port);
  t.same((await c.query('select 1 as ok')).rows, [{ ok: 1 }], 'pgshard still serves other clients');
  await c.end();
}

t.test('authentication failures say what Postgres says', async (t) => {
  for (const opts of [{ password: 'wrong' }, { user: 'nobody' }, { database: 'nope' }]) {
    const via = await loginError(proxy.port, opts);
    const direct = await loginError(shard.port, opts);
    t.ok(direct, `Postgres refuses ${JSON.stringify(opts)}`);
    t.same(via, direct, `pgshard refuses ${JSON.stringify(opts)} the same way`);
  }
  t.match(await loginError(proxy.port, { password: 'wrong' }), { code: '28P01', message: 'password authentication failed for user "app"', severity: 'FATAL' });
  t.match(await loginError(proxy.port, { user: 'nobody' }), { code: '28P01', message: 'password authentication failed for user "nobody"' });
  t.match(await loginError(proxy.port, { database: 'nope' }), { code: '3D000' });

  const trust = await startProxy(t, shards.clusters, { auth: { method: 'trust' } });
  t.match(await loginError(trust.port, { user: 'nobody' }), { code: '28000', message: 'role "nobody" does not exist', severity: 'FATAL' });
  // Postgres's backend exits after a FATAL, closing the connection whatever the client does.
  await sleep(300);
  t.equal(await openConnections(proxy), 0, 'connections refused at login are closed by pgshard');
  t.equal(await openConnections(trust), 0, 'also with trust');
  const ok = await pgClient(trust.port, { password: 'anything' });
  t.same((await ok.query('select current_user as u')).rows, [{ u: 'app' }], 'trust lets a known user in');
  await ok.end();
});

t.test('garbage as a startup packet closes that connection only', async (t) => {
  for (const garbage of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]), Buffer.from([0, 0, 0, 2, 1, 2, 3])]) {
    const c = await RawClient.open(proxy.port);
    c.send(garbage);
    const msgs = await c.readUntilClosed(5000);
    t.ok(msgs.every((m) => m.type === 'E' && m.fields!.S === 'FATAL'), `closed (after ${msgs.map((m) => m.code).join(',') || 'nothing'})`);
  }
  await stillServes(t);
});

t.test('a 1 GB length prefix is refused without allocating it', async (t) => {
  const rssBefore = process.memoryUsage().rss;
  const huge = 0x40000000;
  // As a startup packet.
  const a = await RawClient.open(proxy.port);
  const startup = Buffer.alloc(8);
  startup.writeInt32BE(huge, 0);
  startup.writeInt32BE(196608, 4);
  a.send(startup, Buffer.alloc(1 << 20, 0x61));
  const am = await a.readUntilClosed(5000);
  t.match(am, [{ type: 'E', code: '08P01', fields: { S: 'FATAL' } }], 'startup packet: FATAL 08P01');
  // As a typed message after login.
  const b = await RawClient.connect(proxy.port);
  const q = Buffer.alloc(5);
  q[0] = 0x51;
  q.writeInt32BE(huge, 1);
  b.send(q, Buffer.alloc(1 << 20, 0x61));
  const bm = await b.readUntilClosed(5000);
  t.match(bm, [{ type: 'E', code: '08P01', fields: { S: 'FATAL' } }], 'Query message: FATAL 08P01');
  // As the SASL response during authentication.
  const c = await RawClient.open(proxy.port);
  c.send(serialize.startup({ user: 'app', database: 'app' }));
  const auth = await c.readOne();
  t.equal(auth.authCode, 10, 'asked for SASL');
  const p = Buffer.alloc(5);
  p[0] = 0x70;
  p.writeInt32BE(huge, 1);
  c.send(p, Buffer.alloc(1 << 20, 0x61));
  const cm = await c.readUntilClosed(5000);
  t.match(cm, [{ type: 'E', code: '08P01', fields: { S: 'FATAL' } }], 'SASLInitialResponse: FATAL 08P01');
  const grown = process.memoryUsage().rss - rssBefore;
  t.ok(grown < 50 << 20, `RSS grew by ${(grown / 1048576).toFixed(1)} MB`);
  await stillServes(t);
});

t.test('SSLRequest without TLS configured: N, then a normal startup', async (t) => {
  const c = await RawClient.open(proxy.port);
  c.send(fe.startupPacket(80877103));
  t.equal((await c.readBytes(1)).toString(), 'N');
  await c.login();
  t.match(await c.query('select 1'), [{ type: 'T' }, { type: 'D', values: ['1'] }, { type: 'C' }, { type: 'Z', status: 'I' }]);
  c.close();
  // GSSENCRequest too.
  const g = await RawClient.open(proxy.port);
  g.send(fe.startupPacket(80877104));
  t.equal((await g.readBytes(1)).toString(), 'N');
  await g.login();
  g.close();
  const r = await psql(proxy.port, 'select 40 + 2', { tuplesOnly: true, env: { PGSSLMODE: 'prefer' } });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), '42', 'psql sslmode=prefer');
  const req = await psql(proxy.port, 'select 1', { tuplesOnly: true, env: { PGSSLMODE: 'require' } });
  t.not(req.code, 0, 'psql sslmode=require fails without TLS');
  t.match(req.stderr, /SSL|ssl/);
});

t.test('protocol version 2.0 is refused with 0A000', async (t) => {
  const v2 = Buffer.from('user\0app\0database\0app\0\0');
  const viaProxy = await RawClient.open(proxy.port);
  viaProxy.send(fe.startupPacket(0x00020000, v2));
  const got = await viaProxy.readUntilClosed(5000);
  t.match(got, [{ type: 'E', code: '0A000', fields: { S: 'FATAL' }, message: /unsupported frontend protocol 2\.0/ }]);
  // Postgres refuses it too (answering in the 2.0 format: 'E' and a bare string).
  const direct = await RawClient.open(shard.port);
  direct.send(fe.startupPacket(0x00020000, v2));
  const raw = await direct.readBytes(1).then(async (b) => {
    await direct.readUntilClosed(5000).catch(() => []);
    return b;
  });
  t.equal(raw.toString(), 'E', 'Postgres answers with an error');
  viaProxy.close();
  direct.close();
});

t.test('CancelRequest cancels the running statement', async (t) => {
  const c = await pgClient(proxy.port, { t });
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  t.ok(processID && secretKey !== null, 'BackendKeyData received');
  const started = Date.now();
  const running = errorOf(() => c.query('select pg_sleep(30)'));
  await sleep(300);
  const s = await RawClient.open(proxy.port);
  s.send(fe.cancelRequest(processID, secretKey));
  await s.readUntilClosed(5000);
  const err = await running;
  t.equal(err?.code, '57014', 'canceling statement due to user request');
  t.ok(Date.now() - started < 2300, `cancelled within 2 s (${Date.now() - started} ms)`);
  t.same((await c.query('select 2 as two')).rows, [{ two: 2 }], 'the next query works');
  // A wrong secret cancels nothing.
  const slow = c.query('select pg_sleep(0.5) as slept');
  const w = await RawClient.open(proxy.port);
  w.send(fe.cancelRequest(processID, (secretKey + 1) | 0));
  t.same((await slow).rows, [{ slept: '' }], 'wrong secret: not cancelled');
  w.close();
  s.close();
});

t.test('a backend terminated on the shard while the client waits', async (t) => {
  const c = await pgClient(proxy.port, { t });
  const running = errorOf(() => c.query('select pg_sleep(30) as terminate_me'));
  await sleep(300);
  const killed = await shard.query(
    `select pg_terminate_backend(pid) as ok from pg_stat_activity where query like '%terminate_me%' and pid <> pg_backend_pid()`,
    'app',
  );
  t.same(killed, [{ ok: true }], 'terminated on the shard');
  const err = await running;
  t.ok(err && ['57P01', '08006'].includes(err.code!), `the client gets an error (${err?.code} ${err?.message})`);
  const next = await errorOf(() => c.query('select 3 as three'));
  t.equal(next, null, 'the next statement works');
  t.same(c.errors, [], 'the client connection was not broken');
  // Terminated inside a transaction: the transaction is gone; after ROLLBACK all is well.
  const c2 = await pgClient(proxy.port, { t });
  await c2.query('BEGIN');
  const inTx = errorOf(() => c2.query('select pg_sleep(30) as terminate_me_too'));
  await sleep(300);
  await shard.query(`select pg_terminate_backend(pid) from pg_stat_activity where query like '%terminate_me_too%' and pid <> pg_backend_pid()`, 'app');
  const e2 = await inTx;
  t.ok(e2 && ['57P01', '08006'].includes(e2.code!), `error in the transaction (${e2?.code})`);
  await errorOf(() => c2.query('ROLLBACK'));
  t.equal(await errorOf(() => c2.query('select 4')), null, 'works after ROLLBACK');
});

t.test('a terminated backend, at the byte level: one error, one ReadyForQuery', async (t) => {
  const c = await RawClient.connect(proxy.port);
  t.teardown(() => c.close());
  c.send(fe.query('select pg_sleep(30) as terminate_raw'));
  await sleep(300);
  await shard.query(`select pg_terminate_backend(pid) from pg_stat_activity where query like '%terminate_raw%' and pid <> pg_backend_pid()`, 'app');
  const answer = await c.readUntilReady(5000);
  await sleep(300);
  const errors = answer.filter((m) => m.type === 'E');
  t.equal(errors.length, 1, `one ErrorResponse (got ${errors.map((e) => `${e.fields!.S} ${e.code} ${e.message}`).join(' | ')})`);
  t.not(errors[0]?.fields!.S, 'FATAL', 'not FATAL: the client connection stays open');
  t.equal(c.pendingBytes, 0, 'nothing more after ReadyForQuery');
  const next = await c.query('select 8');
  t.match(next, [{ type: 'T' }, { type: 'D', values: ['8'] }, { type: 'C' }, { type: 'Z', status: 'I' }], 'the next query gets its own answer');
});

t.test('the shard stops and comes back', async (t) => {
  const own = await withShards(t, 1);
  const cluster = own.clusters[0]!;
  const p = await startProxy(t, own.clusters, { pool: { connect_timeout_ms: 2000 } });
  const a = await pgClient(p.port, { t });
  const b = await pgClient(p.port, { t });
  await a.query('select 1');
  await b.query('select 1');
  await cluster.stop();
  const started = Date.now();
  const err = await errorOf(() => a.query('select 1'));
  t.ok(err && ['08006', '57P01'].includes(err.code!), `an error for the new query (${err?.code} ${err?.message})`);
  t.ok(Date.now() - started < 3000, `quickly (${Date.now() - started} ms)`);
  await sleep(200);
  t.same(a.errors, [], "A's session stays open");
  t.same(b.errors, [], "B's session stays open");
  await cluster.restart();
  t.same((await a.query('select 5 as five')).rows, [{ five: 5 }], 'A works after the restart');
  t.same((await b.query('select 6 as six')).rows, [{ six: 6 }], 'B works after the restart');
});

t.test('pool checkout timeout', async (t) => {
  const p = await startProxy(t, shards.clusters, { pool: { size: 1, checkout_timeout_ms: 500 } });
  const a = await pgClient(p.port, { t });
  const b = await pgClient(p.port, { t });
  await a.query('BEGIN');
  await a.query('select 1');
  const started = Date.now();
  const err = await errorOf(() => b.query('select 1'));
  t.equal(err?.code, '53300');
  t.match(err?.message, /waiting for a connection/);
  t.ok(Date.now() - started < 1500, `after about 500 ms (${Date.now() - started} ms)`);
  await a.query('COMMIT');
  t.same((await b.query('select 7 as seven')).rows, [{ seven: 7 }], 'B works once the backend is free');
});

t.test('stop() closes connected sessions with FATAL 57P01', async (t) => {
  const p = await startProxy(t, shards.clusters);
  const idle = await RawClient.connect(p.port);
  t.teardown(() => idle.close());
  const result = await Promise.race([p.server.stop(0).then(() => 'stopped'), sleep(3000).then(() => 'still waiting after 3 s')]);
  t.equal(result, 'stopped', 'stop(0) resolves while a client is connected');
  const msgs = await idle.readUntilClosed(1000).catch((e: Error) => e.message);
  t.match(msgs, [{ type: 'E', code: '57P01', fields: { S: 'FATAL' } }], 'the client is told and disconnected');
});

t.test('max_client_connections', async (t) => {
  const p = await startProxy(t, shards.clusters, { limits: { max_client_connections: 3 } });
  const clients = [await pgClient(p.port), await pgClient(p.port), await pgClient(p.port)];
  const fourth = await errorOf(() => pgClient(p.port));
  t.match(fourth, { code: '53300', severity: 'FATAL' }, 'the 4th connection is refused');
  // Postgres closes a connection it refused (the backend exits); pgshard must not keep it open waiting for
  // the client to close its end.
  await sleep(500);
  t.equal(await openConnections(p), 3, 'the refused node-postgres connection is closed by pgshard');
  const before = await openConnections(p);
  const silent = await RawClient.open(p.port);
  t.match(await silent.readOne(), { type: 'E', code: '53300' }, 'a connection that sends nothing is refused too');
  await sleep(300);
  t.equal(await openConnections(p), before, '…and closed');
  // A client sends its StartupMessage right away, before it reads the refusal.
  const eager = await RawClient.open(p.port);
  eager.send(serialize.startup({ user: 'app', database: 'app' }));
  t.match(await eager.readOne(), { type: 'E', code: '53300' }, 'a connection that sent its StartupMessage is refused');
  await sleep(300);
  t.equal(await openConnections(p), before, '…and closed, though its bytes were never read');
  silent.close();
  eager.close();
  await clients.pop()!.end();
  await sleep(100);
  const again = await pgClient(p.port);
  t.same((await again.query('select 1 as ok')).rows, [{ ok: 1 }], 'a slot freed lets a new client in');
  await Promise.all([...clients, again].map((c) => c.end()));
});
