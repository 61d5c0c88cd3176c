/**
 * Statement pipelining (src/pool/pipeline.ts): single-statement reads of many clients share a few shard
 * connections. Each client must get exactly its own answer, its own errors and its own session settings;
 * a cancel reaches only the statement it names; a client that goes away costs the others nothing.
 * Statements sleep a little so that they are queued behind each other for sure.
 */
import t from 'tap';
import { withShards } from '../helpers/shards.js';
import { startProxy, pgClient, errorOf, sleep, type Proxy } from '../helpers/proxy.js';
import { fe, RawClient, rows, sendCancelRequest, types } from '../helpers/raw-client.js';
import type pg from 'pg';

type Client = pg.Client & { errors: Error[] };

const shards = await withShards(t, 1);

async function clients(proxy: Proxy, n: number): Promise<Client[]> {
  const out: Client[] = [];
  for (let i = 0; i < n; i++) out.push(await pgClient(proxy.port, { t }));
  return out;
}

/** The pipeline of shard s0 is empty and every connection it took went back to the pool. */
async function drained(proxy: Proxy): Promise<{ connections: number; inFlight: number; active: number }> {
  const pool = proxy.server.pools.get('s0')!;
  for (let i = 0; i < 50 && pool.stats().active > 0; i++) await sleep(20);
  return { ...pool.pipeline.stats(), active: pool.stats().active };
}

t.test('many clients share two connections, each gets its own rows and errors', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 2, pipeline_depth: 16 } });
  const cs = await clients(proxy, 24);
  // Round 0 warms up: the pool opened one connection for the logins, and opens a second for the
  // pipeline when it first needs one (statements that find no room meanwhile lease a connection).
  for (let round = 0; round < 4; round++) {
    const answers = await Promise.all(
      cs.map((c, i) =>
        i % 5 === 3
          ? errorOf(() => c.query(`SELECT ${i} / 0 AS boom, pg_sleep(0.02)`))
          : c.query(`SELECT ${i} AS client, '${'x'.repeat(i * 50)}' AS pad, pg_backend_pid() AS pid, pg_sleep(0.02)`),
      ),
    );
    const pids = new Set<number>();
    answers.forEach((a, i) => {
      if (i % 5 === 3) {
        t.equal((a as { code?: string } | null)?.code, '22012', `round ${round}: client ${i} gets its own division by zero`);
        return;
      }
      const row = (a as pg.QueryResult).rows[0];
      t.equal(row.client, i, `round ${round}: client ${i} gets its own row`);
      t.equal(row.pad.length, i * 50);
      pids.add(row.pid);
    });
    if (round > 0) t.ok(pids.size <= 2, `round ${round}: 24 statements ran on ${pids.size} connection(s)`);
  }
  // The sessions go on, in and out of transactions (which never share a connection).
  await cs[0]!.query('BEGIN');
  t.same((await cs[0]!.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  await cs[0]!.query('COMMIT');
  t.same(await drained(proxy), { connections: 0, inFlight: 0, active: 0 }, 'every connection went back to the pool');
  t.same(cs.flatMap((c) => c.errors), []);
});

t.test('session settings follow each client onto the shared connection', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 1 } });
  const [german, iso, sql] = await clients(proxy, 3);
  await german!.query(`SET DateStyle = 'German'`);
  await sql!.query(`SET DateStyle = 'SQL, MDY'`);
  for (let round = 0; round < 5; round++) {
    const q = `SELECT '2024-01-02'::date::text AS d, pg_backend_pid() AS pid, pg_sleep(0.01)`;
    const [g, i, s] = await Promise.all([german!.query(q), iso!.query(q), sql!.query(q)]);
    t.equal(g.rows[0].d, '02.01.2024', `round ${round}: German`);
    t.equal(i.rows[0].d, '2024-01-02', `round ${round}: ISO`);
    t.equal(s.rows[0].d, '01/02/2024', `round ${round}: SQL`);
    t.equal(new Set([g.rows[0].pid, i.rows[0].pid, s.rows[0].pid]).size, 1, `round ${round}: one connection for the three`);
  }
  await german!.query('RESET DateStyle');
  t.equal((await german!.query(`SELECT '2024-01-02'::date::text AS d`)).rows[0].d, '2024-01-02', 'RESET holds too');
});

