// pgbench's TPC-B through pgshard over three shards, unmodified: `pgbench -i -s 10` with all four tables
// sharded (accounts by aid, tellers by tid, branches by bid, history by aid) and with branches and tellers
// as reference tables; the TPC-B script with 8 clients in the simple and prepared protocols; then pgshard
// SIGKILLed mid-run and restarted on the same port and transaction log. Afterwards, checked straight on the
// shards: sum(abalance) = sum(tbalance) = sum(bbalance) = sum(history.delta), and no prepared transaction.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../../src/embedded/cluster.js';
import { initHash } from '../../src/routing/hash.js';
import { routeKey } from '../../src/routing/route-cli.js';
import { HashRing } from '../../src/routing/ring.js';
import { canonicalFromText } from '../../src/routing/canonical.js';
import type { Config } from '../../src/config/schema.js';
import { proxyConfigDoc, sleep, startProxy } from '../helpers/proxy.js';
import { withShards } from '../helpers/shards.js';
import { pgbench, type ToolResult } from '../helpers/tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli.js');

const SHARDED = {
  pgbench_accounts: { shard_key: 'aid', key_type: 'bigint' },
  pgbench_tellers: { shard_key: 'tid', key_type: 'bigint' },
  pgbench_branches: { shard_key: 'bid', key_type: 'bigint' },
  pgbench_history: { shard_key: 'aid', key_type: 'bigint' },
} as const;
const WITH_REFERENCE = {
  pgbench_accounts: SHARDED.pgbench_accounts,
  pgbench_history: SHARDED.pgbench_history,
  pgbench_tellers: { reference: true },
  pgbench_branches: { reference: true },
} as const;

const SCALE = 10;
const CLIENTS = 8;
const SECONDS = Number(process.env.PGSHARD_TPCB_SECONDS ?? 6);

await initHash();
const shards = await withShards(t, 3, { settings: { max_connections: 100, synchronous_commit: 'off' } });
const clusters = shards.clusters;
const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshard-tpcb-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

function transactions(instance: string) {
  return { instance_id: instance, log_file: path.join(dir, `txlog-${instance}.jsonl`), recovery_interval_ms: 1000 };
}

/** The numbers pgbench prints. */
function report(r: ToolResult) {
  const num = (re: RegExp) => {
    const m = re.exec(r.stdout);
    return m ? Number(m[1]) : null;
  };
  return { processed: num(/number of transactions actually processed: (\d+)/) ?? 0, failed: num(/number of failed transactions: (\d+)/) ?? 0 };
}

/** The TPC-B sums, read straight from the shards; a reference table is read on each shard and must agree. */
async function sums(t: Test, reference: boolean) {
  const sumOf = async (sql: string) => Promise.all(clusters.map(async (c) => BigInt((await c.query<{ s: string | null }>(sql, 'app'))[0]!.s ?? '0')));
  const total = (parts: bigint[]) => parts.reduce((a, b) => a + b, 0n);
  const accounts = total(await sumOf('select sum(abalance)::text as s from pgbench_accounts'));
  const history = total(await sumOf('select sum(delta)::text as s from pgbench_history'));
  const tellerParts = await sumOf('select sum(tbalance)::text as s from pgbench_tellers');
  const branchParts = await sumOf('select sum(bbalance)::text as s from pgbench_branches');
  if (reference) {
    t.same(new Set(tellerParts).size, 1, `pgbench_tellers identical on every shard (${tellerParts.join(', ')})`);
    t.same(new Set(branchParts).size, 1, `pgbench_branches identical on every shard (${branchParts.join(', ')})`);
  }
  const tellers = reference ? tellerParts[0]! : total(tellerParts);
  const branches = reference ? branchParts[0]! : total(branchParts);
  const rows = total(await sumOf('select count(*)::text as s from pgbench_history'));
  return { accounts, tellers, branches, history, rows };
}

async function invariantHolds(t: Test, reference: boolean, what: string): Promise<void> {
  const s = await sums(t, reference);
  t.ok(s.rows > 0n, `${what}: ${s.rows} history rows`);
  t.equal(s.accounts, s.history, `${what}: sum(abalance) = sum(delta) = ${s.history}`);
  t.equal(s.tellers, s.history, `${what}: sum(tbalance) = sum(delta)`);
  t.equal(s.branches, s.history, `${what}: sum(bbalance) = sum(delta)`);
}

