// `pgshard demo` as a user runs it: a child process from dist/cli.js, three shards under --dir, rows loaded
// through pgshard; Ctrl-C stops everything; a second start on the same dir reuses the data.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../../src/embedded/cluster.js';
import { psql } from '../helpers/tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli.js');
if (!existsSync(cli)) {
  t.fail(`${cli} is missing: build first (npm run build; npm test builds before running tap)`);
  t.end();
} else {
  await main();
}

interface Demo {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startDemo(dir: string, port: number): Demo {
  const child = spawn(process.execPath, [cli, 'demo', '--dir', dir, '--port', String(port)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, out: () => out, exited };
}

/** Resolves once the banner is printed completely; rejects if the child exits or the time runs out. */
async function ready(d: Demo, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void d.exited.then(() => (gone = true));
  while (!/pgshard is running[\s\S]*Ctrl-C stops/.test(d.out())) {
    if (gone) throw new Error(`demo exited before it was ready:\n${d.out().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`demo not ready after ${timeoutMs} ms:\n${d.out().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The shard ports from the banner: "(s0=127.0.0.1:P0, s1=…, s2=…)". */
function shardPorts(out: string): number[] {
  return [...out.matchAll(/s(\d)=127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[2]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Postmaster pids of the demo dir that are still running. */
function runningPostmasters(dir: string): number[] {
  const pids: number[] = [];
  for (const i of [0, 1, 2]) {
    const f = path.join(dir, `shard${i}`, 'postmaster.pid');
    if (!existsSync(f)) continue;
    const pid = Number(readFileSync(f, 'utf8').split('\n')[0]);
    if (pid > 0 && alive(pid)) pids.push(pid);
  }
  return pids;
}

/** Per shard, straight to the shard: users count and committed transactions of database app. */
async function shardStats(ports: number[]): Promise<{ users: number; commits: number }[]> {
  return Promise.all(
    ports.map(async (port) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'app', database: 'app' });
      await c.connect();
      try {
        const u = await c.query('select count(*)::int as n from users');
        const x = await c.query("select xact_commit::bigint as n from pg_stat_database where datname = 'app'");
        return { users: u.rows[0].n as number, commits: Number(x.rows[0].n) };
      } finally {
        await c.end();
      }
    }),
  );
}

async function stop(t: Test, d: Demo, dir: string): Promise<void> {
  const t0 = Date.now();
  d.child.kill('SIGINT');
  const timeout = new Promise<null>((r) => setTimeout(() => r(null), 15_000));
  const r = await Promise.race([d.exited, timeout]);
  t.ok(r !== null, `exits within 15 s of SIGINT (${Date.now() - t0} ms)`);
  t.equal(r?.code, 0, `exit code 0 (got ${r?.code ?? 'none'}${r?.signal ? `, signal ${r.signal}` : ''})`);
  t.same(runningPostmasters(dir), [], 'no postmaster of the demo dir left running');
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshard-demo-'));
  const started: Demo[] = [];
  t.teardown(async () => {
    // Whatever happened above: stop what is still running, then the shards' postmasters by pid.
    for (const d of started) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill('SIGINT');
        await Promise.race([d.exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
      }
    }
    for (const pid of runningPostmasters(dir)) process.kill(pid, 'SIGQUIT');
    await rm(dir, { recursive: true, force: true });
  });

  let first: { users: number; commits: number }[] = [];
  let firstReadyMs = 0;
  await t.test('first start: shards created, data loaded, queries answer, Ctrl-C stops all', async (t) => {
    const port = await freePort();
    const d = startDemo(dir, port);
    started.push(d);
    const t0 = Date.now();
    await ready(d, 240_000);
    firstReadyMs = Date.now() - t0;
    t.pass(`ready after ${firstReadyMs} ms`);
    const url = `postgres://app:app@127.0.0.1:${port}/app`;
    const r = await psql(port, 'select id, name from users where id = 42;\nselect count(*) from users where id = 42;\n', { tuplesOnly: true, args: [] });
    t.equal(r.code, 0, `psql ${url} (${r.stderr.trim()})`);
    t.same(r.stdout.trim().split('\n'), ['42|user 42', '1'], 'the row of key 42, and count(*) by key = 1');
    const ports = shardPorts(d.out());
    t.equal(ports.length, 3, 'banner names three shards');
    // Backends flush their statistics when idle for a while (10 s): wait until the counters settle.
    first = await shardStats(ports);
    for (let i = 0; i < 15; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const now = await shardStats(ports);
      const settled = now.every((x, j) => x.commits - first[j]!.commits < 10);
      first = now;
      if (settled && i >= 5) break;
    }
    t.equal(first.reduce((a, x) => a + x.users, 0), 3000, `3000 users over the shards (${first.map((x) => x.users).join(' + ')})`);
    t.ok(first.every((x) => x.users > 0), 'every shard holds users');
    await stop(t, d, dir);
  });

  await t.test('second start on the same dir reuses the data', async (t) => {
    const port = await freePort();
    const d = startDemo(dir, port);
    started.push(d);
    const t0 = Date.now();
    await ready(d, 120_000);
    const ms = Date.now() - t0;
    t.pass(`ready after ${ms} ms (first start: ${firstReadyMs} ms)`);
    const again = await shardStats(shardPorts(d.out()));
    t.same(
      again.map((x) => x.users),
      first.map((x) => x.users),
      'users per shard unchanged',
    );
    // A reload would commit thousands of INSERTs (one per row) on the shards; a reuse only a handful.
    const delta = again.reduce((a, x, i) => a + x.commits - (first[i]?.commits ?? 0), 0);
    t.ok(delta < 1000, `no reload: ${delta} transactions committed on the shards since the first run`);
    const r = await psql(port, 'select count(*) from users where id = 42;\n', { tuplesOnly: true });
    t.equal(r.stdout.trim(), '1', 'key 42 still answers');
    await stop(t, d, dir);
  });
}