t.test('a cancel reaches only the statement it names', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 1 } });
  const [sleeper, queued, other] = await clients(proxy, 3);
  const key = (c: Client) => c as unknown as { processID: number; secretKey: number };

  // A statement queued behind another is cancelled by its client: the running one must not be.
  const running = sleeper!.query(`SELECT 'slept' AS r, pg_backend_pid() AS pid, pg_sleep(0.6)`);
  await sleep(100);
  const waiting = queued!.query(`SELECT 'queued' AS r, pg_backend_pid() AS pid`);
  await sleep(100);
  await sendCancelRequest(proxy.port, key(queued!).processID, key(queued!).secretKey);
  const [a, b] = await Promise.all([running, waiting]);
  t.equal(a.rows[0].r, 'slept', 'the running statement was not cancelled');
  t.equal(b.rows[0].r, 'queued', 'the queued one ran after it');
  t.equal(a.rows[0].pid, b.rows[0].pid, 'on the same connection');

  // The running statement is cancelled by its client: the one queued behind it still runs.
  const long = errorOf(() => sleeper!.query('SELECT pg_sleep(30)'));
  await sleep(100);
  const behind = other!.query(`SELECT 'behind' AS r`);
  await sleep(100);
  await sendCancelRequest(proxy.port, key(sleeper!).processID, key(sleeper!).secretKey);
  t.equal((await long)?.code, '57014', 'cancelled');
  t.equal((await behind).rows[0].r, 'behind', 'the next client was not');
  t.same((await sleeper!.query(`SELECT 'again' AS r`)).rows, [{ r: 'again' }], 'the cancelled session goes on');
});

t.test('a client that goes away while its statement is queued', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 1 } });
  const [first, leaver, last] = await clients(proxy, 3);
  const a = first!.query(`SELECT 'first' AS r, pg_sleep(0.3)`);
  await sleep(50);
  void leaver!.query(`SELECT repeat('x', 100000) AS r, pg_sleep(0.1)`).catch(() => undefined);
  await sleep(50);
  const c = last!.query(`SELECT 'last' AS r`);
  (leaver as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  t.equal((await a).rows[0].r, 'first');
  t.equal((await c).rows[0].r, 'last', 'the answer of the client that left was dropped, not given to the next');
  t.same(await drained(proxy), { connections: 0, inFlight: 0, active: 0 });
});

t.test('pipelining off: every statement leases a connection', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 0 } });
  const cs = await clients(proxy, 4);
  const rows = await Promise.all(cs.map((c) => c.query('SELECT pg_backend_pid() AS pid, pg_sleep(0.1)')));
  t.equal(new Set(rows.map((r) => r.rows[0].pid)).size, 4, 'four statements at once, four connections');
});

t.test('the shared connection dies: every client queued on it gets an error and goes on', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 1 } });
  const [a, b, c] = await clients(proxy, 3);
  const direct = await pgClient(shards.clusters[0]!.port, { t });
  const running = errorOf(() => a!.query(`SELECT 'pipeline-victim' AS r, pg_sleep(30)`));
  await sleep(100);
  const queued = [errorOf(() => b!.query(`SELECT 'b' AS r`)), errorOf(() => c!.query(`SELECT 'c' AS r`))];
  await sleep(100);
  const killed = await direct.query(`SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE query LIKE '%pipeline-victim%' AND pid <> pg_backend_pid()`);
  t.same(killed.rows, [{ k: true }]);
  const ea = await running;
  t.equal(ea?.code, '57P01', 'the running statement: the shard said why');
  t.not((ea as { severity?: string } | null)?.severity, 'FATAL', 'as an ERROR: the client session is not what ended');
  for (const e of await Promise.all(queued)) t.equal(e?.code, '08006', 'the queued ones: connection lost');
  for (const [i, x] of [a, b, c].entries()) t.same((await x!.query(`SELECT ${i} AS i`)).rows, [{ i }], 'the session goes on');
  t.same(cs(a, b, c), []);
  t.same(await drained(proxy), { connections: 0, inFlight: 0, active: 0 });
});

function cs(...clients: (Client | undefined)[]): Error[] {
  return clients.flatMap((c) => c!.errors);
}

t.test('extended protocol: parameterized and prepared reads share connections too', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 2, pipeline_depth: 16 } });
  const cs = await clients(proxy, 24);
  for (let round = 0; round < 4; round++) {
    const answers = await Promise.all(
      cs.map((c, i) => {
        const text = 'SELECT $1::int AS client, $2::text AS pad, pg_backend_pid() AS pid, pg_sleep(0.02)';
        if (i % 5 === 3) return errorOf(() => c.query('SELECT $1::int / 0 AS boom, pg_sleep(0.02)', [i]));
        // Half prepared under a name (Parse once per client, then Bind/Execute/Sync), half unnamed.
        return i % 2 === 0 ? c.query({ name: 'mine', text, values: [i, 'y'.repeat(i * 40)] }) : c.query(text, [i, 'y'.repeat(i * 40)]);
      }),
    );
    const pids = new Set<number>();
    answers.forEach((a, i) => {
      if (i % 5 === 3) {
        t.equal((a as { code?: string } | null)?.code, '22012', `round ${round}: client ${i} gets its own error`);
        return;
      }
      const row = (a as pg.QueryResult).rows[0];
      t.equal(row.client, i, `round ${round}: client ${i} gets its own row`);
      t.equal(row.pad, 'y'.repeat(i * 40));
      pids.add(row.pid);
    });
    if (round > 0) t.ok(pids.size <= 2, `round ${round}: 24 statements ran on ${pids.size} connection(s)`);
  }
  // Transactions and writes never share: a parameterized statement in a transaction sees the transaction.
  await cs[0]!.query('BEGIN');
  await cs[0]!.query('CREATE TEMP TABLE mine (x int)');
  t.same((await cs[0]!.query('SELECT count(*)::int AS n FROM mine WHERE x = $1', [1])).rows, [{ n: 0 }]);
  await cs[0]!.query('ROLLBACK');
  t.same(await drained(proxy), { connections: 0, inFlight: 0, active: 0 });
  t.same(cs.flatMap((c) => c.errors), []);
});

