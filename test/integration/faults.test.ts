// Faults between pgshard and its shards, injected for real: a shard killed mid-query, a shard that hangs
// (SIGSTOP), network faults through a relay (latency, reset, blackhole), and a client that stops reading
// a large result. Clients of other shards must see nothing; clients of the failed shard get an error
// (never a wait without end) and are served again once the shard is back, without restarting pgshard.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { withShards, type Teardownable } from '../helpers/shards.js';
import { errorOf, pgClient, sleep, startProxy, testLogger } from '../helpers/proxy.js';
import { RawClient, serialize } from '../helpers/raw-client.js';
import { startFaultRelay } from '../helpers/network-fault-relay.js';
import { childrenOf, signalProcess } from '../../src/embedded/processes.js';

// test/helpers/proxy.ts registers the module hook the server's graph needs under tap; load these after.
const { startAdmin } = await import('../../src/admin/http.js');
const { Metrics } = await import('../../src/admin/metrics.js');

const shards = await withShards(t, 2);
const [s0, s1] = shards.clusters as [(typeof shards.clusters)[number], (typeof shards.clusters)[number]];
for (const s of shards.clusters) await s.query('create table if not exists fault_kv (k bigint primary key, v text)', 'app');
const TABLES = { fault_kv: { shard_key: 'k', key_type: 'bigint' } };

type Client = Awaited<ReturnType<typeof pgClient>>;

/** A client pinned to one shard (pgshard.shard), for statements that name no table. */
async function clientOn(port: number, shard: string, t: Teardownable): Promise<Client> {
  const c = await pgClient(port, { t, query_timeout: 20_000 });
  await c.query(`set pgshard.shard = '${shard}'`);
  return c;
}

/** Runs `select n` on `c` every 50 ms until stopped; every answer must come, right, within 1 s. */
function keepBusy(c: Client): { stop(): Promise<{ queries: number; errors: string[]; slowestMs: number }> } {
  let running = true;
  const stats = { queries: 0, errors: [] as string[], slowestMs: 0 };
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      try {
        const r = await c.query('select $1::int as n', [stats.queries]);
        if (r.rows[0]?.n !== stats.queries) stats.errors.push(`wrong answer ${JSON.stringify(r.rows)}`);
      } catch (e) {
        stats.errors.push((e as Error).message);
      }
      stats.slowestMs = Math.max(stats.slowestMs, Date.now() - t0);
      stats.queries++;
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return stats;
    },
  };
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

t.test('a shard killed mid-query', async (t) => {
  const proxy = await startProxy(t, shards.clusters);
  const metrics = new Metrics({ healthIntervalMs: 500 });
  const admin = await startAdmin(proxy.server, metrics, { host: '127.0.0.1', port: 0 }, testLogger());
  t.teardown(async () => {
    await admin.close();
    metrics.close();
  });
  const adminUrl = `http://127.0.0.1:${admin.port}`;
  t.equal((await getJson(`${adminUrl}/ready`)).status, 200, 'ready while both shards are up');

  const c0 = await clientOn(proxy.port, 's0', t);
  const c1 = await clientOn(proxy.port, 's1', t);
  const busy = keepBusy(c0);
  const running = errorOf(() => c1.query('select pg_sleep(10)'));
  await sleep(400);
  const t0 = Date.now();
  await s1.kill();
  const e = await running;
  t.ok(e && ['08006', '57P01', '08000'].includes(e.code ?? ''), `the query on the killed shard fails with a connection error (${e?.code}: ${e?.message})`);
  t.ok(Date.now() - t0 < 3000, 'promptly');
  t.equal(c1.errors.length, 0, 'the client connection itself survives');

  const ready = await getJson(`${adminUrl}/ready`);
  t.equal(ready.status, 503, '/ready says not ready while the shard is down');
  t.match(JSON.stringify(ready.body), /s1/, 'and names the shard');
  t.equal((await getJson(`${adminUrl}/health`)).status, 200, '/health: pgshard itself is alive');
  const whileDown = await errorOf(() => c1.query('select 1'));
  t.ok(whileDown && /^(08|57P)/.test(whileDown.code ?? ''), `a statement for the down shard fails fast with ${whileDown?.code}: ${whileDown?.message}`);

  await s1.restart();
  let back: unknown = null;
  for (let i = 0; i < 20 && back === null; i++) {
    back = await c1.query('select 7 as n').then((r) => r.rows[0]?.n, () => null);
    if (back === null) await sleep(250);
  }
  t.equal(back, 7, 'the same client is served once the shard is back, without restarting pgshard');
  t.equal((await getJson(`${adminUrl}/ready`)).status, 200, 'ready again');
  const stats = await busy.stop();
  t.same(stats.errors, [], `the client on the other shard saw nothing (${stats.queries} queries, slowest ${stats.slowestMs} ms)`);
});

