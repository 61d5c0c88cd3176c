// What pgshard refuses over three shards: each refusal has its SQLSTATE and a helpful message, nothing of
// the statement is applied anywhere (every shard is compared before and after), and the session goes on —
// inside a transaction exactly as Postgres goes on after an error: 25P02 until ROLLBACK.
import t, { type Test } from 'tap';
import type pg from 'pg';
import { directClient, errorOf, pgClient } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARD_IDS, keysOnTwoShards, withSharded } from '../helpers/three-shards.js';
// Keyless writes, reference-table writes and transactions over several shards: distributed-writes.test.ts;
// cross-shard reads are checked against one Postgres in test/differential.

const s = await withSharded(t, { schema: 'CREATE TABLE misc (id int PRIMARY KEY, v text); INSERT INTO misc VALUES (1, $$one$$);' });

// Users 1..60, put straight on their owners (these tests are about refusals, not about inserts).
for (const id of SHARD_IDS) {
  const ids = Array.from({ length: 60 }, (_, i) => i + 1).filter((k) => s.owner('users', k) === id);
  await s.direct(id, `insert into users (id, name) select k, 'user ' || k from unnest($1::bigint[]) k`, [ids]);
  await s.direct(id, `insert into events (id, kind) select k, 'e' from unnest($1::bigint[]) k`, [ids]);
}

/** Every row of every table on every shard. */
function snapshot(): Promise<unknown[]> {
  const q = `select 'users' as t, id::text as k, name as v from users
    union all select 'orders', user_id || '/' || id, amount::text from orders
    union all select 'countries', code, name from countries
    union all select 'events', id::text, kind from events
    order by 1, 2`;
  return Promise.all(SHARD_IDS.map((id) => s.direct(id, q)));
}

type Err = Error & { code?: string; hint?: string; detail?: string };

/**
 * Runs a statement that must be refused: checks the code and that the message says why, that no shard
 * changed, and that the session's next statement works (outside a transaction).
 */
async function refused(t: Test, c: pg.Client, text: string, values: unknown[] | undefined, opts: { code?: string; message?: RegExp } = {}): Promise<Err | null> {
  const before = await snapshot();
  const e = (await errorOf(() => c.query(text, values))) as Err | null;
  const label = `${text.slice(0, 90)}${values ? ` [${values.join(', ')}]` : ''}`;
  t.equal(e?.code, opts.code ?? '0A000', `${label}: ${e ? `${e.code} ${e.message}` : 'no error'}`);
  if (e && (opts.code ?? '0A000') === '0A000') {
    t.ok(e.message.length > 20 && /shard|not supported|refuse/i.test(e.message), `message says why: ${e.message}`);
    // The advice is in a hint (or detail), or spelled out in the message itself ("…; delete and re-insert it").
    t.ok((e.hint ?? '').length > 0 || (e.detail ?? '').length > 0 || e.message.includes(';'), `says what to do instead: ${e.hint ?? e.detail ?? e.message}`);
  }
  if (opts.message && e) t.match(e.message, opts.message, 'message names the cause');
  t.same(await snapshot(), before, 'no shard changed');
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
  return e;
}

t.test('multi-row INSERT whose rows span shards', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b, shardA } = keysOnTwoShards(s, 'users', 1000);
  // Such an INSERT is split by shard and applied atomically (two-phase commit); see also
  // distributed-writes.test.ts for the extended protocol.
  const split = await c.query(`insert into users (id, name) values (${a}, 'a'), (${b}, 'b') returning id`);
  t.equal(split.rowCount, 2, 'INSERT 0 2');
  t.same(split.rows.map((r: { id: string }) => Number(r.id)).sort((x, y) => x - y), [a, b].sort((x, y) => x - y), 'RETURNING gives both rows');
  t.same(await s.holders(`select 1 from users where id = ${a}`), [s.owner('users', a)], `row ${a} on its owner only`);
  t.same(await s.holders(`select 1 from users where id = ${b}`), [s.owner('users', b)], `row ${b} on its owner only`);
  await c.query(`delete from users where id in (${a}, ${b})`);
  // Control: rows of one shard in one INSERT are fine and land there.
  const [x, y] = s.keysOn('users', shardA, 2, 2000);
  const ok = await c.query(`insert into users (id, name) values (${x}, 'x'), (${y}, 'y')`);
  t.equal(ok.rowCount, 2, 'a multi-row INSERT on one shard runs');
  t.same(await s.holders(`select 1 from users where id in (${x}, ${y})`), [shardA], 'on that shard only');
  await c.query(`delete from users where id in (${x}, ${y})`);
});

t.test('INSERT without the shard key column', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await refused(t, c, "insert into users (name) values ('no key')", undefined, { message: /"id"|shard key/ });
  await refused(t, c, 'insert into orders (id, amount) values ($1, $2)', [1, '1.00'], { message: /user_id|shard key/ });
});

t.test('UPDATE that changes the shard key', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await refused(t, c, 'update users set id = 100000 where id = 5', undefined);
  await refused(t, c, 'update users set id = $1 where id = $2', [100001, 5]);
  t.same(await s.holders('select 1 from users where id = 5'), [s.owner('users', 5)], 'row 5 still on its owner');
  t.same(await s.holders('select 1 from users where id >= 100000'), [], 'no new key anywhere');
});

