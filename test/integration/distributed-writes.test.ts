// Writes that reach several shards: applied on all of them atomically or on none, answered as one
// Postgres would answer, with no prepared transaction left behind.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorOf, pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { startFaultRelay } from '../helpers/fault-relay.js';
import { RawClient, fe, types } from '../helpers/raw-client.js';
import { SHARD_IDS, TABLES, keysOnTwoShards, withSharded } from '../helpers/three-shards.js';
import { tempDir } from '../helpers/temp-dir.js';

const s = await withSharded(t);

async function preparedLeft(): Promise<number> {
  return s.total('select count(*) from pg_prepared_xacts');
}

async function holdersOf(id: number): Promise<string[]> {
  return s.holders('select 1 from users where id = $1', [id]);
}

t.test('a transaction on two shards commits on both (two-phase) and rolls back on both', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b, shardA, shardB } = keysOnTwoShards(s, 'users', 10_000);
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a}, 'a')`);
  await c.query('insert into users (id, name) values ($1, $2)', [b, 'b']);
  t.same((await c.query(`select id from users where id = ${a}`)).rows, [{ id: String(a) }], 'a participant reads its own write');
  t.equal((await c.query('commit')).command, 'COMMIT');
  t.same(await holdersOf(a), [shardA], `key ${a} committed on ${shardA} only`);
  t.same(await holdersOf(b), [shardB], `key ${b} committed on ${shardB} only`);

  const { a: a2, b: b2 } = keysOnTwoShards(s, 'users', 20_000);
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a2}, 'a')`);
  await c.query(`insert into users (id, name) values (${b2}, 'b')`);
  t.equal((await c.query('rollback')).command, 'ROLLBACK');
  t.same(await holdersOf(a2), [], 'rolled back on the first shard');
  t.same(await holdersOf(b2), [], 'rolled back on the second shard');
  t.equal(await preparedLeft(), 0, 'no prepared transaction left');
});

t.test('an error on the second shard fails the whole transaction, as in Postgres', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b } = keysOnTwoShards(s, 'users', 30_000);
  await s.direct(s.owner('users', b), `insert into users (id, name) values (${b}, 'already there')`);
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a}, 'a')`);
  t.equal((await errorOf(() => c.query(`insert into users (id, name) values (${b}, 'dup')`)))?.code, '23505', 'the duplicate fails');
  t.equal((await errorOf(() => c.query('select 1')))?.code, '25P02', 'then 25P02');
  t.equal((await errorOf(() => c.query(`select * from users where id = ${a}`)))?.code, '25P02', 'on any shard');
  t.equal((await c.query('commit')).command, 'ROLLBACK', 'COMMIT of the failed transaction answers ROLLBACK');
  t.same(await holdersOf(a), [], 'the first shard rolled back');
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
  t.equal(await preparedLeft(), 0);
});

t.test('savepoints span the participants', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const keys = [40_001, 40_002, 40_003, 40_004, 40_005, 40_006];
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${keys[0]}, 'kept')`);
  await c.query('savepoint sp1');
  await c.query(`insert into users (id, name) values (${keys[1]}, 'undone')`);
  await c.query(`insert into users (id, name) values (${keys[2]}, 'undone')`);
  await c.query('rollback to savepoint sp1');
  await c.query(`insert into users (id, name) values (${keys[3]}, 'kept')`);
  await c.query('savepoint sp2');
  await c.query(`insert into users (id, name) values (${keys[4]}, 'kept')`);
  await c.query('release savepoint sp2');
  await c.query(`insert into users (id, name) values (${keys[5]}, 'kept')`);
  t.equal((await c.query('commit')).command, 'COMMIT');
  const kept = (await Promise.all(keys.map(async (k) => ((await holdersOf(k)).length ? k : null)))).filter((k) => k !== null);
  t.same(kept, [keys[0], keys[3], keys[4], keys[5]], 'rows after ROLLBACK TO are undone on every shard, the rest committed');
  t.equal(await preparedLeft(), 0);
});

