// A rebalance interrupted by SIGKILL of pgshard is rolled back on restart (the ring still routes to shards
// holding all its rows; slots, publications and the copies are gone; the tables it created on the new shard
// are dropped, those the shard had before stay untouched), and a cancelled one too; both driven through the
// `pgshard` command line against a pgshard running as its own process.
import t from 'tap';
const tap = t;
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { withShards, APP } from '../helpers/shards.js';
import { sleep } from '../helpers/proxy.js';
import { initHash } from '../../src/routing/hash.js';
import { canonicalFromText } from '../../src/routing/canonical.js';
import { HashRing } from '../../src/routing/ring.js';
import { tempDir } from '../helpers/temp-dir.js';

await initHash();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/cli.js');
const ROWS = 40_000;
const TOKEN = 'crash-test-token';

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('SIGKILL half-way, then cancel, then add: through the CLI', async (t) => {
  const shards = await withShards(t, 4);
  const [c0, c1, c2, c3] = shards.clusters;
  for (const c of [c0!, c1!, c2!])
    await c.query('CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); CREATE TABLE countries (code text PRIMARY KEY);', 'app');
  // The shard to add already has a table of the schema (empty) and one of its own: a roll-back leaves both.
  await c3!.query(`CREATE TABLE countries (code text PRIMARY KEY); CREATE TABLE keepme (id int PRIMARY KEY, note text); INSERT INTO keepme VALUES (1, 'mine');`, 'app');
  const newShardTables = async () => (await c3!.query<{ t: string }>(`SELECT string_agg(tablename, ',' ORDER BY tablename) AS t FROM pg_tables WHERE schemaname = 'public'`, 'app'))[0]!.t;
  const untouched = async (t: typeof tap, when: string) => {
    t.equal(await newShardTables(), 'countries,keepme', `${when}: the tables the rebalance created on s3 are gone, those it had stay`);
    t.same(await c3!.query('SELECT id, note FROM keepme', 'app'), [{ id: 1, note: 'mine' }], `${when}: the table of s3's own is untouched`);
  };
  const dir = tempDir('crash');
  const [port, adminPort] = [await freePort(), await freePort()];
  const configFile = path.join(dir, 'pgshard.yaml');
  const shardDoc = (i: number, c: { port: number }) => ({ id: `s${i}`, host: '127.0.0.1', port: c.port, database: APP.database, user: APP.user, password: APP.password });
  writeFileSync(
    configFile,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      users: [{ name: APP.user, password: APP.password }],
      shards: [c0!, c1!, c2!].map((c, i) => shardDoc(i, c)),
      tables: { users: { shard_key: 'id', key_type: 'bigint' } },
      admin: { host: '127.0.0.1', port: adminPort, token: TOKEN },
      topology: { file: path.join(dir, 'topology.json') },
      transactions: { log_file: path.join(dir, 'txlog.jsonl') },
      rebalance: { batch_rows: 50 },
      log: { level: process.env.PGSHARD_TEST_LOG ?? 'warn' },
    }),
  );
  let proc: ChildProcess | null = null;
  const start = async () => {
    proc = spawn(process.execPath, [CLI, 'start', '--config', configFile], { stdio: ['ignore', 'ignore', process.env.PGSHARD_TEST_LOG ? 'inherit' : 'ignore'] });
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(`http://127.0.0.1:${adminPort}/health`).then((r) => r.ok).catch(() => false);
      if (ok) return;
      await sleep(100);
    }
    throw new Error('pgshard did not start');
  };
  t.teardown(() => void proc?.kill('SIGKILL'));
  await start();
  const admin = ['--config', configFile];
  const status = async () =>
    (await (await fetch(`http://127.0.0.1:${adminPort}/rebalance`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as Record<string, unknown>;
  const cliStatus = await cli(['rebalance', 'status', '--json', ...admin]);
  t.same(JSON.parse(cliStatus.stdout), { state: 'none' }, 'pgshard rebalance status --json before any rebalance');

  const client = new pg.Client({ connectionString: `postgres://app:app@127.0.0.1:${port}/app` });
  await client.connect();
  for (let i = 0; i < ROWS; i += 1000) await client.query(`INSERT INTO users (id, name) VALUES ${Array.from({ length: 1000 }, (_, k) => `(${i + k + 1}, 'n${i + k + 1}')`).join(',')}`);
  await client.end();

  const listed = await cli(['shards', 'list', ...admin]);
  t.equal(listed.code, 0, listed.stderr);
  t.match(listed.stdout, /^ID\s+ADDRESS\s+DATABASE\s+WEIGHT\s+UP\s+STATUS/);
  t.equal(listed.stdout.trim().split('\n').length, 4, 'three shards listed');
  const noToken = await cli(['shards', 'list', '--admin', `http://127.0.0.1:${adminPort}`], { PGSHARD_CONFIG: '' });
  t.equal(noToken.code, 1);
  t.match(noToken.stderr, /needs a token/);

  // A writer inserts through pgshard all along, recording each acknowledged row; while pgshard is down its
  // connection fails and it reconnects. An error on a connection made since the last restart is a failure.
  const acked = new Set<number>();
  const attempted = new Set<number>();
  const writerErrors: string[] = [];
  let generation = 0;
  let paused = false;
  let stopWriter = false;
  let idle: (() => void) | null = null;
  const writer = (async () => {
    let next = 1_000_000;
    let conn: pg.Client | null = null;
    let connGen = -1;
    while (!stopWriter) {
      if (paused) {
        idle?.();
        await sleep(20);
        continue;
      }
      try {
        if (!conn) {
          connGen = generation;
          conn = new pg.Client({ connectionString: `postgres://app:app@127.0.0.1:${port}/app` });
          conn.on('error', () => undefined);
          await conn.connect();
        }
        const id = ++next;
        attempted.add(id);
        await conn.query('INSERT INTO users (id, name) VALUES ($1, $2)', [id, `w${id}`]);
        acked.add(id);
      } catch (e) {
        if (connGen === generation && !restarting) writerErrors.push((e as Error).message);
        await conn?.end().catch(() => undefined);
        conn = null;
        await sleep(100);
      }
    }
    await conn?.end().catch(() => undefined);
  })();
  let restarting = false;
  const pauseWriter = () => new Promise<void>((r) => ((idle = r), (paused = true)));
  const resumeWriter = () => ((idle = null), (paused = false));
  const kill = async () => {
    restarting = true;
    generation++;
    proc!.kill('SIGKILL');
    await new Promise((r) => proc!.once('exit', r));
  };
  const restart = async () => {
    await start();
    restarting = false;
  };
  t.teardown(() => void (stopWriter = true));

  // 1. SIGKILL while copying.
  const add = ['shards', 'add', '--id', 's3', '--host', '127.0.0.1', '--port', String(c3!.port), '--database', 'app', '--user', 'app', '--password', 'app', ...admin];
  const started = await cli([...add, '--no-wait']);
  t.equal(started.code, 0, started.stderr);
  for (let i = 0; ; i++) {
    const s = await status();
    if (s.state === 'copying' && Number(s.rows_scanned) > 0) break;
    if (i > 600 || ['done', 'failed'].includes(String(s.state))) throw new Error(`never caught it copying: ${JSON.stringify(s)}`);
    await sleep(20);
  }
  await kill();
  const persisted = JSON.parse(readFileSync(path.join(dir, 'topology.json'), 'utf8')) as { rebalance: { phase: string; created?: { tables: string[] } } };
  t.equal(persisted.rebalance.phase, 'copying', 'killed while copying');
  t.same(persisted.rebalance.created?.tables, ['users'], 'the record names the table it created on s3, not those s3 had');
  t.equal(await newShardTables(), 'countries,keepme,users');
  t.ok((await c0!.query('SELECT 1 FROM pg_replication_slots', 'app')).length > 0, 'the kill left a slot behind');
  await restart();
  let after: Record<string, unknown> = {};
  for (let i = 0; i < 300; i++) {
    after = await status();
    if (after.state !== 'copying') break;
    await sleep(100);
  }
  t.equal(after.state, 'failed');
  t.match(String(after.error), /interrupted in phase copying \(pgshard restarted\); rolled back: start it again/);
  await checkPlacement(t, ['s0', 's1', 's2'], 'after the roll-back');
  await untouched(t, 'after the roll-back');

  // 2. Cancel. A transaction left open on s0 holds the rebalance where it makes s0's slot (a slot's snapshot
  // waits for the transactions running then), so that the cancel surely comes before the switch.
  const holder = new pg.Client({ connectionString: `postgres://app:app@127.0.0.1:${c0!.port}/app` });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT txid_current()');
  t.equal((await cli([...add, '--no-wait'])).code, 0);
  for (let i = 0; (await status()).state !== 'copying'; i++) {
    if (i > 600) throw new Error(`never saw it copying: ${JSON.stringify(await status())}`);
    await sleep(20);
  }
  const cancelled = await cli(['rebalance', 'cancel', '--no-wait', ...admin]);
  t.equal(cancelled.code, 0, cancelled.stderr + cancelled.stdout);
  t.match(cancelled.stdout, /cancelling/);
  await holder.query('COMMIT');
  await holder.end();
  const settled = await cli(['rebalance', 'status', '--wait', ...admin]);
  t.match(settled.stdout, /add s3: cancelled/);
  t.equal((await status()).state, 'cancelled');
  const again = await cli(['rebalance', 'cancel', ...admin]);
  t.equal(again.code, 1);
  t.match(again.stderr, /no rebalance is running/);
  await checkPlacement(t, ['s0', 's1', 's2'], 'after the cancel');
  await untouched(t, 'after the cancel');

  // 3. Add for real, waiting with the progress output.
  const done = await cli(add);
  t.equal(done.code, 0, done.stderr);
  t.match(done.stdout, /100% add s3: done, rows (\d+)\/\1 read, \d+ moved/);
  await checkPlacement(t, ['s0', 's1', 's2', 's3'], 'after the add');
  t.equal(await newShardTables(), 'countries,keepme,users', 'the add created users on s3 again');
  const finalList = await cli(['shards', 'list', ...admin]);
  t.match(finalList.stdout, /^s3\s+127\.0\.0\.1:\d+\s+app\s+1\s+/m);

  // 4. SIGKILL after the switch, while the moved rows are deleted from their old shard: the restart finishes.
  t.equal((await cli(['shards', 'remove', 's3', '--no-wait', ...admin])).code, 0);
  for (let i = 0; ; i++) {
    const s = await status();
    if (s.state === 'cleaning') break;
    if (i > 3000 || ['done', 'failed'].includes(String(s.state))) throw new Error(`never caught it cleaning: ${JSON.stringify(s)}`);
    await sleep(5);
  }
  await kill();
  const left = Number((await c3!.query<{ n: string }>('SELECT count(*) AS n FROM users', 'app'))[0]!.n);
  t.ok(left > 0, `killed with ${left} moved rows still on s3`);
  await restart();
  const waited = await cli(['rebalance', 'status', '--wait', ...admin]);
  t.equal(waited.code, 0, waited.stdout);
  t.match(waited.stdout, /remove s3: done/);
  await checkPlacement(t, ['s0', 's1', 's2'], 'after the interrupted removal');
  stopWriter = true;
  await writer;
  t.same(writerErrors, [], 'the writer saw no error but while pgshard was down');
  t.ok(acked.size > 100, `the writer's acknowledged rows: ${acked.size}`);

  async function checkPlacement(t: typeof tap, ids: string[], when: string) {
    await pauseWriter();
    try {
      await placement(t, ids, when);
    } finally {
      resumeWriter();
    }
  }

  async function placement(t: typeof tap, ids: string[], when: string) {
    const ring = HashRing.build(ids.map((id) => ({ id, weight: 1 })), 256);
    const all = { s0: c0!, s1: c1!, s2: c2!, s3: c3! } as Record<string, typeof c0>;
    const seen = new Map<number, string[]>();
    for (const [id, c] of Object.entries(all)) {
      // s3 has no users table while it is not in the ring (a rolled-back add drops the one it created).
      if (!(await c!.query<{ t: string | null }>(`SELECT to_regclass('users')::text AS t`, 'app'))[0]!.t) continue;
      for (const r of await c!.query<{ id: string }>('SELECT id::text FROM users', 'app')) seen.set(Number(r.id), [...(seen.get(Number(r.id)) ?? []), id]);
    }
    const bad: string[] = [];
    const expected = [...Array.from({ length: ROWS }, (_, i) => i + 1), ...acked];
    for (const k of expected) {
      const where = seen.get(k) ?? [];
      const owner = ring.shardFor(canonicalFromText('bigint', String(k)));
      if (where.length !== 1 || where[0] !== owner) bad.push(`${k} on [${where}] owner ${owner}`);
    }
    t.same(bad.slice(0, 5), [], `${when}: ${ROWS} rows and ${acked.size} acknowledged by the writer, each once on its owner`);
    // A row whose INSERT was in flight at a kill may exist (committed, acknowledgement lost): once, on its owner.
    const others = [...seen.keys()].filter((k) => k > ROWS && !acked.has(k));
    t.ok(others.every((k) => attempted.has(k) && seen.get(k)!.length === 1 && seen.get(k)![0] === ring.shardFor(canonicalFromText('bigint', String(k)))), `${when}: no other row (${others.length} in flight at a kill)`);
    for (const c of Object.values(all)) {
      t.same(await c!.query('SELECT slot_name FROM pg_replication_slots', 'app'), [], `${when}: no slot on ${c!.port}`);
      t.same(await c!.query('SELECT pubname FROM pg_publication', 'app'), [], `${when}: no publication on ${c!.port}`);
    }
  }
});
