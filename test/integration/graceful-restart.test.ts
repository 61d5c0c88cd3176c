// Zero-downtime upgrade as the README describes it: SIGTERM makes the old pgshard close its listener at
// once and drain its sessions (open transactions may finish), while a new pgshard takes the port and
// serves new clients. Both are real `pgshard start` processes (dist/cli.js).
import t from 'tap';
import net from 'node:net';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { withShards, APP } from '../helpers/shards.js';
import { directClient, errorOf, pgClient, sleep } from '../helpers/proxy.js';
import { tempDir } from '../helpers/temp-dir.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli.js');
const shards = await withShards(t, 1);
const shard = shards.clusters[0]!;
const setup = await directClient(shard);
await setup.query('create table if not exists upgrade_log (id int primary key, who text)');
await setup.query('truncate upgrade_log');
await setup.end();

const port = await new Promise<number>((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as net.AddressInfo).port;
    s.close(() => resolve(p));
  });
});
const dir = tempDir('upgrade');

/** Starts `pgshard start` with its own instance id (two instances must never share one: see README). */
async function startPgshard(instance: string): Promise<{ child: ChildProcess; exited: Promise<number | null>; output: () => string }> {
  const file = path.join(dir, `${instance}.json`);
  const doc = {
    listen: { host: '127.0.0.1', port },
    auth: { method: 'scram-sha-256' },
    users: [{ name: APP.user, password: APP.password }],
    shards: [{ id: 's0', host: '127.0.0.1', port: shard.port, database: APP.database, user: APP.user, password: APP.password }],
    transactions: { instance_id: instance, log_file: path.join(dir, `txlog-${instance}.jsonl`) },
  };
  await writeFile(file, JSON.stringify(doc)); // YAML is a superset of JSON
  const child = spawn(process.execPath, [cli, 'start', '--config', file, '--grace', '10000'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  for (let i = 0; i < 200 && !out.includes('pgshard listening'); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  return { child, exited, output: () => out };
}

t.test('SIGTERM drains while a new pgshard takes the port', async (t) => {
  const old = await startPgshard('old');
  t.match(old.output(), /pgshard listening/, 'the old pgshard listens');
  const inTx = await pgClient(port, { t });
  const idle = await pgClient(port, { t });
  await inTx.query('begin');
  await inTx.query("insert into upgrade_log values (1, 'old, before SIGTERM')");

  old.child.kill('SIGTERM');
  const next = await startPgshard('new');
  t.match(next.output(), /pgshard listening/, 'a new pgshard binds the same port while the old one drains');
  t.equal(old.child.exitCode, null, 'the old one is still draining');

  const fresh = await pgClient(port, { t });
  await fresh.query("insert into upgrade_log values (2, 'new')");
  t.same((await fresh.query('select count(*)::int as n from upgrade_log')).rows, [{ n: 1 }], "new clients are served by the new pgshard (the old one's transaction is not visible yet)");

  await inTx.query("insert into upgrade_log values (3, 'old, during drain')");
  await inTx.query('commit');
  t.pass('the transaction open at SIGTERM finished on the old pgshard');

  const code = await Promise.race([old.exited, sleep(8000).then(() => 'still running')]);
  t.equal(code, 0, 'the old pgshard exits once its sessions are done');
  const closedIdle = await errorOf(() => idle.query('select 1'));
  t.ok(closedIdle, 'its idle sessions were closed (clients reconnect, to the new pgshard)');
  t.match(String(idle.errors[0]?.message ?? closedIdle?.message), /terminating connection due to administrator command|Connection terminated|not queryable/, 'with 57P01 or a closed connection');
  const again = await pgClient(port, { t });
  t.same((await again.query('select id from upgrade_log order by id')).rows, [{ id: 1 }, { id: 2 }, { id: 3 }], 'nothing was lost');
  next.child.kill('SIGTERM');
  t.equal(await next.exited, 0, 'the new pgshard stops cleanly too');
});