t.test('keyless UPDATE and DELETE run on every shard, counted as one Postgres would', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const ids = Array.from({ length: 30 }, (_, i) => 50_000 + i);
  for (const id of ids) await c.query('insert into users (id, name, country) values ($1, $2, $3)', [id, `n${id}`, 'zz']);
  t.same(new Set((await Promise.all(ids.map(holdersOf))).flat()).size, 3, 'the rows are spread over three shards');
  const u = await c.query("update users set name = 'renamed' where country = 'zz'");
  t.equal(u.command, 'UPDATE');
  t.equal(u.rowCount, 30, 'UPDATE 30, summed over the shards');
  t.equal(await s.total("select count(*) from users where country = 'zz' and name = 'renamed'"), 30, 'every shard updated');
  const r = await c.query("update users set name = 'again' where country = 'zz' returning id");
  t.equal(r.rows.length, 30, 'RETURNING rows of every shard');
  // Inside a transaction that rolls back: nothing stays.
  await c.query('begin');
  t.equal((await c.query("delete from users where country = 'zz'")).rowCount, 30);
  await c.query('rollback');
  t.equal(await s.total("select count(*) from users where country = 'zz'"), 30, 'the rolled back DELETE left every row');
  const d = await c.query("delete from users where country = 'zz'");
  t.equal(d.rowCount, 30, 'DELETE 30');
  t.equal(await s.total("select count(*) from users where country = 'zz'"), 0);
  t.equal(await preparedLeft(), 0);
});

t.test('a keyless write that fails on one shard is applied on none', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const ids = Array.from({ length: 12 }, (_, i) => 60_000 + i);
  for (const id of ids) await c.query('insert into users (id, name, country) values ($1, $2, $3)', [id, 'v', 'yy']);
  const victim = ids.find((id) => s.owner('users', id) === 's2')!;
  // A check that only one shard enforces makes that shard fail the UPDATE.
  await s.direct('s2', `alter table users add constraint no_bad_name check (name <> 'bad' or id <> ${victim})`);
  t.teardown(() => s.direct('s2', 'alter table users drop constraint if exists no_bad_name'));
  const e = await errorOf(() => c.query("update users set name = 'bad' where country = 'yy'"));
  t.equal(e?.code, '23514', `the failing shard's error reaches the client: ${e?.message}`);
  t.equal(await s.total("select count(*) from users where country = 'yy' and name = 'bad'"), 0, 'no shard kept the change');
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
  t.equal(await preparedLeft(), 0);
});

t.test('a PREPARE that fails rolls back everywhere and the client sees the error', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b, shardB } = keysOnTwoShards(s, 'users', 70_000);
  // A deferred constraint trigger fires at PREPARE TRANSACTION, on the second shard only.
  await s.direct(
    shardB,
    `create or replace function refuse_at_commit() returns trigger language plpgsql as $$ begin if new.name = 'fail at prepare' then raise exception 'refused at commit' using errcode = 'P0001'; end if; return new; end $$;
     create constraint trigger refuse_at_commit after insert on users deferrable initially deferred for each row execute function refuse_at_commit()`,
  );
  t.teardown(() => s.direct(shardB, 'drop trigger if exists refuse_at_commit on users'));
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a}, 'ok')`);
  await c.query(`insert into users (id, name) values (${b}, 'fail at prepare')`);
  const e = await errorOf(() => c.query('commit'));
  t.equal(e?.code, 'P0001', `COMMIT reports the shard's error: ${e?.message}`);
  t.same(await holdersOf(a), [], 'the other shard rolled back');
  t.same(await holdersOf(b), [], 'the failing shard rolled back');
  t.equal(await preparedLeft(), 0, 'no prepared transaction left');
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
});

t.test('reference table writes reach every shard, answered as one Postgres', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const i = await c.query("insert into countries values ('xx', 'Nowhere')");
  t.equal(i.rowCount, 1, 'INSERT 0 1, not one per shard');
  t.same(await s.holders("select 1 from countries where code = 'xx'"), [...SHARD_IDS], 'on every shard');
  // The extended protocol (bind parameters) too.
  const u = await c.query("update countries set name = 'Somewhere' where code = $1 returning code", ['xx']);
  t.equal(u.rowCount, 1, 'extended protocol: UPDATE 1');
  t.same(u.rows, [{ code: 'xx' }], 'extended protocol: RETURNING once');
  t.same(await s.holders("select 1 from countries where name = 'Somewhere'"), [...SHARD_IDS]);
  await c.query("update countries set name = 'Nowhere' where code = 'xx'");
  const u2 = await c.query("update countries set name = 'Somewhere' where code = 'xx' returning code");
  t.same(u2.rows, [{ code: 'xx' }], 'RETURNING gives one copy of the rows');
  t.same(await s.holders("select 1 from countries where name = 'Somewhere'"), [...SHARD_IDS]);
  t.equal((await c.query("delete from countries where code = 'xx'")).rowCount, 1);
  t.same(await s.holders("select 1 from countries where code = 'xx'"), []);
});