t.test('a shard that hangs (SIGSTOP)', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { tables: TABLES, limits: { statement_timeout_ms: 500 }, pool: { connect_timeout_ms: 1000 } });
  const c0 = await clientOn(proxy.port, 's0', t);
  const c1 = await clientOn(proxy.port, 's1', t);
  t.same((await c1.query('select 1 as n')).rows, [{ n: 1 }], 'served before the hang');
  const c0b = await pgClient(proxy.port, { t, query_timeout: 20_000 }); // not pinned: reads every shard
  // Two connections to s1 in its pool (c1 holds one in a transaction while the read takes another), so
  // that after the hang both statements below are sent on established connections.
  await c1.query('begin');
  await c1.query('select 1');
  t.same((await c0b.query('select count(*)::int as n from fault_kv')).rows, [{ n: 0 }], 'a read on every shard works before');
  await c1.query('commit');
  const pid = s1.pid!;
  const stopped = [pid, ...childrenOf(pid)];
  const resume = () => stopped.forEach((p) => signalProcess(p, 'SIGCONT'));
  t.teardown(resume);
  const busy = keepBusy(c0);
  stopped.forEach((p) => signalProcess(p, 'SIGSTOP'));
  try {
    const t0 = Date.now();
    const scatter = errorOf(() => c0b.query('select count(*) from fault_kv')).then((e) => ({ e, ms: Date.now() - t0 }));
    const e = await errorOf(() => c1.query('select 2 as n'));
    const ms = Date.now() - t0;
    t.match(e, { code: '57014', message: 'canceling statement due to statement timeout' }, 'a statement to the hung shard times out with 57014');
    t.match((e as { detail?: string } | null)?.detail, /sent nothing/, 'the detail says the shard did not answer');
    t.ok(ms >= 500 && ms < 6000, `after the timeout and the cancel grace (${ms} ms)`);
    const t1 = Date.now();
    const e2 = await errorOf(() => c1.query('select 3 as n'));
    t.ok(e2 !== null && Date.now() - t1 < 6000, `the next statement fails too, and in bounded time (${Date.now() - t1} ms: ${e2?.code} ${e2?.message})`);
    const sc = await scatter;
    t.match(sc.e, { code: '57014' }, `a read on every shard, the hung one included, times out too (${sc.ms} ms)`);
    t.ok(sc.ms < 6000, 'in bounded time');
    const fresh = await clientOn(proxy.port, 's0', t);
    t.same((await fresh.query('select 4 as n')).rows, [{ n: 4 }], 'new clients of the other shard are served');
    const stats = await busy.stop();
    t.same(stats.errors, [], `the other shard's client saw no error (${stats.queries} queries)`);
    t.ok(stats.slowestMs < 1000, `nor a slow answer (slowest ${stats.slowestMs} ms)`);
    const p0 = proxy.server.pools.get('s0')!.stats();
    t.equal(p0.waiting, 0, "nothing waits in the other shard's pool");
  } finally {
    resume();
  }
  let back: unknown = null;
  for (let i = 0; i < 20 && back === null; i++) {
    back = await c1.query('select 5 as n').then((r) => r.rows[0]?.n, () => null);
    if (back === null) await sleep(250);
  }
  t.equal(back, 5, 'after SIGCONT the same client is served again');
});

