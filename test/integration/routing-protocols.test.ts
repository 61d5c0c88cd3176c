// Routing in each way clients talk: pgbench in simple, extended and prepared mode; transactions through
// node-postgres; pgjdbc-style pipelined extended batches at byte level; manual routing by comment and SET.
import t, { type Test as Tap } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errorOf, pgClient } from '../helpers/proxy.js';
import { RawClient, serialize, type BackendMessage } from '../helpers/raw-client.js';
import { pgbench } from '../helpers/tools.js';
import { SHARD_IDS, extended, keysOnTwoShards, withSharded } from '../helpers/three-shards.js';

const s = await withSharded(t);
const ACCOUNTS = 6000;

t.test('pgbench select by aid, in simple, extended and prepared mode', async (t) => {
  // pgbench's tables, empty, created on each shard directly.
  for (const c of s.clusters) {
    const init = await pgbench(c.port, ['-i', '-I', 'dt', '-s', '1', '-q']);
    t.equal(init.code, 0, `pgbench -i -I dt on port ${c.port} (${init.stderr.trim().split('\n').at(-1)})`);
  }
  // 6000 accounts through pgshard, one row per statement, by six connections.
  const workers = 6;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const c = await pgClient(s.proxy.port);
      try {
        for (let aid = w + 1; aid <= ACCOUNTS; aid += workers) {
          if (aid % 2) await c.query('insert into pgbench_accounts (aid, bid, abalance, filler) values ($1, 1, 0, $2)', [aid, '']);
          else await c.query(`insert into pgbench_accounts (aid, bid, abalance, filler) values (${aid}, 1, 0, '')`);
        }
      } finally {
        await c.end();
      }
    }),
  );
  let misplaced = 0;
  let total = 0;
  for (const id of SHARD_IDS) {
    const rows = await s.direct<{ aid: number }>(id, 'select aid from pgbench_accounts');
    total += rows.length;
    misplaced += rows.filter((r) => s.owner('pgbench_accounts', r.aid) !== id).length;
    t.ok(rows.length > ACCOUNTS / 6, `${id} holds ${rows.length} accounts`);
  }
  t.equal(total, ACCOUNTS, '6000 accounts in all');
  t.equal(misplaced, 0, 'each on its owner');

  // `\gset` makes pgbench fail the client when the SELECT does not return exactly one row, i.e. when it
  // reached a shard that does not hold the account.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshard-pgbench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'select.sql');
  await writeFile(script, `\\set aid random(1, ${ACCOUNTS})\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid \\gset\n`);
  for (const mode of ['simple', 'extended', 'prepared']) {
    const r = await pgbench(s.proxy.port, ['-n', '-f', script, '-M', mode, '-c', '4', '-j', '2', '-t', '300']);
    const out = r.stdout + r.stderr;
    t.equal(r.code, 0, `-M ${mode}: exit 0${r.code ? ` (${out.trim().split('\n').slice(-6).join(' | ')})` : ''}`);
    t.match(out, /number of transactions actually processed: 1200\/1200/, `-M ${mode}: 1200/1200 transactions`);
    const failed = /number of failed transactions: (\d+)/.exec(out);
    if (failed) t.equal(failed[1], '0', `-M ${mode}: zero failed transactions`);
    t.notMatch(out, /error|aborted/i, `-M ${mode}: no client errors`);
  }
});