t.test('DDL runs on every shard in one transaction', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await c.query('create table ddl_probe (id int primary key)');
  t.same(await s.holders("select 1 from pg_class where relname = 'ddl_probe'"), [...SHARD_IDS], 'created everywhere');
  // One shard already has the index name: the whole statement fails and no shard keeps the new index.
  await s.direct('s1', 'create index ddl_probe_i on ddl_probe (id)');
  const e = await errorOf(() => c.query('create index ddl_probe_i on ddl_probe (id)'));
  t.equal(e?.code, '42P07', `the duplicate fails: ${e?.message}`);
  t.same(await s.holders("select 1 from pg_class where relname = 'ddl_probe_i'"), ['s1'], 'only the shard that had it');
  t.equal((await c.query('vacuum ddl_probe')).command, 'VACUUM', 'VACUUM (not transactional) runs shard by shard');
  await c.query('begin');
  t.equal((await errorOf(() => c.query('vacuum ddl_probe')))?.code, '25001', 'VACUUM in a transaction block: 25001 as Postgres');
  t.equal((await c.query('rollback')).command, 'ROLLBACK');
  await c.query('drop table ddl_probe');
  t.same(await s.holders("select 1 from pg_class where relname = 'ddl_probe'"), [], 'dropped everywhere');
});

t.test('recovery commits decided prepared transactions and rolls back the rest', async (t) => {
  const dir = tempDir('txlog');
  const log = path.join(dir, 'txlog.jsonl');
  const decided = 'pgshard_rec1_decided';
  const undecided = 'pgshard_rec1_orphan';
  const foreign = 'someone_else_1';
  const [k1, k2, k3] = s.keysOn('users', 's0', 3, 80_000);
  await s.direct('s0', `begin; insert into users (id, name) values (${k1}, 'decided'); prepare transaction '${decided}'`);
  await s.direct('s0', `begin; insert into users (id, name) values (${k2}, 'orphan'); prepare transaction '${undecided}'`);
  await s.direct('s0', `begin; insert into users (id, name) values (${k3}, 'foreign'); prepare transaction '${foreign}'`);
  t.teardown(() => s.direct('s0', `rollback prepared '${foreign}'`).catch(() => undefined));
  await writeFile(log, JSON.stringify({ gid: decided, shards: ['s0'] }) + '\n');
  const p = await s.startAnotherProxy({ transactions: { instance_id: 'rec1', log_file: log } });
  t.ok(p.port > 0, 'a pgshard with that instance id started (recovery runs before it listens)');
  t.same(await holdersOf(k1), ['s0'], 'the decided transaction was committed');
  t.same(await holdersOf(k2), [], 'the undecided one was rolled back (presumed abort)');
  const left = await s.direct('s0', 'select gid from pg_prepared_xacts order by gid');
  t.same(left, [{ gid: foreign }], "another instance's prepared transaction is left alone");
});

t.test('a deadlock between shards is broken with 40P01 after transactions.deadlock_timeout_ms', async (t) => {
  const p = await s.startAnotherProxy({ transactions: { deadlock_timeout_ms: 500 } });
  const c1 = await pgClient(p.port, { t });
  const c2 = await pgClient(p.port, { t });
  const { a, b } = keysOnTwoShards(s, 'users', 90_000);
  await c1.query(`insert into users (id, name) values (${a}, 'a'), (${b}, 'b')`);
  await c1.query('begin');
  await c2.query('begin');
  await c1.query(`update users set name = 'c1' where id = ${a}`);
  await c2.query(`update users set name = 'c2' where id = ${b}`);
  const started = Date.now();
  // Each now waits for the other, on another shard: no shard sees a cycle.
  const r1 = c1.query(`update users set name = 'c1' where id = ${b}`).then(() => 'ok', (e: { code?: string }) => e.code);
  const r2 = c2.query(`update users set name = 'c2' where id = ${a}`).then(() => 'ok', (e: { code?: string }) => e.code);
  const first = await Promise.race([r1, r2]);
  t.equal(first, '40P01', 'one of them is cancelled with 40P01');
  t.ok(Date.now() - started < 10_000, `within the bound (${Date.now() - started} ms)`);
  await Promise.all([r1, r2].map(async (r, i) => {
    const c = i === 0 ? c1 : c2;
    const out = await r;
    await c.query(out === 'ok' ? 'commit' : 'rollback');
  }));
  t.equal(await preparedLeft(), 0, 'no prepared transaction left');
  t.equal(await s.total(`select count(*) from users where id in (${a}, ${b})`), 2, 'both rows still there');
});

