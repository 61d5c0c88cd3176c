// The SQL admin console (database "pgshard") through psql, node-postgres, postgres.js and raw protocol
// messages, in front of three real shards.
import t from 'tap';
import postgres from 'postgres';
import { withSharded, extended } from '../helpers/three-shards.js';
import { closeClient, errorOf, pgClient, sleep } from '../helpers/proxy.js';
import { psql } from '../helpers/tools.js';
import { RawClient, fe, rows, types } from '../helpers/raw-client.js';
import { validateConfig } from '../../src/config/load.js';
import { HashRing } from '../../src/routing/ring.js';
import { PGSHARD_VERSION } from '../../src/version.js';
import { COMMAND_NAMES } from '../../src/admin/console-commands.js';

const s = await withSharded(t, {
  overrides: { users: [{ name: 'app', password: 'app' }, { name: 'ops', password: 'ops-secret' }] },
});
const port = s.proxy.port;
const consoleRows = async (sql: string, opts: { user?: string; password?: string } = {}): Promise<string[][]> => {
  const r = await psql(port, sql, { db: 'pgshard', tuplesOnly: true, ...opts });
  if (r.code !== 0) throw new Error(`psql exited ${r.code}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('|'));
};

t.test('SHOW SHARDS through psql: every shard, its address, up, and its share of the ring', async (t) => {
  const out = await consoleRows('SHOW SHARDS');
  t.same(
    out.map((r) => r.slice(0, 6)),
    s.proxy.config.shards.map((sh) => [sh.id, '127.0.0.1', String(sh.port), 'app', '1', 'up']),
  );
  const expected = HashRing.build(s.proxy.config.shards, s.proxy.config.ring.vnodes).shares();
  for (const r of out) t.ok(Math.abs(Number(r[6]) - expected.get(r[0]!)!) < 1e-8, `share of ${r[0]}`);
  t.ok(Math.abs(out.reduce((a, r) => a + Number(r[6]), 0) - 1) < 1e-6, 'shares sum to 1');
  t.same(out.map((r) => r[7]), ['', '', ''], 'no last error');
});

t.test('SHOW SHARDS says down for a shard that does not answer', async (t) => {
  const other = await s.startAnotherProxy({ shards: [...s.proxy.config.shards.map((x) => ({ ...x })), { id: 'gone', host: '127.0.0.1', port: 1, database: 'app', user: 'app', password: 'app' }] });
  const r = await psql(other.port, 'SHOW SHARDS', { db: 'pgshard', tuplesOnly: true });
  t.equal(r.code, 0, r.stderr);
  const gone = r.stdout.split('\n').find((l) => l.startsWith('gone|'))!.split('|');
  t.equal(gone[5], 'down');
  t.match(gone[7], /could not connect to shard "gone"/, 'the reason is shown');
});

t.test('SHOW POOLS counts the connections and checkouts of each shard', async (t) => {
  const before = await consoleRows('SHOW POOLS');
  const app = await pgClient(port, { t });
  const [k] = s.keysOn('users', 's1', 1, 5000);
  for (let i = 0; i < 5; i++) await app.query('SELECT * FROM users WHERE id = $1', [k]);
  const after = await consoleRows('SHOW POOLS');
  t.same(after.map((r) => r[0]), ['s0', 's1', 's2']);
  const col = (rows: string[][], shard: string, i: number) => Number(rows.find((r) => r[0] === shard)![i]);
  t.ok(col(after, 's1', 7) - col(before, 's1', 7) >= 5, 'five checkouts on s1');
  for (const r of after) {
    t.equal(Number(r[1]), s.proxy.config.pool.size, 'size is pool.size');
    t.equal(Number(r[2]), Number(r[3]) + Number(r[4]), 'total = idle + active');
  }
});

t.test('SHOW CLIENTS: state, application_name, address and the shards a transaction holds', async (t) => {
  const app = await pgClient(port, { t, application_name: 'watched-app' });
  const [k] = s.keysOn('users', 's2', 1, 7000);
  const mine = (rows: string[][]) => rows.find((r) => r[3] === 'watched-app')!;

  let r = mine(await consoleRows('SHOW CLIENTS'));
  t.same([r[1], r[2], r[4], r[6], r[8]], ['app', 'app', '127.0.0.1', 'idle', '']);
  t.equal(Number(r[5]), (app as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort, 'the client port');
  t.ok(Math.abs(Date.parse(r[7]!.replace(' ', 'T').replace(/\+00$/, 'Z')) - Date.now()) < 60_000, 'connected_since is a recent time');

  await app.query('BEGIN');
  await app.query('SELECT * FROM users WHERE id = $1', [k]);
  r = mine(await consoleRows('SHOW CLIENTS'));
  t.same([r[6], r[8]], ['idle in transaction', 's2'], 'in a transaction on s2');

  await app.query('SELECT 1/0').catch(() => undefined);
  r = mine(await consoleRows('SHOW CLIENTS'));
  t.equal(r[6], 'idle in transaction (aborted)');

  await app.query('ROLLBACK');
  await app.query("INSERT INTO users (id, name) VALUES ($1, 'watched')", [k]);
  const running = app.query('SELECT pg_sleep(1.5) FROM users WHERE id = $1', [k]);
  await sleep(400);
  r = mine(await consoleRows('SHOW CLIENTS'));
  t.same([r[6], r[8]], ['active', 's2'], 'a running statement');
  await running;
  r = mine(await consoleRows('SHOW CLIENTS'));
  t.same([r[6], r[8]], ['idle', ''], 'the connection went back to the pool');

  const all = await consoleRows('SHOW CLIENTS');
  const self = all.filter((x) => x[2] === 'pgshard');
  t.equal(self.length, 1, 'the console connection itself is listed');
  t.equal(self[0]![6], 'active');
  const ids = all.map((x) => Number(x[0]));
  t.same(ids, [...ids].sort((a, b) => a - b), 'ordered by id');
  await closeClient(app);
  await sleep(100);
  t.notOk((await consoleRows('SHOW CLIENTS')).some((x) => x[3] === 'watched-app'), 'gone after disconnecting');
});

t.test('SHOW RING, SHOW REBALANCE, SHOW INSTANCES, SHOW HELP, SHOW VERSION', async (t) => {
  const ring = await consoleRows('show ring;');
  t.same(
    ring.map((r) => [r[0], r[1], r[2], r[4]]),
    ['s0', 's1', 's2'].map((id) => [id, '1', '256', '256']),
    'vnodes × weight points each',
  );
  const reb = await consoleRows('SHOW REBALANCE');
  t.same(reb, [['idle', '', '', '', '', '', '', '']]);
  const started = new Date('2026-01-02T03:04:05.678Z');
  const saved = s.proxy.server.rebalance;
  s.proxy.server.rebalance = {
    status: () => ({ state: 'copying', shard: 's3', rowsCopied: 1200, rowsTotal: 5000, lagBytes: 4096, startedAt: started, lastCutoverPauseMs: null, detail: 'copying users' }),
  };
  t.teardown(() => void (s.proxy.server.rebalance = saved));
  t.same(await consoleRows('SHOW REBALANCE'), [['copying', 's3', '1200', '5000', '4096', '2026-01-02 03:04:05.678+00', '', 'copying users']], 'from the provider');
  const inst = await consoleRows('SHOW INSTANCES');
  t.same(inst.map((r) => [r[0], r[3], r[4]]), [[s.proxy.server.peers.instance, 't', 't']], 'one instance (no metadata database): this one, alive');
  const help = await consoleRows('SHOW HELP');
  t.same(help.map((r) => r[0]), COMMAND_NAMES.map((n) => `SHOW ${n}`));
  t.same(await consoleRows('  /* hi */ SHOW   version -- trailing comment'), [[`pgshard ${PGSHARD_VERSION}`]]);
  t.same(await consoleRows('SHOW VERSION; SHOW RING'), [[`pgshard ${PGSHARD_VERSION}`], ...ring], 'two commands in one query string');
});

t.test('anything else is refused with a hint listing the commands; the session goes on', async (t) => {
  const c = await pgClient(port, { t, database: 'pgshard' });
  const cases: [string, string][] = [
    ['SELECT 1', '0A000'],
    ['SHOW', '42601'],
    ['SHOW TABLES', '0A000'],
    ['SHOW RING extra', '42601'],
    ['INSERT INTO users VALUES (1)', '0A000'],
  ];
  for (const [sql, code] of cases) {
    const e = (await errorOf(() => c.query(sql))) as (Error & { code?: string; hint?: string }) | null;
    t.equal(e?.code, code, sql);
    t.match(e?.hint, /SHOW SHARDS, SHOW POOLS, SHOW CLIENTS, SHOW RING, SHOW REBALANCE/, `${sql}: the hint lists the commands`);
  }
  t.same((await c.query('SHOW VERSION')).rows, [{ version: `pgshard ${PGSHARD_VERSION}` }], 'still serving');
  const r = await c.query('');
  t.equal(r.rows.length, 0, 'an empty query answers EmptyQueryResponse');

  const p = await psql(port, 'SHOW VERSION;\nSELECT 1;\nSHOW RING;', { db: 'pgshard', tuplesOnly: true });
  t.equal(p.code, 3, 'psql stops at the refused statement');
  t.match(p.stderr, /ERROR:\s+the pgshard admin console does not run SELECT statements/);
  t.match(p.stderr, /HINT:.*SHOW HELP/);
});

t.test('node-postgres: simple and extended protocol, typed columns', async (t) => {
  const c = await pgClient(port, { t, database: 'pgshard' });
  const simple = await c.query('SHOW SHARDS');
  t.same(simple.fields.map((f) => [f.name, f.dataTypeID]), [
    ['id', 25],
    ['host', 25],
    ['port', 20],
    ['database', 25],
    ['weight', 20],
    ['status', 25],
    ['share', 701],
    ['last_error', 25],
  ]);
  t.equal(typeof simple.rows[0].share, 'number', 'float8 parsed as a number');
  const ext = await c.query(extended('SHOW SHARDS'));
  t.same(ext.rows, simple.rows, 'the extended protocol gives the same rows');
  const named = await c.query({ name: 'shards', text: 'SHOW RING' });
  const again = await c.query({ name: 'shards', text: 'SHOW RING' });
  t.same(again.rows, named.rows, 'a named statement, prepared once and executed twice');
  const clients = await c.query(extended('SHOW CLIENTS'));
  t.ok(clients.rows.every((r: { connected_since: unknown }) => r.connected_since instanceof Date), 'timestamptz parsed as a Date');
  const e = await errorOf(() => c.query({ text: 'SHOW RING', values: [1] }));
  t.equal((e as { code?: string }).code, '08P01', 'a parameter is refused');
  t.same((await c.query(extended('SHOW VERSION'))).rows.length, 1, 'and the session goes on');
});

t.test('postgres.js (pipelined extended protocol with named statements)', async (t) => {
  // fetch_types: false, as for PgBouncer's console: its connect-time pg_type query is not a console command.
  const sql = postgres({ host: '127.0.0.1', port, user: 'app', password: 'app', database: 'pgshard', connect_timeout: 10, max: 1, fetch_types: false, onnotice: () => undefined });
  t.teardown(() => sql.end({ timeout: 1 }));
  const [a, b, v] = await Promise.all([sql.unsafe('SHOW POOLS'), sql.unsafe('SHOW RING'), sql.unsafe('SHOW VERSION')]);
  t.equal(a.length, 3);
  t.same(b.map((r) => r.shard), ['s0', 's1', 's2']);
  t.same(v, [{ version: `pgshard ${PGSHARD_VERSION}` }]);
  const e = await errorOf(() => sql.unsafe('SELECT now()'));
  t.equal((e as { code?: string }).code, '0A000');
  t.equal((await sql.unsafe('SHOW HELP')).length, COMMAND_NAMES.length);
});

t.test('raw protocol: Execute with a row limit suspends the portal; errors skip to Sync', async (t) => {
  const c = await RawClient.connect(port, { user: 'app', password: 'app', database: 'pgshard' });
  t.teardown(() => c.close());
  c.send(fe.parse('', 'SHOW RING'), fe.bind('', ''), fe.execute('', 2), fe.execute('', 2), fe.sync());
  const m = await c.readUntilReady();
  t.equal(types(m), '1 2 D D s D C Z');
  t.same(rows(m).map((r) => r[0]), ['s0', 's1', 's2']);
  c.send(fe.parse('x', 'SELECT 1'), fe.bind('', 'x'), fe.execute(), fe.sync(), fe.describeStatement('nope'), fe.sync());
  const e = await c.readUntilReady();
  t.equal(types(e), 'E Z', 'one error, then ReadyForQuery at Sync');
  const e2 = await c.readUntilReady();
  t.equal(types(e2), 'E Z');
  c.send(fe.parse('v', 'SHOW VERSION'), fe.describeStatement('v'), fe.bind('p', 'v'), fe.describePortal('p'), fe.execute('p'), fe.sync());
  t.equal(types(await c.readUntilReady()), '1 t T 2 T D C Z');
  await c.terminate();
});

t.test('psql \\q and a session of several commands end cleanly', async (t) => {
  const r = await psql(port, 'SHOW VERSION\n\\q\n', { db: 'pgshard', tuplesOnly: true });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, `pgshard ${PGSHARD_VERSION}\n`);
  const conn = await psql(port, '\\conninfo', { db: 'pgshard' });
  t.equal(conn.code, 0, conn.stderr);
  t.match(conn.stdout, /database "pgshard" as user "app"/);
  // The listener still serves application clients.
  const app = await pgClient(port, { t });
  t.same((await app.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
});

t.test('who may connect', async (t) => {
  const bad = await psql(port, 'SHOW VERSION', { db: 'pgshard', password: 'wrong' });
  t.not(bad.code, 0);
  t.match(bad.stderr, /password authentication failed for user "app"/, 'the same authentication as sessions');

  const restricted = await s.startAnotherProxy({ users: [{ name: 'app', password: 'app' }, { name: 'ops', password: 'ops-secret' }], console: { users: ['ops'] } });
  const denied = await psql(restricted.port, 'SHOW VERSION', { db: 'pgshard' });
  t.not(denied.code, 0);
  t.match(denied.stderr, /permission denied for the pgshard admin console: user "app" is not in console.users/);
  const e = await errorOf(() => pgClient(restricted.port, { database: 'pgshard' }));
  t.equal((e as { code?: string }).code, '42501');
  const ok = await psql(restricted.port, 'SHOW VERSION', { db: 'pgshard', user: 'ops', password: 'ops-secret', tuplesOnly: true });
  t.equal(ok.code, 0, ok.stderr);
  const app = await psql(restricted.port, 'SELECT 1', { tuplesOnly: true });
  t.equal(app.stdout, '1\n', 'app still reaches the application database');

  const off = await s.startAnotherProxy({ console: { enabled: false } });
  const none = await errorOf(() => pgClient(off.port, { database: 'pgshard' }));
  t.equal((none as { code?: string }).code, '3D000', 'console disabled: no such database');
});

t.test('configuration checks', async (t) => {
  const base = { users: [{ name: 'app', password: 'app' }], shards: [{ id: 's0', host: 'h', database: 'app', user: 'app' }] };
  t.throws(() => validateConfig({ ...base, console: { database: 'app' } }), /console\.database: "app" is also the application database/);
  t.throws(() => validateConfig({ ...base, console: { users: ['nobody'] } }), /console\.users\[0\]: "nobody" is not one of the users/);
  t.equal(validateConfig(base).console.database, 'pgshard');
});
