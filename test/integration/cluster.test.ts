// `workers: 2`: pgshard as its own process (the built CLI), a primary and two workers sharing the
// listening ports. Connections are spread over both workers; a CancelRequest reaches the worker running
// the query whichever worker it lands on; /metrics sums the workers; a shard is added under load and
// every worker switches ring with every acknowledged row in place; a worker killed with SIGKILL is
// replaced; SIGTERM stops everything.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { withShards, APP } from '../helpers/shards.js';
import { sleep } from '../helpers/proxy.js';
import { sendCancelRequest } from '../helpers/raw-client.js';
import { initHash } from '../../src/routing/hash.js';
import { HashRing } from '../../src/routing/ring.js';
import { adminApi, checkPlacement, preload, rebalanceEnded, SCHEMA, startLoad, TABLES, type Expected } from '../helpers/rebalance-load.js';
import { tempDir } from '../helpers/temp-dir.js';

await initHash();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/cli.js');

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

t.test('two workers behind one port', async (t) => {
  const shards = await withShards(t, 4);
  const [c0, c1, c2, c3] = shards.clusters;
  for (const c of [c0!, c1!, c2!]) await c.query(SCHEMA, 'app');
  const dir = tempDir('cluster');
  const [port, adminPort] = [await freePort(), await freePort()];
  const configFile = path.join(dir, 'pgshard.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      workers: 2,
      users: [{ name: APP.user, password: APP.password }],
      shards: [c0!, c1!, c2!].map((c, i) => ({ id: `s${i}`, host: '127.0.0.1', port: c.port, database: APP.database, user: APP.user, password: APP.password })),
      tables: TABLES,
      admin: { host: '127.0.0.1', port: adminPort },
      topology: { file: path.join(dir, 'topology.json') },
      transactions: { instance_id: 'ct', log_file: path.join(dir, 'txlog.jsonl') },
      rebalance: { max_pause_ms: 2000, batch_rows: 500 },
      log: { level: process.env.PGSHARD_TEST_LOG ?? 'warn' },
    }),
  );
  const proc: ChildProcess = spawn(process.execPath, [CLI, 'start', '--config', configFile], { stdio: ['ignore', 'ignore', process.env.PGSHARD_TEST_LOG ? 'inherit' : 'ignore'] });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  t.teardown(() => void proc.kill('SIGKILL'));
  const api = adminApi(adminPort);
  const workers = async () => ((await api('GET', '/instances')).body.instances as { id: string; address: string }[]) ?? [];
  for (let i = 0; i < 300 && (await workers().catch(() => [])).length < 2; i++) await sleep(100);
  const listed = await workers();
  t.same(listed.map((w) => w.id), ['ctw0', 'ctw1'], 'two workers, each an instance of its own');
  const url = `postgres://${APP.user}:${APP.password}@127.0.0.1:${port}/${APP.database}`;

  // Connections land on both workers (their backend pids differ per worker: pg_backend_pid is the shard's,
  // so ask the console, which each worker answers for its own clients).
  const clients = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  const console = new pg.Client({ connectionString: `postgres://${APP.user}:${APP.password}@127.0.0.1:${port}/pgshard` });
  await console.connect();
  const seenBy = (await console.query('SHOW CLIENTS')).rows.length;
  t.ok(seenBy >= 1 && seenBy < 7, `a worker sees only its own clients (${seenBy} of 7)`);
  await console.end();

  // A CancelRequest arrives on a new connection, on either worker: every cancel reaches its query (round
  // robin puts most of them on the other worker; without passing them on, those are lost: checked).
  for (const c of clients) {
    const q = c.query('SELECT pg_sleep(30)').then(
      () => null,
      (e: Error & { code?: string }) => e.code,
    );
    await sleep(150);
    // A CancelRequest on a connection of its own, as libpq sends it (round robin puts it on either worker).
    const key = c as unknown as { processID: number; secretKey: number };
    await sendCancelRequest(port, key.processID, key.secretKey);
    t.equal(await q, '57014', 'cancelled');
  }
  for (const c of clients) await c.end();

  // Metrics are every worker's: the two workers' accepted connections are summed.
  const metricsText = async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const connected = (text: string) => Number(/^pgshard_clients_connected (\S+)/m.exec(text)?.[1]);
  const hold = Array.from({ length: 4 }, () => new pg.Client({ connectionString: url }));
  for (const c of hold) await c.connect();
  t.equal(connected(await metricsText()), 4, 'pgshard_clients_connected counts the clients of both workers');
  t.equal(Number(/^pgshard_build_info\{[^}]*\} (\S+)/m.exec(await metricsText())?.[1]), 1, 'build_info stays 1 (not summed)');
  for (const c of hold) await c.end();

  // A shard added under load through both workers.
  const expected = new Map<bigint, Expected>();
  await preload(url, expected);
  const load = startLoad([url], 4, expected);
  try {
    await sleep(500);
    const add = await api('POST', '/shards', { id: 's3', host: '127.0.0.1', port: c3!.port, database: APP.database, user: APP.user, password: APP.password, weight: 1 });
    t.equal(add.status, 202, 'adding s3 started');
    const done = await rebalanceEnded(api, 'add s3');
    t.equal(done.state, 'done', `add s3: ${done.error ?? 'done'}`);
    t.comment(`add s3 with two workers: copied ${done.rows_copied} rows, cut-over pause ${done.pause_ms} ms`);
    await sleep(500);
  } finally {
    await load.stop();
  }
  t.same(load.errors, [], 'no client saw an error');
  const ring = HashRing.build(['s0', 's1', 's2', 's3'].map((id) => ({ id, weight: 1 })), 256);
  await checkPlacement(t, { s0: c0!, s1: c1!, s2: c2!, s3: c3! }, ring, expected);
  const rings = await Promise.all(Array.from({ length: 6 }, async () => (await api('GET', '/ring')).body.points));
  t.ok(rings.every((p) => p === 1024), 'every worker answers with the ring of four shards');

  // SIGKILL of one worker: the primary starts another with the same index; clients carry on.
  const victim = Number(/pid (\d+)/.exec(listed[0]!.address)?.[1]);
  t.ok(victim > 0, `worker 0 is pid ${victim}`);
  process.kill(victim, 'SIGKILL');
  let back: { id: string; address: string }[] = [];
  for (let i = 0; i < 100; i++) {
    back = await workers().catch(() => []);
    if (back.length === 2 && !back.some((w) => w.address.includes(`pid ${victim}`))) break;
    await sleep(100);
  }
  t.same(back.map((w) => w.id), ['ctw0', 'ctw1'], 'worker 0 is back');
  const after = new pg.Client({ connectionString: url });
  await after.connect();
  t.equal((await after.query('SELECT count(*)::int AS n FROM users')).rows[0].n, expected.size, 'every row still served');
  await after.end();

  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops the primary and its workers');
});