t.test('keyless writes and multi-shard INSERTs with bind parameters (extended protocol)', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const { a, b } = keysOnTwoShards(s, 'users', 95_000);
  const ins = await c.query('insert into users (id, name, country) values ($1, $2, $3), ($4, $5, $3) returning id', [a, 'pa', 'ext', b, 'pb']);
  t.equal(ins.rowCount, 2, 'INSERT 0 2 over two shards');
  t.same(await holdersOf(a), [s.owner('users', a)]);
  t.same(await holdersOf(b), [s.owner('users', b)]);
  const named = { name: 'keyless_upd', text: 'update users set name = $1 where country = $2', values: ['renamed', 'ext'] };
  t.equal((await c.query(named)).rowCount, 2, 'a named statement, UPDATE 2');
  t.equal((await c.query({ ...named, values: ['again', 'ext'] })).rowCount, 2, 'and again (prepared once)');
  await c.query('begin');
  t.equal((await c.query('delete from users where country = $1', ['ext'])).rowCount, 2, 'DELETE 2 in a transaction');
  await c.query('rollback');
  t.equal(await s.total("select count(*) from users where country = 'ext' and name = 'again'"), 2, 'rolled back everywhere');
  t.equal((await c.query('delete from users where country = $1', ['ext'])).rowCount, 2);
  t.equal(await s.total("select count(*) from users where country = 'ext'"), 0);
  t.equal(await preparedLeft(), 0);
});

