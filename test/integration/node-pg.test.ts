// node-postgres through pgshard (one shard, transaction pooling), compared with a direct connection.
import t from 'tap';
import type pg from 'pg';
import { withShards } from '../helpers/shards.js';
import { directClient, errorOf, pgClient, sleep, startProxy } from '../helpers/proxy.js';

const shards = await withShards(t, 1);
const shard = shards.clusters[0]!;
const proxy = await startProxy(t, shards.clusters);

/** node-postgres's own bookkeeping of statements it parsed on this connection. */
function forgetParsedStatements(c: pg.Client): void {
  const conn = (c as unknown as { connection: { parsedStatements: Record<string, string>; submittedNamedStatements?: Record<string, string> } }).connection;
  conn.parsedStatements = {};
  if (conn.submittedNamedStatements) conn.submittedNamedStatements = {};
}

t.test('parameterized queries of many types round-trip as on a direct connection', async (t) => {
  const direct = await directClient(shard, { t });
  const proxied = await pgClient(proxy.port, { t });
  const cases: [string, unknown[]][] = [
    [
      'select $1::int as i, $2::bigint as big, $3::numeric as num, $4::text as txt, $5::bytea as bin, $6::timestamptz as ts, ' +
        '$7::json as js, $8::jsonb as jsb, $9::int[] as arr, $10::text[] as tarr, $11::text as nul, $12::float8 as f, $13::bool as b, ' +
        '$14::uuid as u, $15::date as d, $16::interval as iv',
      [
        -2147483648,
        '9223372036854775807',
        '123456789012345678901234567890.000000000000000000001',
        'héllo wörld — 日本語 🐘 \'quoted\' "double" \\ back',
        Buffer.from([0, 1, 2, 254, 255, 0x5c, 0x27]),
        new Date('2024-02-29T23:59:59.123Z'),
        JSON.stringify({ a: [1, 2, { b: null }], 'ü': 'ß' }),
        JSON.stringify({ z: 1, a: [true, false] }),
        [1, null, -3],
        ['a', 'b,c', 'd"e', null, ''],
        null,
        1.5e300,
        true,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '2000-01-01',
        '1 year 2 mons 3 days 04:05:06.789',
      ],
    ],
    ['select $1::bigint + 1 as beyond_2_53', ['9007199254740993']],
    ['select $1::text as empty, $2::text as nul, length($1) as len', ['', null]],
    ['select g, md5(g::text) as h from generate_series(1, $1::int) g', [500]],
    ["select E'\\\\x00ff'::bytea as raw, repeat('x', 100000) as wide", []],
  ];
  for (const [text, values] of cases) {
    const a = await direct.query({ text, values });
    const b = await proxied.query({ text, values });
    t.same(b.rows, a.rows, `rows of ${text.slice(0, 50)}`);
    t.same(
      b.fields.map((f) => [f.name, f.dataTypeID]),
      a.fields.map((f) => [f.name, f.dataTypeID]),
      'fields',
    );
  }
  const big = await proxied.query({ text: 'select $1::bigint as v', values: ['9007199254740993'] });
  t.equal(big.rows[0].v, '9007199254740993', 'bigint beyond 2^53 is exact (as text)');
});