t.test('extended protocol: settings follow each client; simple and extended requests mix on one connection', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 1 } });
  const [german, iso, simple] = await clients(proxy, 3);
  await german!.query(`SET DateStyle = 'German'`);
  for (let round = 0; round < 5; round++) {
    const q = `SELECT $1::date::text AS d, pg_backend_pid() AS pid, pg_sleep(0.01)`;
    const [g, i, s] = await Promise.all([
      german!.query({ name: 'd', text: q, values: ['2024-01-02'] }),
      iso!.query(q, ['2024-01-02']),
      simple!.query(`SELECT '2024-01-02'::date::text AS d, pg_backend_pid() AS pid, pg_sleep(0.01)`),
    ]);
    t.equal(g.rows[0].d, '02.01.2024', `round ${round}: German`);
    t.equal(i.rows[0].d, '2024-01-02', `round ${round}: ISO`);
    t.equal(s.rows[0].d, '2024-01-02', `round ${round}: simple, ISO`);
    t.equal(new Set([g.rows[0].pid, i.rows[0].pid, s.rows[0].pid]).size, 1, `round ${round}: one connection for the three`);
  }
});

for (const [how, pool] of [
  ['the shared connection', { pipeline_connections: 1 }],
  ['a leased connection (one in the pool)', { pipeline_connections: 0, size: 1 }],
] as const)
t.test(`another client's simple Query on ${how} does not lose a client's unnamed statement`, async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool });
  const raw = await RawClient.connect(proxy.port, { user: 'app', password: 'app', database: 'app' });
  t.teardown(() => raw.close());
  const other = await pgClient(proxy.port, { t });
  raw.send(fe.parse('', 'SELECT 41 + $1::int AS answer'), fe.sync());
  t.equal(types(await raw.readUntilReady()), '1 Z');
  for (let i = 0; i < 3; i++) await other.query('SELECT 1'); // simple Queries destroy a connection's unnamed statement
  raw.send(fe.bind('', '', ['1']), fe.execute(), fe.sync());
  const got = await raw.readUntilReady();
  t.equal(types(got), '2 D C Z', 'Bind of the unnamed statement the client parsed earlier works, as on Postgres');
  t.same(rows(got), [['42']]);
});

t.test('extended protocol: the client that goes away, the cancel, the connection that dies', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { pool: { pipeline_connections: 1 } });
  const [a, b, c, leaver] = await clients(proxy, 4);
  const direct = await pgClient(shards.clusters[0]!.port, { t });
  const key = (x: Client) => x as unknown as { processID: number; secretKey: number };

  const first = a!.query(`SELECT $1::text AS r, pg_sleep(0.3)`, ['first']);
  await sleep(50);
  void leaver!.query(`SELECT repeat('x', $1::int) AS r, pg_sleep(0.1)`, [100000]).catch(() => undefined);
  await sleep(50);
  const last = b!.query(`SELECT $1::text AS r`, ['last']);
  (leaver as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  t.equal((await first).rows[0].r, 'first');
  t.equal((await last).rows[0].r, 'last', 'the answer of the client that left was dropped');

  const long = errorOf(() => a!.query('SELECT pg_sleep($1::float8)', [30]));
  await sleep(100);
  const behind = b!.query(`SELECT $1::text AS r`, ['behind']);
  await sleep(100);
  await sendCancelRequest(proxy.port, key(a!).processID, key(a!).secretKey);
  t.equal((await long)?.code, '57014', 'cancelled');
  t.equal((await behind).rows[0].r, 'behind', 'the next client was not');

  const running = errorOf(() => a!.query(`SELECT 'ext-victim' AS tag, $1::text AS r, pg_sleep(30)`, ['a']));
  await sleep(100);
  const queued = [errorOf(() => b!.query(`SELECT $1::text AS r`, ['b'])), errorOf(() => c!.query(`SELECT 'c' AS r`))];
  await sleep(100);
  const killed = await direct.query(`SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE query LIKE '%ext-victim%' AND pid <> pg_backend_pid()`);
  t.same(killed.rows, [{ k: true }]);
  t.equal((await running)?.code, '57P01');
  for (const e of await Promise.all(queued)) t.equal(e?.code, '08006', 'the queued ones: connection lost');
  for (const [i, x] of [a, b, c].entries()) t.same((await x!.query('SELECT $1::int AS i', [i])).rows, [{ i }], 'the session goes on');
  t.same(cs(a, b, c), []);
  t.same(await drained(proxy), { connections: 0, inFlight: 0, active: 0 });
});