t.test('a shard that goes away between PREPARE and COMMIT PREPARED: COMMIT, then the commit completes once it is back', async (t) => {
  const relay = await startFaultRelay(t, { port: s.port('s1') });
  const dir = tempDir('txlog');
  // The same ring (shard ids s0…s2), with s1 reached through the relay.
  const p = await startProxy(t, [{ port: s.port('s0') }, { port: relay.port }, { port: s.port('s2') }], {
    tables: TABLES,
    transactions: { instance_id: 'relay1', log_file: path.join(dir, 'txlog.jsonl') },
  });
  const c = await pgClient(p.port, { t });
  const [a] = s.keysOn('users', 's0', 1, 110_000);
  const [b] = s.keysOn('users', 's1', 1, 110_000);
  relay.failOn('COMMIT PREPARED');
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a}, 'in doubt a')`);
  await c.query(`insert into users (id, name) values (${b}, 'in doubt b')`);
  t.equal((await c.query('commit')).command, 'COMMIT', 'the client is told COMMIT: the decision is durable');
  t.ok(relay.resets >= 1, `the connection to s1 was reset at COMMIT PREPARED (${relay.resets})`);
  t.same(await holdersOf(a), ['s0'], 's0 committed');
  t.same(await s.direct('s1', `select gid from pg_prepared_xacts where gid like 'pgshard_relay1_%'`).then((r) => r.length), 1, 's1 still holds it prepared');
  t.same(await holdersOf(b), [], 'not yet visible on s1');
  t.equal(p.server.coordinator.inDoubt, 1, 'one transaction in doubt');
  const records = async () => (await readFile(path.join(dir, 'txlog.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { gid?: string; shards?: string[]; done?: string });
  const [prepared] = (await s.direct<{ gid: string }>('s1', `select gid from pg_prepared_xacts where gid like 'pgshard_relay1_%'`)).map((r) => r.gid);
  t.match(prepared, /_p\d+$/, 'prepared under its participant name');
  const gid = prepared!.replace(/_p\d+$/, '');
  t.same((await records()).filter((r) => r.gid === gid || r.done === gid), [{ gid, shards: ['s0', 's1'] }], `the decision for ${gid} is in the transaction log, not yet done`);
  await sleep(2500);
  t.ok(relay.resets >= 2, `the coordinator keeps retrying while s1 is unreachable (${relay.resets} resets)`);
  relay.allow();
  const deadline = Date.now() + 15_000;
  while ((await s.direct('s1', 'select 1 from pg_prepared_xacts')).length > 0 && Date.now() < deadline) await sleep(200);
  t.same(await holdersOf(b), ['s1'], 'the commit completed on s1 once it was reachable');
  t.same(await holdersOf(a), ['s0']);
  t.equal(await preparedLeft(), 0, 'no prepared transaction left');
  t.equal(p.server.coordinator.inDoubt, 0, 'nothing in doubt');
  t.same((await records()).filter((r) => r.done === gid).length, 1, 'and a done record follows once every shard committed');
  t.same((await c.query(`select name from users where id = ${b}`)).rows, [{ name: 'in doubt b' }], 'read back through pgshard');
});

t.test('a multi-row INSERT over several shards: RETURNING in VALUES order, one command tag, all or nothing', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  // Keys interleaved over the shards, in an order no shard-by-shard concatenation would give.
  const keys = [...s.keysOn('users', 's2', 3, 120_000), ...s.keysOn('users', 's0', 3, 120_000), ...s.keysOn('users', 's1', 3, 120_000)];
  const order = [0, 3, 6, 1, 4, 7, 2, 5, 8].map((i) => keys[i]!).reverse();
  const values = order.map((k, i) => `(${k}, 'row ${i}')`).join(', ');
  const r = await c.query(`insert into users (id, name) values ${values} returning id, name`);
  t.equal(r.command, 'INSERT');
  t.equal(r.rowCount, 9, 'INSERT 0 9');
  t.same(r.rows, order.map((k, i) => ({ id: String(k), name: `row ${i}` })), 'RETURNING rows in VALUES order (simple protocol)');
  for (const k of order) t.same(await holdersOf(k), [s.owner('users', k)]);

  const [s1k, s0k, s2k] = [s.keysOn('users', 's1', 2, 121_000), s.keysOn('users', 's0', 2, 121_000), s.keysOn('users', 's2', 2, 121_000)];
  const more = [s1k[1]!, s0k[0]!, s2k[1]!, s1k[0]!, s2k[0]!, s0k[1]!];
  const params = more.flatMap((k, i) => [k, `ext ${i}`]);
  const placeholders = more.map((_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(', ');
  const e = await c.query(`insert into users (id, name) values ${placeholders} returning name, id`, params);
  t.equal(e.rowCount, 6);
  t.same(e.rows, more.map((k, i) => ({ name: `ext ${i}`, id: String(k) })), 'RETURNING rows in VALUES order (extended protocol)');

  // One row conflicts on its shard: no shard keeps any row of the statement.
  const fresh = [...s.keysOn('users', 's0', 2, 122_000), ...s.keysOn('users', 's2', 2, 122_000)];
  const bad = await errorOf(() => c.query(`insert into users (id, name) values ${[...fresh, order[0]!].map((k) => `(${k}, 'x')`).join(', ')}`));
  t.equal(bad?.code, '23505', `a duplicate on one shard: ${bad?.message}`);
  t.equal(await s.total(`select count(*) from users where id in (${fresh.join(',')})`), 0, 'no row applied anywhere');

  // ON CONFLICT DO NOTHING skips a row on one shard: which RETURNING row is missing cannot be known.
  const upsert = `insert into users (id, name) values ${[fresh[0]!, order[0]!, fresh[2]!].map((k) => `(${k}, 'y')`).join(', ')} on conflict do nothing`;
  const refused = await errorOf(() => c.query(`${upsert} returning id`));
  t.equal(refused?.code, '0A000', `RETURNING order unknowable: ${refused?.message}`);
  t.equal(await s.total(`select count(*) from users where id in (${fresh.join(',')})`), 0, 'and nothing applied');
  await c.query('begin');
  t.equal((await errorOf(() => c.query(`${upsert} returning id`)))?.code, '0A000', 'in a transaction too');
  t.equal((await errorOf(() => c.query('select 1')))?.code, '25P02', 'which is then failed, as after any error');
  await c.query('rollback');
  t.equal((await c.query(upsert)).rowCount, 2, 'without RETURNING it runs: INSERT 0 2');
  t.equal(await s.total(`select count(*) from users where id in (${fresh.join(',')})`), 2);
  t.equal(await preparedLeft(), 0);
});

t.test('an extended-protocol batch up to Sync is one transaction across shards', async (t) => {
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  const { a, b } = keysOnTwoShards(s, 'users', 132_000);
  const insert = (k: number, name: string) => [fe.parse('', `insert into users (id, name) values (${k}, '${name}')`), fe.bind('', ''), fe.execute('', 0)];
  c.send(...insert(a, 'batch'), ...insert(b, 'batch'), fe.sync());
  const ok = await c.readUntilReady(10_000);
  t.equal(ok.filter((m) => m.type === 'E').length, 0, `no error: ${ok.find((m) => m.type === 'E')?.message ?? ''}`);
  t.equal(types(ok), '1 2 C 1 2 C Z', 'answered in request order, one ReadyForQuery');
  t.equal(ok.at(-1)!.status, 'I');
  t.same([...(await holdersOf(a)), ...(await holdersOf(b))], [s.owner('users', a), s.owner('users', b)], 'both rows committed, each on its shard');
  t.equal(await preparedLeft(), 0);
});

t.test("pgjdbc's executeBatch: one named statement, rows for three shards, one Sync", async (t) => {
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  const keys: number[] = [];
  for (const shard of SHARD_IDS) for (let k = 133_000; keys.length < 2 * (SHARD_IDS.indexOf(shard) + 1); k++) if (s.owner('users', k) === shard && !keys.includes(k)) keys.push(k);
  const rowsOut = keys.flatMap((k) => [fe.bind('', 'S_1', [String(k), `jdbc ${k}`]), fe.execute('', 1)]);
  c.send(fe.parse('S_1', 'insert into users (id, name) values ($1, $2)'), fe.describeStatement('S_1'), ...rowsOut, fe.sync());
  const ok = await c.readUntilReady(10_000);
  t.equal(ok.filter((m) => m.type === 'E').length, 0, `no error: ${ok.find((m) => m.type === 'E')?.message ?? ''}`);
  t.equal(ok.filter((m) => m.type === 'C').length, keys.length, 'one INSERT 0 1 per row');
  for (const k of keys) t.same(await holdersOf(k), [s.owner('users', k)], `row ${k} on its shard`);
  // The named statement stays usable, on any shard.
  const again = keys.map((k) => k + 50_000);
  c.send(...again.flatMap((k) => [fe.bind('', 'S_1', [String(k), 'again']), fe.execute('', 0)]), fe.sync());
  t.equal((await c.readUntilReady(10_000)).filter((m) => m.type === 'C').length, again.length);
  t.equal(await preparedLeft(), 0);
});

t.test('an error in the second statement of a batch across shards: nothing of the batch is applied', async (t) => {
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  const { a, b } = keysOnTwoShards(s, 'users', 134_000);
  await s.direct(s.owner('users', b), `insert into users (id, name) values (${b}, 'already there')`);
  const insert = (k: number) => [fe.bind('', 'ins', [String(k), 'batch']), fe.execute('', 0)];
  c.send(fe.parse('ins', 'insert into users (id, name) values ($1, $2)'), ...insert(a), ...insert(b), ...insert(a + 1), fe.sync());
  const m = await c.readUntilReady(10_000);
  t.equal(m.find((x) => x.type === 'E')?.code, '23505', 'the duplicate fails as in Postgres');
  t.equal(m.filter((x) => x.type === 'C').length, 1, 'the first INSERT answered, nothing after the error');
  t.equal(m.at(-1)!.status, 'I');
  t.same(await holdersOf(a), [], 'the first shard rolled back');
  t.same(await holdersOf(a + 1), [], 'the statement after the error never ran');
  t.same((await c.query('select 1')).find((x) => x.type === 'D')?.values, ['1'], 'the session goes on');
  t.equal(await preparedLeft(), 0);
});

t.test('a batch across shards inside BEGIN stays in the transaction until COMMIT or ROLLBACK', async (t) => {
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  const { a, b } = keysOnTwoShards(s, 'users', 135_000);
  const insert = (k: number) => [fe.bind('', 'ins2', [String(k), 'in tx']), fe.execute('', 0)];
  await c.query('begin');
  c.send(fe.parse('ins2', 'insert into users (id, name) values ($1, $2)'), ...insert(a), ...insert(b), fe.sync());
  const m = await c.readUntilReady(10_000);
  t.equal(m.filter((x) => x.type === 'E').length, 0);
  t.equal(m.at(-1)!.status, 'T', 'still in the transaction');
  t.same([...(await holdersOf(a)), ...(await holdersOf(b))], [], 'not visible before COMMIT');
  t.equal((await c.query('rollback')).find((x) => x.type === 'C')?.tag, 'ROLLBACK');
  t.same([...(await holdersOf(a)), ...(await holdersOf(b))], [], 'rolled back on both');
  await c.query('begin');
  c.send(...insert(a), ...insert(b), fe.sync());
  await c.readUntilReady(10_000);
  t.equal((await c.query('commit')).find((x) => x.type === 'C')?.tag, 'COMMIT');
  t.same([...(await holdersOf(a)), ...(await holdersOf(b))], [s.owner('users', a), s.owner('users', b)], 'committed on both');
  t.equal(await preparedLeft(), 0);
});

t.test('participants that only read commit without two-phase commit', async (t) => {
  const p = await s.startAnotherProxy({ transactions: { instance_id: 'readers1' } });
  const c = await pgClient(p.port, { t });
  const { a, b } = keysOnTwoShards(s, 'users', 140_000);
  const stats = p.server.coordinator.stats;
  const before = { ...stats };
  await c.query('begin');
  await c.query(`select * from users where id = ${a}`);
  await c.query(`insert into users (id, name) values (${b}, 'one writer')`);
  t.equal((await c.query('commit')).command, 'COMMIT');
  t.equal(stats.twoPhase - before.twoPhase, 0, 'a reader and one writer: no two-phase commit');
  t.equal(stats.onePhase - before.onePhase, 1, 'committed in one phase');
  t.same(await holdersOf(b), [s.owner('users', b)]);
  const { a: a3, b: b3 } = keysOnTwoShards(s, 'users', 141_000);
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a3}, 'w1')`);
  await c.query(`insert into users (id, name) values (${b3}, 'w2')`);
  await c.query('commit');
  t.equal(stats.twoPhase - before.twoPhase, 1, 'two writers: two-phase commit');
});