t.test('a transaction by key through node-postgres stays on the owner', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  for (const shard of SHARD_IDS) {
    const [aid] = s.keysOn('pgbench_accounts', shard, 1, 100);
    const before = Number((await s.direct<{ abalance: number }>(shard, 'select abalance from pgbench_accounts where aid = $1', [aid]))[0]!.abalance);
    await c.query('BEGIN');
    const sel = await c.query('select abalance, inet_server_port() as port, txid_current() as tx from pgbench_accounts where aid = $1', [aid]);
    const upd = await c.query('update pgbench_accounts set abalance = abalance + 5 where aid = $1 returning inet_server_port() as port, txid_current() as tx', [aid]);
    const mid = await c.query(`select inet_server_port() as port, txid_current() as tx`); // no table: stays where the transaction is
    await c.query('COMMIT');
    t.equal(sel.rows[0]?.port, s.port(shard), `${shard}: the SELECT ran on the owner`);
    t.equal(upd.rows[0]?.port, s.port(shard), `${shard}: the UPDATE ran on the owner`);
    t.equal(mid.rows[0]?.port, s.port(shard), `${shard}: a no-table statement stayed on the transaction's shard`);
    t.ok(sel.rows[0]?.tx !== undefined && sel.rows[0]?.tx === upd.rows[0]?.tx && upd.rows[0]?.tx === mid.rows[0]?.tx, `${shard}: one transaction (txid ${sel.rows[0]?.tx})`);
    t.same(await s.holders('select 1 from pgbench_accounts where aid = $1', [aid]), [shard], `${shard}: account only there`);
    const after = Number((await s.direct<{ abalance: number }>(shard, 'select abalance from pgbench_accounts where aid = $1', [aid]))[0]!.abalance);
    t.equal(after, before + 5, `${shard}: committed`);
  }
  // Simple protocol, and a rolled-back transaction leaves nothing.
  const [aid] = s.keysOn('pgbench_accounts', 's1', 1, 200);
  await c.query('BEGIN');
  await c.query(`update pgbench_accounts set abalance = -1 where aid = ${aid}`);
  const r = await c.query(`select abalance, inet_server_port() as port from pgbench_accounts where aid = ${aid}`);
  await c.query('ROLLBACK');
  t.same(r.rows, [{ abalance: -1, port: s.port('s1') }], 'the transaction sees its own update on the owner');
  t.not((await s.direct<{ abalance: number }>('s1', `select abalance from pgbench_accounts where aid = ${aid}`))[0]?.abalance, -1, 'rolled back');
});

/** The messages of one Sync's worth of answers, without ParameterStatus/notices. */
const summary = (msgs: BackendMessage[]): string[] =>
  msgs.filter((m) => m.type !== 'S' && m.type !== 'N').map((m) => (m.type === 'E' ? `E ${m.code}` : m.type === 'C' ? `C ${m.tag}` : m.type === 'Z' ? `Z ${m.status}` : m.type === 'D' ? `D ${m.values!.join(',')}` : m.type));

/** A raw connection with the INSERT prepared as S_1, as pgjdbc prepares a batch's statement. */
async function rawWithInsert(t: Tap): Promise<RawClient> {
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  c.send(serialize.parse({ name: 'S_1', text: 'insert into users (id, name) values ($1, $2)', types: [20, 25] }), serialize.sync());
  t.same(summary(await c.readUntilReady()), ['1', 'Z I'], 'named statement parsed');
  return c;
}

/** Everything the server sends until it is quiet for `quietMs`. */
async function drain(c: RawClient, quietMs = 1000): Promise<string[]> {
  const got: BackendMessage[] = [];
  for (;;) {
    try {
      got.push(await c.readOne(quietMs));
    } catch {
      return summary(got);
    }
  }
}