/** Postgres's own behaviour after an error in a transaction, as the reference. */
async function postgresFailedTx(c: pg.Client): Promise<string[]> {
  const seen: string[] = [];
  await c.query('begin');
  seen.push((await errorOf(() => c.query('select 1/0')))?.code ?? 'ok');
  seen.push((await errorOf(() => c.query('select 1')))?.code ?? 'ok');
  seen.push((await errorOf(() => c.query('select $1::int', [1])))?.code ?? 'ok');
  seen.push((await c.query('commit')).command);
  seen.push((await errorOf(() => c.query('select 1')))?.code ?? 'ok');
  return seen;
}

t.test('a cross-shard read inside a transaction keeps the transaction status', async (t) => {
  // Postgres answers every statement inside BEGIN … COMMIT with ReadyForQuery 'T' (or 'E' once failed).
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  const status = (msgs: { type: string; status?: string }[]) => msgs.filter((m) => m.type === 'Z').map((m) => m.status).join('');
  t.equal(status(await c.query('begin')), 'T', 'BEGIN: T');
  const scatter = await c.query('select id from users');
  t.match(status(scatter), /^[TE]$/, `keyless SELECT right after BEGIN answers ReadyForQuery ${status(scatter)} (Postgres: T, or E if refused)`);
  const one = await c.query('select 1');
  t.match(status(one), /^[TE]$/, `next statement: still in the transaction block (${status(one)})`);
  t.equal(status(await c.query('rollback')), 'I', 'ROLLBACK: I');
});

t.test('a refusal inside a transaction fails the transaction exactly like Postgres', async (t) => {
  const d = await directClient(s.clusters[0]!, { t });
  const reference = await postgresFailedTx(d);
  t.same(reference, ['22012', '25P02', '25P02', 'ROLLBACK', 'ok'], 'Postgres: error, 25P02 until the end, COMMIT answers ROLLBACK');

  const c = await pgClient(s.proxy.port, { t });
  const before = await snapshot();
  const run = async (prefix: string[], refusedSql: string): Promise<string[]> => {
    const seen: string[] = [];
    await c.query('begin');
    for (const p of prefix) await c.query(p);
    seen.push((await errorOf(() => c.query(refusedSql)))?.code ?? 'ok');
    seen.push((await errorOf(() => c.query('select 1')))?.code ?? 'ok');
    seen.push((await errorOf(() => c.query('select $1::int', [1])))?.code ?? 'ok');
    seen.push((await c.query('commit')).command);
    seen.push((await errorOf(() => c.query('select 1')))?.code ?? 'ok');
    return seen;
  };
  const want = ['0A000', '25P02', '25P02', 'ROLLBACK', 'ok'];
  t.same(await run([], "insert into users (name) values ('no key')"), want, 'refused as the first statement (BEGIN not sent anywhere yet)');
  t.same(await run(['select * from users where id = 1'], "insert into users (name) values ('no key')"), want, 'refused after the transaction is on a shard');
  t.same(await run([`insert into users (id, name) values (4001, 'x')`], 'select id, sum(id) over () from users'), want, 'a cross-shard read pgshard refuses (window function), after a write');
  t.same(await run(['select 1'], "insert into users (id, name) select id + 100000, name from users"), want, 'INSERT ... SELECT from a sharded table refused in a transaction');
  t.same(await snapshot(), before, 'nothing of any of them is on any shard');
});

t.test('cross_shard: refuse', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await refused(t, c, 'select * from events', undefined, { message: /cross_shard/ });
  const { a, b } = keysOnTwoShards(s, 'events', 1);
  await refused(t, c, `select * from events where id in (${a}, ${b})`, undefined, { message: /cross_shard/ });
  t.same((await c.query(`select id, kind from events where id = ${a}`)).rows, [{ id: String(a), kind: 'e' }], 'by key it runs');
  t.equal((await c.query('select * from users')).rowCount, 60, 'the same keyless read on a table without the guardrail runs');
});

t.test('unknown_tables: refuse', async (t) => {
  const strict = await s.startAnotherProxy({ unknown_tables: 'refuse' });
  const c = await pgClient(strict.port, { t });
  await refused(t, c, 'select * from misc', undefined, { message: /misc/ });
  await refused(t, c, 'insert into misc values (2, $1)', ['two'], { message: /misc/ });
  t.same(await s.holders('select 1 from misc where id = 2'), [], 'nothing inserted');
  t.same((await c.query('select id from users where id = 1')).rows, [{ id: '1' }], 'configured tables still work');
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'no-table statements still work');
  // The default (reference) proxy reads it.
  const loose = await pgClient(s.proxy.port, { t });
  t.same((await loose.query('select id, v from misc')).rows, [{ id: 1, v: 'one' }], 'with unknown_tables: reference the same read runs');
});

t.test('a bad key value gives 22P02 as Postgres does', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const d = await directClient(s.clusters[0]!, { t });
  for (const [text, values] of [
    ["select * from users where id = 'abc'", undefined],
    ['select * from users where id = $1', ['abc']],
    ["insert into users (id, name) values ('abc', 'x')", undefined],
  ] as [string, unknown[] | undefined][]) {
    const want = await errorOf(() => d.query(text, values));
    const got = await errorOf(() => c.query(text, values));
    t.equal(want?.code, '22P02', `Postgres: ${want?.message}`);
    t.equal(got?.code, want?.code, `pgshard: ${got?.code} ${got?.message}`);
    t.equal(got?.message, want?.message, 'same message');
    t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'session goes on');
  }
  // In a transaction: failed as in Postgres.
  await c.query('begin');
  t.equal((await errorOf(() => c.query("select * from users where id = 'abc'")))?.code, '22P02', '22P02 in a transaction');
  t.equal((await errorOf(() => c.query('select 1')))?.code, '25P02', 'then 25P02');
  await c.query('rollback');
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'session goes on after ROLLBACK');
});