t.test('a shard that joins after a savepoint gets the savepoint too', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const [a] = s.keysOn('users', 's0', 1, 150_000);
  const [b] = s.keysOn('users', 's1', 1, 150_000);
  const [d] = s.keysOn('users', 's2', 1, 150_000);
  await c.query('begin');
  await c.query(`insert into users (id, name) values (${a}, 'before the savepoint')`);
  await c.query('savepoint sp');
  await c.query(`insert into users (id, name) values (${b}, 's1 joins after the savepoint')`);
  await c.query('rollback to savepoint sp');
  await c.query(`insert into users (id, name) values (${d}, 's2 joins after the rollback')`);
  await c.query('savepoint sp2');
  await c.query(`update users set name = 'changed' where id = ${a}`);
  await c.query(`insert into users (id, name) values (${b}, 's1 again')`);
  await c.query('rollback to savepoint sp2');
  t.equal((await c.query('commit')).command, 'COMMIT');
  t.same(await s.direct('s0', `select name from users where id = ${a}`), [{ name: 'before the savepoint' }], 's0: the change after sp2 undone');
  t.same(await holdersOf(b), [], 's1: both inserts undone by ROLLBACK TO');
  t.same(await holdersOf(d), ['s2'], 's2: kept');
  t.equal(await preparedLeft(), 0);
});

t.test('a statement that cannot run in a transaction fails on one shard: the error names where it applied', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  await c.query('create table cic_probe (id bigint, v int)');
  t.teardown(() => c.query('drop table if exists cic_probe').catch(() => undefined));
  await s.direct('s1', 'create index cic_probe_v on cic_probe (id)');
  const e = await errorOf(() => c.query('create index concurrently cic_probe_v on cic_probe (v)'));
  t.equal(e?.code, '42P07', `the shard's error: ${e?.message}`);
  const indexed = await s.holders("select 1 from pg_indexes where indexname = 'cic_probe_v' and indexdef like '%(v)'");
  t.same(indexed, ['s0'], 'applied on s0, the shard before the failing one');
  t.match(notices.join('\n'), /failed on shard "s1"; it was applied on "s0" and not on "s1", "s2"/, `a warning names the shards: ${notices.join(' | ')}`);
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'the session goes on');
});