t.test('pgjdbc-style extended batches route per Bind', async (t) => {
  const keys = Array.from({ length: 12 }, (_, i) => 5001 + i);
  t.equal(new Set(keys.map((k) => s.owner('users', k))).size, 3, 'precondition: the keys cover the three shards');

  await t.test('pipelined Bind/Execute/Sync, one row each, written at once', async (t) => {
    const c = await rawWithInsert(t);
    const msgs: Buffer[] = [];
    for (const k of keys) {
      let key: string | Buffer = String(k);
      if (k === 5001) {
        key = Buffer.alloc(8); // one key in binary int8
        key.writeBigInt64BE(BigInt(k));
      }
      msgs.push(serialize.bind({ statement: 'S_1', values: [key, `jdbc ${k}`] }), serialize.execute({}), serialize.sync());
    }
    c.send(...msgs);
    t.same(await drain(c), keys.flatMap(() => ['2', 'C INSERT 0 1', 'Z I']), 'one BindComplete, INSERT 0 1, ReadyForQuery per Sync — nothing more');
    const wrong: string[] = [];
    for (const k of keys) {
      const h = await s.holders('select 1 from users where id = $1', [k]);
      if (h.length !== 1 || h[0] !== s.owner('users', k)) wrong.push(`${k} on [${h.join(',')}]`);
    }
    t.same(wrong, [], 'each row on its owner only');
  });

  await t.test('a batch with one Sync whose keys are on one shard', async (t) => {
    const c = await rawWithInsert(t);
    const same = s.keysOn('users', 's0', 3, 6000);
    c.send(...same.flatMap((k) => [serialize.bind({ statement: 'S_1', values: [String(k), 'batch'] }), serialize.execute({})]), serialize.sync());
    t.same(await drain(c), [...same.flatMap(() => ['2', 'C INSERT 0 1']), 'Z I'], 'one-shard batch inserted');
    t.same(await s.holders(`select 1 from users where id in (${same.join(',')})`), ['s0'], 'on s0 only');
  });

  await t.test('a batch with one Sync over two shards runs as one transaction, each row on its owner', async (t) => {
    const c = await rawWithInsert(t);
    const { a, b } = keysOnTwoShards(s, 'users', 7000);
    c.send(
      serialize.bind({ statement: 'S_1', values: [String(a), 'a'] }),
      serialize.execute({}),
      serialize.bind({ statement: 'S_1', values: [String(b), 'b'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    t.same(await drain(c), ['2', 'C INSERT 0 1', '2', 'C INSERT 0 1', 'Z I'], 'answered in order, one ReadyForQuery');
    t.same(await s.holders(`select 1 from users where id = ${a}`), [s.owner('users', a)], 'a on its owner');
    t.same(await s.holders(`select 1 from users where id = ${b}`), [s.owner('users', b)], 'b on its owner');
    // The same batch again: the second row is a duplicate on its shard, so neither is applied.
    await s.direct(s.owner('users', a), `delete from users where id = ${a}`);
    c.send(
      serialize.bind({ statement: 'S_1', values: [String(a), 'a'] }),
      serialize.execute({}),
      serialize.bind({ statement: 'S_1', values: [String(b), 'b'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    const failed = await drain(c);
    t.equal(failed.find((x) => x.startsWith('E')), 'E 23505', `the duplicate fails (${failed.join(' ')})`);
    t.same(await s.holders(`select 1 from users where id = ${a}`), [], 'the first row was rolled back with it');
  });

  await t.test('a named SELECT, pipelined over keys of every shard', async (t) => {
    const c = await RawClient.connect(s.proxy.port);
    t.teardown(() => c.close());
    c.send(serialize.parse({ name: 'S_2', text: 'select id, inet_server_port() from users where id = $1', types: [20] }), serialize.sync());
    t.same(summary(await c.readUntilReady()), ['1', 'Z I'], 'parsed');
    const six = keys.slice(0, 6);
    c.send(...six.flatMap((k) => [serialize.bind({ statement: 'S_2', values: [String(k)] }), serialize.execute({}), serialize.sync()]));
    t.same(await drain(c), six.flatMap((k) => ['2', `D ${k},${s.port(s.owner('users', k))}`, 'C SELECT 1', 'Z I']), "each answered by the key's owner");
  });
});

t.test("postgres.js's describe-first: Parse/Describe/Flush, then Bind/Execute/Sync on the key's shard", async (t) => {
  // A new statement with untyped parameters: postgres.js sends Parse + Describe(S) + Flush, waits for
  // ParameterDescription, then Bind + Execute + Sync. The Bind decides the shard, which need not be the
  // one the Parse went to.
  for (const other of [1, 2]) {
    const c = await RawClient.connect(s.proxy.port);
    t.teardown(() => c.close());
    // The session's home shard (where a statement on no table goes), and a key owned by another shard.
    const port = Number((await c.query('select inet_server_port()')).find((m) => m.type === 'D')!.values![0]);
    const home = SHARD_IDS.find((id) => s.port(id) === port)!;
    const shard = SHARD_IDS[(SHARD_IDS.indexOf(home) + other) % 3]!;
    const [k] = s.keysOn('users', shard, 1, 10_000 + other * 100);
    c.send(serialize.parse({ name: 'p1', text: 'insert into users (id, name) values ($1, $2)', types: [] }), serialize.describe({ type: 'S', name: 'p1' }), serialize.flush());
    t.same(await drain(c, 500), ['1', 't', 'n'], `home ${home}: ParseComplete, ParameterDescription, NoData`);
    c.send(serialize.bind({ statement: 'p1', values: [String(k), 'described'] }), serialize.execute({}), serialize.sync());
    t.same(await drain(c, 3000), ['2', 'C INSERT 0 1', 'Z I'], `key ${k} (owner ${shard}): inserted`);
    t.same(await s.holders(`select 1 from users where id = ${k}`), [shard], `key ${k} on ${shard} only`);
  }
});

t.test('node-postgres named statements route per Bind', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const keys = [s.keysOn('users', 's0', 1, 8000)[0]!, s.keysOn('users', 's1', 1, 8000)[0]!, s.keysOn('users', 's2', 1, 8000)[0]!];
  for (const k of keys) await c.query({ name: 'ins', text: 'insert into users (id, name) values ($1, $2)', values: [k, 'named'] });
  for (const k of [...keys, ...keys]) {
    const r = await c.query({ name: 'get', text: 'select name, inet_server_port() as port from users where id = $1', values: [k] });
    t.same(r.rows, [{ name: 'named', port: s.port(s.owner('users', k)) }], `key ${k} from ${s.owner('users', k)}`);
  }
});

t.test('manual routing: comment hints and SET pgshard.shard', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  for (const id of SHARD_IDS) {
    t.same((await c.query(`/* pgshard: shard=${id} */ select inet_server_port() as port`)).rows, [{ port: s.port(id) }], `shard=${id}, simple`);
    t.same((await c.query(extended(`/* pgshard: shard=${id} */ select inet_server_port() as port`))).rows, [{ port: s.port(id) }], `shard=${id}, extended`);
  }
  for (const key of [42, 43, 44, 45]) {
    t.same((await c.query(`/* pgshard: key=${key} */ select inet_server_port() as port`)).rows, [{ port: s.port(s.owner('users', key)) }], `key=${key} → ${s.owner('users', key)}`);
  }
  const e = await errorOf(() => c.query('/* pgshard: shard=s9 */ select 1'));
  t.equal(e?.code, '42704', `unknown shard: ${e?.message}`);

  // A key that is not on s2, present on its owner.
  const [k] = s.keysOn('users', 's0', 1, 9000);
  await s.direct('s0', `insert into users (id, name) values (${k}, 'manual')`);
  const probe = `select inet_server_port() as port, count(*)::int as n from users where id = ${k}`;
  t.same((await c.query(probe)).rows, [{ port: s.port('s0'), n: 1 }], 'before SET: the owner answers');
  t.equal((await c.query("SET pgshard.shard = 's2'")).command, 'SET', 'SET pgshard.shard');
  for (let i = 0; i < 3; i++) t.same((await c.query('select inet_server_port() as port')).rows, [{ port: s.port('s2') }], 'no-table statement on s2');
  t.same((await c.query(probe)).rows, [{ port: s.port('s2'), n: 0 }], 'keyed statement forced to s2 (which lacks the row)');
  t.same((await c.query(extended(probe))).rows, [{ port: s.port('s2'), n: 0 }], 'extended too');
  t.equal((await c.query('RESET pgshard.shard')).command, 'RESET', 'RESET pgshard.shard');
  t.same((await c.query(probe)).rows, [{ port: s.port('s0'), n: 1 }], 'after RESET: the owner answers again');
  const bad = await errorOf(() => c.query("SET pgshard.shard = 'nope'"));
  t.equal(bad?.code, '42704', `SET to an unknown shard: ${bad?.message}`);
  t.same((await c.query(probe)).rows, [{ port: s.port('s0'), n: 1 }], 'a failed SET changes nothing');
});