async function historyRows(): Promise<bigint> {
  const n = await Promise.all(clusters.map(async (c) => BigInt((await c.query<{ n: string }>('select count(*) as n from pgbench_history', 'app'))[0]!.n)));
  return n.reduce((a, b) => a + b, 0n);
}

async function preparedLeft(): Promise<number> {
  const n = await Promise.all(clusters.map(async (c) => Number((await c.query<{ n: string }>('select count(*) as n from pg_prepared_xacts', 'app'))[0]!.n)));
  return n.reduce((a, b) => a + b, 0);
}

/** Every row of a sharded pgbench table (every 10th account) is on the shard `pgshard route` names, and every shard has some. */
async function placement(t: Test, table: string, key: string, config: Config): Promise<void> {
  const ids = ['s0', 's1', 's2'];
  // routeKey builds the ring per call: check it agrees on a few keys, then use one ring for all rows.
  const ring = HashRing.build(config.shards, config.ring.vnodes);
  const owner = (k: string) => ring.shardFor(canonicalFromText('bigint', k));
  for (const k of ['1', '2', '99999']) t.equal(owner(k), routeKey(config, table, k).shard);
  for (const [i, c] of clusters.entries()) {
    const rows = await c.query<{ k: string }>(`select ${key}::text as k from ${table}${table === 'pgbench_accounts' ? ' where aid % 10 = 0' : ''}`, 'app');
    const misplaced = rows.filter((r) => owner(r.k) !== ids[i]).length;
    t.ok(rows.length > 0 && misplaced === 0, `${table} on ${ids[i]}: ${rows.length} rows checked, ${misplaced} misplaced`);
  }
}

async function init(t: Test, port: number): Promise<void> {
  const started = Date.now();
  const r = await pgbench(port, ['-i', '-s', String(SCALE), '-q'], { timeoutMs: 180_000 });
  t.equal(r.code, 0, `pgbench -i -s ${SCALE} through pgshard in ${((Date.now() - started) / 1000).toFixed(1)} s${r.code ? ':\n' + r.stderr.slice(-2000) : ''}`);
}

t.test('branches and tellers as reference tables: pgbench -i, then TPC-B', async (t) => {
  const proxy = await startProxy(t, clusters, { tables: WITH_REFERENCE, transactions: transactions('tpcbref') });
  await init(t, proxy.port);
  const [accounts, branches] = await Promise.all([
    Promise.all(clusters.map(async (c) => Number((await c.query<{ n: string }>('select count(*) as n from pgbench_accounts', 'app'))[0]!.n))),
    Promise.all(clusters.map(async (c) => Number((await c.query<{ n: string }>('select count(*) as n from pgbench_branches', 'app'))[0]!.n))),
  ]);
  t.equal(accounts.reduce((a, b) => a + b, 0), SCALE * 100_000, `${SCALE * 100_000} accounts over the shards (${accounts.join(', ')})`);
  t.same(branches, [SCALE, SCALE, SCALE], 'every shard holds every branch');
  await placement(t, 'pgbench_accounts', 'aid', proxy.config);
  const r = await pgbench(proxy.port, ['-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', '2', '-T', String(Math.ceil(SECONDS / 2))], { timeoutMs: 120_000 });
  t.equal(r.code, 0, r.code ? r.stderr.slice(-2000) : 'TPC-B: pgbench exits 0');
  t.ok(report(r).processed > 0, `${report(r).processed} transactions, ${report(r).failed} failed`);
  await invariantHolds(t, true, 'reference branches and tellers');
  t.equal(await preparedLeft(), 0, 'no prepared transaction left');
});

