import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { clientBinaries, findServerBinaries } from '../../src/embedded/binaries.js';
import { PostgresCluster, cleanStaleClusters, freePort } from '../../src/embedded/cluster.js';
import { childrenOf, isAlive } from '../../src/embedded/processes.js';
import { registryDir, type RegistryEntry } from '../../src/embedded/registry.js';
import { APP, withShards } from '../helpers/shards.js';
import { psql } from '../helpers/tools.js';

async function appClient(c: PostgresCluster, password: string = APP.password): Promise<pg.Client> {
  const client = new pg.Client({ host: c.host, port: c.port, user: APP.user, password, database: APP.database });
  await client.connect();
  return client;
}

async function one(c: PostgresCluster, sql: string): Promise<unknown> {
  const client = await appClient(c);
  try {
    return Object.values((await client.query(sql)).rows[0] as Record<string, unknown>)[0];
  } finally {
    await client.end();
  }
}

function registryFile(ownerPid: number, port: number): string {
  return path.join(registryDir(), `${ownerPid}-${port}.json`);
}

/** A pid that certainly belonged to a process which has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(r.stdout);
  if (isAlive(pid)) throw new Error('the probe process is still alive');
  return pid;
}

t.test('binaries', async (t) => {
  const b = await findServerBinaries();
  t.match(b.version, /^\d+\.\d+$/);
  t.ok(['embedded', 'system'].includes(b.source));
  t.ok(existsSync(path.join(b.bin, 'postgres')));
  const cb = await clientBinaries();
  t.comment(`server: ${b.source} ${b.version} (${b.bin}); psql: ${cb.psql}; pgbench: ${cb.pgbench}`);
  t.type(await freePort(), 'number');
});

t.test('two shards: auth, settings, 2PC, crash and restart, stop', async (t) => {
  const t0 = Date.now();
  const shards = await withShards(t, 2);
  t.comment(`2 clusters started in parallel in ${Date.now() - t0} ms (PostgreSQL ${shards.clusters[0]!.version})`);
  t.equal(shards.clusters.length, 2);
  t.not(shards.ports[0], shards.ports[1]);

  for (const c of shards.clusters) {
    t.ok(c.running, `postmaster ${c.pid} runs on port ${c.port}`);
    t.equal(await one(c, 'show max_prepared_transactions'), '100');
    t.equal(await one(c, 'show wal_level'), 'logical');
    t.equal(await one(c, 'select current_user'), 'app');
    t.ok(existsSync(registryFile(process.pid, c.port)), 'registered');
  }

  const [a, b] = shards.clusters as [PostgresCluster, PostgresCluster];

  await t.test('scram-sha-256 over TCP', async (t) => {
    const rows = await a.query<{ rolpassword: string }>("select rolpassword from pg_authid where rolname = 'app'");
    t.match(rows[0]!.rolpassword, /^SCRAM-SHA-256\$/);
    await t.rejects(appClient(a, 'wrong'), /password authentication failed/);
    if (Number(a.version.split('.')[0]) >= 16) t.equal(await one(a, 'select system_user'), 'scram-sha-256:app');
  });

  await t.test('PREPARE TRANSACTION, surviving a crash', async (t) => {
    const client = await appClient(a);
    await client.query('create table kv (k int primary key, v text)');
    await client.query('begin');
    await client.query("insert into kv values (1, 'one')");
    await client.query("prepare transaction 'pgshard_t1'");
    await client.query("commit prepared 'pgshard_t1'");
    await client.query('begin');
    await client.query("insert into kv values (2, 'two')");
    await client.query("prepare transaction 'pgshard_t2'");
    await client.end();

    const oldPid = a.pid!;
    const backends = childrenOf(oldPid);
    t.ok(backends.length > 0, 'the postmaster has children');
    await a.kill();
    t.notOk(isAlive(oldPid), 'postmaster SIGKILLed');
    t.notOk(backends.some(isAlive), 'its backends too');
    t.equal(a.pid, null);
    await t.rejects(appClient(a), 'nothing listens after kill()');

    await a.restart();
    t.ok(a.running);
    t.not(a.pid, oldPid);
    t.same(await a.query("select gid from pg_prepared_xacts", 'app'), [{ gid: 'pgshard_t2' }]);
    await a.query("commit prepared 'pgshard_t2'", 'app');
    t.same(await a.query('select k, v from kv order by k', 'app'), [
      { k: 1, v: 'one' },
      { k: 2, v: 'two' },
    ]);
  });

  await t.test('restart of a running cluster keeps port and data', async (t) => {
    const port = b.port;
    await b.query('create table t (x int)', 'app');
    await b.restart();
    t.equal(b.port, port);
    t.same(await b.query('select count(*)::int as n from t', 'app'), [{ n: 0 }]);
  });

  await t.test('psql helper', async (t) => {
    t.ok((await clientBinaries()).psql, 'psql is installed (the suite drives real psql; .ci/run installs it)');
    const r = await psql(b.port, 'select 40 + 2;', { tuplesOnly: true });
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout.trim(), '42');
    const bad = await psql(b.port, 'select nope;');
    t.equal(bad.code, 3);
    t.match(bad.stderr, /column "nope" does not exist/);
  });

  await t.test('stop() leaves no postmaster', async (t) => {
    const pid = b.pid!;
    const kids = childrenOf(pid);
    await b.stop();
    t.notOk(isAlive(pid));
    t.notOk(kids.some(isAlive));
    t.notOk(existsSync(registryFile(process.pid, b.port)), 'unregistered');
    t.notOk(existsSync(path.join(b.dataDir, 'postmaster.pid')), 'clean shutdown removed postmaster.pid');
    await b.stop(); // idempotent
  });
});

t.test('cleanStaleClusters stops a cluster whose owner died', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgshard-test-stale-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const c = await PostgresCluster.start({ dataDir: path.join(root, 'd') });
  t.teardown(() => c.stop());
  const pid = c.pid!;

  // make the registry say that a process which has exited owns this cluster
  const dead = deadPid();
  const ours = registryFile(process.pid, c.port);
  const entry = JSON.parse(await readFile(ours, 'utf8')) as RegistryEntry;
  await writeFile(registryFile(dead, c.port), JSON.stringify({ ...entry, ownerPid: dead, ownerStartTime: undefined }));
  await rm(ours);

  const stopped = await cleanStaleClusters();
  t.ok(stopped.some((e) => e.postmasterPid === pid && e.ownerPid === dead), 'reported');
  t.notOk(isAlive(pid), 'postmaster stopped');
  t.notOk(existsSync(registryFile(dead, c.port)), 'entry removed');
});

t.test('cleanStaleClusters leaves clusters of live owners alone', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgshard-test-live-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const c = await PostgresCluster.start({ dataDir: path.join(root, 'd') });
  t.teardown(() => c.stop());
  await cleanStaleClusters();
  t.ok(c.running);
});

t.test('reuse: keeps data, stops a postmaster left running in the data directory', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgshard-test-reuse-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dataDir = path.join(root, 'demo');
  const users = [{ name: 'demo', password: 'demo' }];
  const databases = [{ name: 'demo', owner: 'demo' }];

  const first = await PostgresCluster.start({ dataDir, reuse: true, users, databases, settings: { fsync: 'on' } });
  await first.query('create table kept (x int); insert into kept values (7)', 'demo');
  const orphan = first.pid!;

  // as if the demo had been SIGKILLed: its postmaster still runs when the next one starts
  const second = await PostgresCluster.start({ dataDir, reuse: true, users, databases });
  t.teardown(() => second.stop());
  t.notOk(isAlive(orphan), 'the old postmaster was stopped');
  t.same(await second.query('select x from kept', 'demo'), [{ x: 7 }]);
  t.equal(await second.query("select setting from pg_settings where name = 'fsync'").then((r) => r[0]!.setting), 'off');
  await second.stop();

  // and without reuse the directory is wiped
  const third = await PostgresCluster.start({ dataDir });
  t.teardown(() => third.stop());
  t.same(await third.query("select count(*)::int as n from pg_database where datname = 'demo'"), [{ n: 0 }]);
  await third.stop();

  await writeFile(path.join(root, 'precious.txt'), 'x');
  await t.rejects(PostgresCluster.start({ dataDir: root }), /refusing to wipe/);
  t.ok(existsSync(path.join(root, 'precious.txt')));
});

t.test('md5 and password auth', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgshard-test-auth-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const c = await PostgresCluster.start({
    dataDir: path.join(root, 'd'),
    auth: 'md5',
    users: [{ name: 'm', password: 'secret' }],
  });
  t.teardown(() => c.stop());
  const rows = await c.query<{ rolpassword: string }>("select rolpassword from pg_authid where rolname = 'm'");
  t.match(rows[0]!.rolpassword, /^md5/);
  const client = new pg.Client(c.connectionConfig('m', 'secret'));
  await client.connect();
  await client.end();
  t.equal(c.url('m', 's p', 'db'), `postgres://m:s%20p@127.0.0.1:${c.port}/db`);
});