t.test('network faults through a relay: latency, reset, blackhole; keepalives on', async (t) => {
  const relay = await startFaultRelay({ port: s1.port });
  t.teardown(() => relay.close());
  const proxy = await startProxy(t, [s0, { port: relay.port }], { tables: TABLES, limits: { statement_timeout_ms: 500 }, pool: { keepalive_idle_ms: 1000, connect_timeout_ms: 1000 } });
  const c0 = await clientOn(proxy.port, 's0', t);
  const c1 = await clientOn(proxy.port, 's1', t);
  t.same((await c1.query('select 1 as n')).rows, [{ n: 1 }], 'served through the relay');

  // Keepalive probes are armed on backend sockets (the kernel shows a keepalive timer).
  const ss = execFileSync('ss', ['-tnoH', 'state', 'established', `( dport = :${relay.port} )`], { encoding: 'utf8' });
  t.match(ss, /timer:\(keepalive,/, 'backend sockets have TCP keepalive timers');

  relay.latencyMs = 150;
  const t0 = Date.now();
  t.same((await c1.query('select 2 as n')).rows, [{ n: 2 }], 'with 150 ms latency each way the answer is right');
  t.ok(Date.now() - t0 >= 300, `and takes the latency (${Date.now() - t0} ms)`);
  relay.latencyMs = 0;

  const busy = keepBusy(c0);
  const running = errorOf(() => c1.query('select pg_sleep(2)'));
  await sleep(300);
  relay.reset();
  const e = await running;
  t.match(e, { code: /^08/ }, `a reset connection fails the statement with a connection error (${e?.code}: ${e?.message})`);
  t.same((await c1.query('select 3 as n')).rows, [{ n: 3 }], 'the next statement runs on a new connection');

  relay.mode = 'blackhole';
  const t1 = Date.now();
  const e2 = await errorOf(() => c1.query('select 4 as n'));
  t.match(e2, { code: '57014' }, `a blackholed connection: the statement times out (${Date.now() - t1} ms)`);
  t.ok(Date.now() - t1 < 6000, 'in bounded time');
  relay.mode = 'pass';
  let back: unknown = null;
  for (let i = 0; i < 10 && back === null; i++) back = await c1.query('select 5 as n').then((r) => r.rows[0]?.n, () => null);
  t.equal(back, 5, 'served again once the network is back');

  // A two-phase commit whose PREPARE on s1 is lost in the blackhole: bounded, and rolled back everywhere.
  const keyOn = (shard: string) => Array.from({ length: 1000 }, (_, i) => 10_000 + i).find((k) => proxy.server.router.shardForKey('fault_kv', String(k)) === shard)!;
  const [k0, k1] = [keyOn('s0'), keyOn('s1')];
  const tx = await pgClient(proxy.port, { t, query_timeout: 20_000 });
  await tx.query('begin');
  await tx.query("insert into fault_kv values ($1, 'tx')", [k0]);
  await tx.query("insert into fault_kv values ($1, 'tx')", [k1]);
  relay.mode = 'blackhole';
  const t2 = Date.now();
  const e3 = await errorOf(() => tx.query('commit'));
  const commitMs = Date.now() - t2;
  relay.mode = 'pass';
  t.ok(e3 !== null && commitMs < 6000, `COMMIT with a participant behind a blackhole fails in bounded time (${commitMs} ms: ${e3?.code} ${e3?.message})`);
  const check = await pgClient(proxy.port, { t });
  t.same((await check.query('select k from fault_kv where k = any($1::bigint[])', [[k0, k1]])).rows, [], 'and commits nothing, on either shard');
  t.same((await tx.query('select 6 as n')).rows, [{ n: 6 }], 'the session goes on');

  // The shard behind the blackhole is the first participant: a second shard joining the transaction
  // (which sets lock_timeout on the first) must not wait on it forever either.
  await tx.query('begin');
  await tx.query("insert into fault_kv values ($1, 'tx2')", [k1]);
  relay.mode = 'blackhole';
  const t3 = Date.now();
  const joined = await errorOf(async () => {
    await tx.query("insert into fault_kv values ($1, 'tx2')", [k0]);
    await tx.query('commit');
  });
  const joinMs = Date.now() - t3;
  relay.mode = 'pass';
  await tx.query('rollback').catch(() => undefined);
  t.ok(joined !== null && joinMs < 10_000, `a transaction joining a shard while its first one is blackholed ends in bounded time (${joinMs} ms: ${joined?.code} ${joined?.message})`);
  t.same((await check.query('select k from fault_kv where k = any($1::bigint[])', [[k0, k1]])).rows, [], 'and commits nothing');
  t.same((await tx.query('select 7 as n')).rows, [{ n: 7 }], 'the session goes on');
  const stats = await busy.stop();
  t.same(stats.errors, [], `the client on the direct shard saw nothing (${stats.queries} queries, slowest ${stats.slowestMs} ms)`);
});

t.test('a client that stops reading a large result: memory stays bounded, others unaffected', async (t) => {
  const proxy = await startProxy(t, shards.clusters);
  const rowsWanted = 60_000;
  const rowBytes = 2000;
  const reader = await RawClient.connect(proxy.port);
  t.teardown(() => reader.close());
  const sock = reader.socket;
  sock.removeAllListeners('data');
  sock.pause();
  global.gc?.();
  const baseRss = process.memoryUsage().rss;
  sock.write(serialize.query(`set pgshard.shard = 's1'; select repeat('x', ${rowBytes}) from generate_series(1, ${rowsWanted})`));
  const other = await clientOn(proxy.port, 's1', t);
  const busy = keepBusy(other);
  await sleep(2500);
  const session = [...proxy.server.sessions.values()].find((s) => s.socket.remotePort === sock.localPort)!;
  const buffered = session.socket.writableLength;
  const grown = process.memoryUsage().rss - baseRss;
  t.ok(buffered < 16 << 20, `pgshard buffers ${(buffered / 2 ** 20).toFixed(1)} MB for the client, not the ${((rowsWanted * rowBytes) / 2 ** 20).toFixed(0)} MB result`);
  t.ok(grown < 80 << 20, `the process grew by ${(grown / 2 ** 20).toFixed(0)} MB while the client did not read`);
  const stats = await busy.stop();
  t.same(stats.errors, [], `a client of the same shard was served meanwhile (${stats.queries} queries)`);
  t.ok(stats.slowestMs < 1000, `promptly (slowest ${stats.slowestMs} ms)`);

  // Reading again, the client gets every row.
  const counted = await new Promise<{ rows: number; ok: boolean }>((resolve) => {
    let pending: Buffer = Buffer.alloc(0);
    let rows = 0;
    let readies = 0;
    sock.on('data', (d: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      let pos = 0;
      while (pending.length - pos >= 5) {
        const len = pending.readInt32BE(pos + 1);
        if (pending.length - pos < len + 1) break;
        const type = pending[pos];
        if (type === 0x44) rows++;
        if (type === 0x5a && ++readies === 1) resolve({ rows, ok: true });
        if (type === 0x45) resolve({ rows, ok: false });
        pos += len + 1;
      }
      pending = pending.subarray(pos);
    });
    sock.resume();
  });
  t.same(counted, { rows: rowsWanted, ok: true }, 'once it reads again, the client gets every row');
});