t.test('all four tables sharded: pgbench -i, TPC-B in the simple and prepared protocols', async (t) => {
  const proxy = await startProxy(t, clusters, { tables: SHARDED, transactions: transactions('tpcb') });
  await init(t, proxy.port);
  await placement(t, 'pgbench_accounts', 'aid', proxy.config);
  await placement(t, 'pgbench_branches', 'bid', proxy.config);
  await placement(t, 'pgbench_tellers', 'tid', proxy.config);
  for (const mode of ['simple', 'prepared']) {
    const r = await pgbench(proxy.port, ['-n', '-M', mode, '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS)], { timeoutMs: 120_000 });
    t.equal(r.code, 0, r.code ? r.stderr.slice(-2000) : `-M ${mode}: pgbench exits 0`);
    const rep = report(r);
    t.ok(rep.processed > 0, `-M ${mode}: ${rep.processed} transactions, ${rep.failed} failed (serialization/deadlock)`);
    await invariantHolds(t, false, `after -M ${mode}`);
    t.equal(await preparedLeft(), 0, `-M ${mode}: no prepared transaction left`);
  }
  await placement(t, 'pgbench_history', 'aid', proxy.config);
});

interface Child {
  proc: ChildProcess;
  exited: Promise<void>;
  log: () => string;
}

/** pgshard as a user runs it (dist/cli.js start --config), listening on `port`. */
async function startChild(config: string, port: number): Promise<Child> {
  const proc = spawn(process.execPath, [cli, 'start', '--config', config], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 30_000;
  while (!/pgshard listening/.test(log)) {
    if (gone) throw new Error(`pgshard exited before listening:\n${log.slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`pgshard not listening on ${port} after 30 s:\n${log.slice(-3000)}`);
    await sleep(100);
  }
  return { proc, exited, log: () => log };
}

t.test('pgshard SIGKILLed three times during TPC-B: after restart and recovery, the balances add up', async (t) => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: npm test builds it first (npm run build)`);
  const port = await freePort();
  const doc = proxyConfigDoc(clusters, {
    listen: { host: '127.0.0.1', port },
    tables: SHARDED,
    transactions: transactions('tpcbcrash'),
    log: { level: 'info' },
  });
  const config = path.join(dir, 'crash.yaml');
  await writeFile(config, stringify(doc));
  let child = await startChild(config, port);
  t.teardown(() => {
    child.proc.kill('SIGKILL');
  });
  const before = await sums(t, false);
  let committed = 0;
  for (let kill = 1; kill <= 3; kill++) {
    const start = await historyRows();
    const run = pgbench(port, ['-n', '-M', kill === 2 ? 'prepared' : 'simple', '-c', String(CLIENTS), '-j', '2', '-T', '60'], { timeoutMs: 90_000 });
    // Kill in the middle of the run, whatever the machine's load: once transactions are committing.
    const until = Date.now() + 45_000;
    while ((await historyRows()) < start + 30n * BigInt(kill) && Date.now() < until) await sleep(100);
    await sleep(50 * kill);
    child.proc.kill('SIGKILL');
    await child.exited;
    const r = await run;
    t.not(r.code, 0, `segment ${kill}: pgbench saw pgshard go away (exit ${r.code})`);
    committed += report(r).processed;
    child = await startChild(config, port);
    const recovered = [...child.log().matchAll(/"action":"(commit|rollback)"[^\n]*recovered prepared transaction|recovered prepared transaction[^\n]*"action":"(commit|rollback)"/g)].map((m) => m[1] ?? m[2]);
    t.match(child.log(), /pgshard listening/, `restarted on port ${port} with the same transaction log`);
    t.comment(`recovery at restart ${kill}: ${recovered.filter((a) => a === 'commit').length} prepared transaction(s) committed, ${recovered.filter((a) => a === 'rollback').length} rolled back`);
  }
  // Recovery ran before listening; a PREPARE still running on a shard when pgshard died is finished by the
  // periodic recovery (every second here).
  const deadline = Date.now() + 20_000;
  while ((await preparedLeft()) > 0 && Date.now() < deadline) await sleep(250);
  t.equal(await preparedLeft(), 0, 'no prepared transaction left after recovery');
  const after = await sums(t, false);
  t.ok(after.rows > before.rows, `TPC-B made progress between the kills (${after.rows - before.rows} history rows; pgbench counted ${committed} before it lost pgshard)`);
  await invariantHolds(t, false, 'after three SIGKILLs');
  // pgshard still serves TPC-B after all that.
  const r = await pgbench(port, ['-n', '-c', '2', '-t', '20'], { timeoutMs: 60_000 });
  t.equal(r.code, 0, r.code ? r.stderr.slice(-2000) : 'a TPC-B run after recovery exits 0');
  await invariantHolds(t, false, 'after the last run');
  t.equal(await preparedLeft(), 0);
  child.proc.kill('SIGTERM');
  await Promise.race([child.exited, sleep(5000)]);
});