t.test('startup options and a 20 MB parameter', async (t) => {
  const opts = { options: '-c TimeZone=Asia/Tokyo -c statement_timeout=12345', application_name: 'node-pg-test' };
  const direct = await directClient(shard, { t, ...opts });
  const c = await pgClient(proxy.port, { t, ...opts });
  const q = `select current_setting('TimeZone') as tz, current_setting('statement_timeout') as st, current_setting('application_name') as app`;
  t.same((await c.query(q)).rows, (await direct.query(q)).rows, 'startup parameters in effect as on a direct connection');
  const big = Buffer.alloc(20 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
  await shard.query('create table if not exists blobs (id int primary key, b bytea)', 'app');
  await c.query({ text: 'insert into blobs values ($1, $2)', values: [1, big] });
  const [onShard] = await shard.query<{ n: number; h: string }>('select length(b) as n, md5(b) as h from blobs where id = 1', 'app');
  const { createHash } = await import('node:crypto');
  t.same(onShard, { n: big.length, h: createHash('md5').update(big).digest('hex') }, 'the 20 MB value arrived intact');
  const back = await c.query({ text: 'select b from blobs where id = $1', values: [1] });
  t.ok((back.rows[0].b as Buffer).equals(big), 'and comes back intact');
});

t.test('named prepared statements follow each client across a pool of two backends', async (t) => {
  const p = await startProxy(t, shards.clusters, { pool: { size: 2 } });
  const clients = await Promise.all(Array.from({ length: 5 }, () => pgClient(p.port, { t })));
  const pidsByClient = clients.map(() => new Set<number>());
  const wrong: string[] = [];
  await Promise.all(
    clients.map(async (c, k) => {
      // The same statement name on every client, with a different text on each.
      const q = (i: number) => ({ name: 'q1', text: `select $1::int * ${k + 1} as v, pg_backend_pid() as pid`, values: [i] });
      for (let i = 0; i < 30; i++) {
        const inTx = i % 3 === 0;
        if (inTx) await c.query('BEGIN');
        const r = await c.query(q(i));
        if (r.rows[0].v !== i * (k + 1)) wrong.push(`client ${k} iteration ${i}: ${r.rows[0].v}`);
        pidsByClient[k]!.add(r.rows[0].pid as number);
        if (inTx) {
          const again = await c.query(q(i + 1));
          if (again.rows[0].pid !== r.rows[0].pid) wrong.push(`client ${k} iteration ${i}: the backend changed inside a transaction`);
          await c.query(i % 2 === 0 ? 'COMMIT' : 'ROLLBACK');
        }
        if (i % 7 === 0) await sleep(1);
      }
    }),
  );
  t.same(wrong, [], 'every client got its own statement\'s answers, 150 statements, a third of them in transactions');
  const allPids = new Set(pidsByClient.flatMap((s) => [...s]));
  t.ok(allPids.size <= 2, `at most the pool size of backends (${allPids.size})`);
  t.ok(
    pidsByClient.some((s) => s.size > 1),
    'some client ran its statement on more than one backend (so it was prepared again under it)',
  );
});

t.test('session settings persist for their client and do not leak to others', async (t) => {
  const p = await startProxy(t, shards.clusters, { pool: { size: 1 } });
  const fresh = await directClient(shard, { t });
  const defaultTz = (await fresh.query('show timezone')).rows[0].TimeZone as string;
  const defaultPath = (await fresh.query('show search_path')).rows[0].search_path as string;
  await shard.query('create schema if not exists other; create table if not exists other.only_here (x int); insert into other.only_here values (7)', 'app');

  const a = await pgClient(p.port, { t });
  const b = await pgClient(p.port, { t });
  const tz = async (c: pg.Client) => (await c.query('SHOW TimeZone')).rows[0].TimeZone as string;
  const sp = async (c: pg.Client) => (await c.query('SHOW search_path')).rows[0].search_path as string;

  await a.query(`SET TimeZone = 'America/New_York'`);
  t.equal(await tz(b), defaultTz, "B does not see A's TimeZone");
  t.equal(await tz(a), 'America/New_York', "A's TimeZone persists");
  await b.query(`SET TimeZone = 'Asia/Tokyo'`);
  t.equal(await tz(a), 'America/New_York', "A keeps its TimeZone after B set another");
  t.equal(await tz(b), 'Asia/Tokyo');

  await a.query('SET search_path = other, public');
  const r = await a.query('select x from only_here');
  t.same(r.rows, [{ x: 7 }], "A's search_path is in effect");
  t.equal(await sp(b), defaultPath, "B's search_path is the default");
  const err = await errorOf(() => b.query('select x from only_here'));
  t.equal(err?.code, '42P01', 'B does not find the table');
  await a.query('BEGIN');
  t.equal(await sp(a), 'other, public', "A's search_path in its later transactions");
  await a.query('COMMIT');

  // SET LOCAL lasts for its transaction only.
  await b.query('BEGIN');
  await b.query(`SET LOCAL TimeZone = 'Europe/Paris'`);
  t.equal(await tz(b), 'Europe/Paris');
  await b.query('COMMIT');
  t.equal(await tz(b), 'Asia/Tokyo', 'SET LOCAL does not persist');
  t.equal(await tz(a), 'America/New_York');

  // A SET in a rolled-back transaction is undone.
  await a.query('BEGIN');
  await a.query(`SET TimeZone = 'Australia/Sydney'`);
  await a.query('ROLLBACK');
  t.equal(await tz(a), 'America/New_York', 'a SET rolled back does not persist');
  // …and in a transaction that failed.
  await a.query('BEGIN');
  await a.query(`SET TimeZone = 'Australia/Sydney'`);
  await errorOf(() => a.query('select 1/0'));
  await a.query('COMMIT');
  t.equal(await tz(a), 'America/New_York', 'a SET in a failed transaction does not persist');
  t.equal(await tz(b), 'Asia/Tokyo');
  // RESET brings the default back, for this client only.
  await a.query('RESET TimeZone');
  t.equal(await tz(a), defaultTz);
  t.equal(await tz(b), 'Asia/Tokyo');
});

t.test('transaction status', async (t) => {
  const c = await pgClient(proxy.port, { t });
  const direct = await directClient(shard, { t });
  await shard.query('create table if not exists txs (i int primary key)', 'app');
  for (const [name, client] of [['direct', direct], ['pgshard', c]] as const) {
    // node-postgres rejects a query at its ErrorResponse; the status comes with the ReadyForQuery after it.
    const internals = client as unknown as { getTransactionStatus(): string; readyForQuery: boolean };
    const status = async () => {
      for (let i = 0; i < 100 && !internals.readyForQuery; i++) await sleep(10);
      return internals.getTransactionStatus();
    };
    await client.query('truncate txs');
    t.equal(await status(), 'I', `${name}: idle`);
    await client.query('BEGIN');
    t.equal(await status(), 'T', `${name}: in a transaction after BEGIN`);
    await client.query('insert into txs values (1)');
    await client.query('ROLLBACK');
    t.equal(await status(), 'I');
    await client.query('BEGIN');
    await client.query('insert into txs values (2)');
    await client.query('COMMIT');
    t.same((await client.query('select i from txs')).rows, [{ i: 2 }], `${name}: only the committed row`);
    await client.query('BEGIN');
    const e1 = await errorOf(() => client.query('insert into txs values (2)'));
    t.equal(e1?.code, '23505');
    t.equal(await status(), 'E', `${name}: failed transaction`);
    const e2 = await errorOf(() => client.query('select 1'));
    t.equal(e2?.code, '25P02', `${name}: commands ignored until end of transaction block`);
    const e3 = await errorOf(() => client.query({ text: 'select $1::int', values: [1] }));
    t.equal(e3?.code, '25P02', `${name}: also in the extended protocol`);
    const rb = await client.query('ROLLBACK');
    t.equal(rb.command, 'ROLLBACK');
    t.equal(await status(), 'I');
    t.same((await client.query('select 1 as one')).rows, [{ one: 1 }], `${name}: works again after ROLLBACK`);
    // COMMIT of a failed transaction answers ROLLBACK.
    await client.query('BEGIN');
    await errorOf(() => client.query('select 1/0'));
    const cm = await client.query('COMMIT');
    t.equal(cm.command, 'ROLLBACK', `${name}: COMMIT of a failed transaction reports ROLLBACK`);
  }
});

t.test('DEALLOCATE ALL, then reusing a statement name', async (t) => {
  // The same steps on a direct connection and through pgshard; the outcomes must be the same.
  const run = async (c: pg.Client) => {
    const out: unknown[] = [];
    const step = async (f: () => Promise<pg.QueryResult>) => {
      try {
        const r = await f();
        out.push(r.rows);
      } catch (e) {
        out.push((e as { code?: string }).code);
      }
    };
    await step(() => c.query({ name: 'dq', text: 'select 1 as v' }));
    await step(() => c.query('DEALLOCATE ALL'));
    forgetParsedStatements(c);
    await step(() => c.query({ name: 'dq', text: 'select 2 as v' }));
    await step(() => c.query({ name: 'dq', text: 'select 2 as v' }));
    // Inside a transaction, where the backend is already held.
    await step(() => c.query('BEGIN'));
    await step(() => c.query('select 1'));
    await step(() => c.query('DEALLOCATE ALL'));
    forgetParsedStatements(c);
    await step(() => c.query({ name: 'dq', text: 'select 2 as v' }));
    await step(() => c.query('COMMIT'));
    // DEALLOCATE of one name.
    await step(() => c.query({ name: 'dq2', text: 'select 3 as v' }));
    await step(() => c.query('DEALLOCATE dq2'));
    forgetParsedStatements(c);
    await step(() => c.query({ name: 'dq2', text: 'select 4 as v' }));
    return out;
  };
  const direct = await directClient(shard, { t });
  const c = await pgClient(proxy.port, { t });
  const expected = await run(direct);
  t.same(await run(c), expected, 'same outcomes as on Postgres');
  // Another client preparing the same text afterwards is not affected.
  const other = await pgClient(proxy.port, { t });
  for (const [name, text, v] of [['x', 'select 2 as v', 2], ['y', 'select 1 as v', 1], ['z', 'select 3 as v', 3]] as const) {
    const r = await other.query({ name, text }).then((r) => r.rows, (e: Error) => e.message);
    t.same(r, [{ v }], `another client can prepare and run "${text}" afterwards`);
  }
});

t.test('a client disconnecting mid-transaction leaves no lock behind', async (t) => {
  await shard.query('create table if not exists locked (id int primary key, v int); insert into locked values (1, 0) on conflict do nothing', 'app');
  const a = await pgClient(proxy.port);
  await a.query('BEGIN');
  t.same((await a.query('select v from locked where id = 1 for update')).rows, [{ v: 0 }]);
  const locks = await shard.query(`select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'locked'`, 'app');
  t.ok((locks[0]!.n as number) > 0, 'the lock is held on the shard');
  // Drop the connection without Terminate.
  (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  const b = await pgClient(proxy.port, { t });
  const started = Date.now();
  const r = await errorOf(() => b.query(`begin; set local lock_timeout = '2s'; update locked set v = v + 1 where id = 1; commit`));
  t.equal(r?.message ?? null, null, 'the update went through');
  t.ok(Date.now() - started < 2100, `within 2 s (${Date.now() - started} ms)`);
  t.same(await shard.query('select v from locked where id = 1', 'app'), [{ v: 1 }]);
});
