// Routing over three real shards: rows written through pgshard land on exactly the shard `pgshard route`
// names, and reads, joins, catalog statements, UPDATE and DELETE reach the right shard(s). Every place a
// row "is" is checked on the shards directly; every "it went there" is checked with inet_server_port().
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { directClient, errorOf, pgClient } from '../helpers/proxy.js';
import { psql } from '../helpers/tools.js';
import { SHARD_IDS, extended, withSharded } from '../helpers/three-shards.js';

const s = await withSharded(t);
const USERS = 600;
const name = (id: number): string => `user ${id}`;

/** Where each user id is, read from every shard directly: id → the shard ids holding it. */
async function placement(): Promise<Map<number, string[]>> {
  const where = new Map<number, string[]>();
  for (const id of SHARD_IDS) {
    for (const r of await s.direct<{ id: string }>(id, 'select id from users')) {
      const k = Number(r.id);
      where.set(k, [...(where.get(k) ?? []), id]);
    }
  }
  return where;
}

t.test('600 users inserted one per statement land on their owner shard only', async (t) => {
  // 1..150: psql -f FILE, plain literals as typed.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshard-routing-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'users.sql');
  let script = '';
  for (let id = 1; id <= 150; id++) script += `INSERT INTO users (id, name, email) VALUES (${id}, '${name(id)}', 'u${id}@example.com');\n`;
  await writeFile(file, script);
  const r = await psql(s.proxy.port, '', { args: ['-f', file] });
  t.equal(r.code, 0, `psql -f exits 0 (stderr: ${r.stderr.trim().slice(0, 300)})`);

  // 151..300: node-postgres, bind parameters; even ids as text, odd ids as binary int8.
  const c = await pgClient(s.proxy.port, { t });
  for (let id = 151; id <= 300; id++) {
    let key: string | Buffer = String(id);
    if (id % 2 === 1) {
      key = Buffer.alloc(8);
      key.writeBigInt64BE(BigInt(id));
    }
    await c.query('INSERT INTO users (id, name, email) VALUES ($1, $2, $3)', [key, name(id), `u${id}@example.com`]);
  }

  // 301..450: postgres.js (named prepared statements, text-format values): a JS bigint is sent typed
  // int8, a number untyped (the server infers the type), a string as text.
  // A new statement is sent as Parse/Describe/Flush, then Bind/Execute/Sync once its types are known.
  const sql = postgres(s.proxy.url, { max: 1, onnotice: () => undefined });
  t.teardown(() => sql.end({ timeout: 1 }));
  for (let id = 301; id <= 450; id++) {
    const key = id % 3 === 0 ? BigInt(id) : id % 3 === 1 ? id : String(id);
    const insert = sql`INSERT INTO users (id, name, email) VALUES (${key as number}, ${name(id)}, ${`u${id}@example.com`})`;
    const outcome = await Promise.race([insert.then(() => 'ok', (e: Error) => e.message), new Promise<string>((r) => setTimeout(() => r('no answer within 10 s'), 10_000))]);
    if (outcome !== 'ok') {
      t.fail(`postgres.js INSERT of id ${id} (key owned by ${s.owner('users', id)}): ${outcome}`);
      // So that the checks below still cover the other clients: the remaining rows through node-postgres.
      for (let rest = id; rest <= 450; rest++) await c.query('INSERT INTO users (id, name, email) VALUES ($1, $2, $3)', [rest, name(rest), `u${rest}@example.com`]);
      break;
    }
  }

  // 451..600: plain literal statements (simple protocol), no routing comment, in several spellings.
  for (let id = 451; id <= USERS; id++) {
    const lit = id % 3 === 0 ? String(id) : id % 3 === 1 ? `'${id}'` : `${id}::bigint`;
    await c.query(`INSERT INTO users (id, name, email) VALUES (${lit}, '${name(id)}', 'u${id}@example.com')`);
  }

  const where = await placement();
  const misplaced: string[] = [];
  for (let id = 1; id <= USERS; id++) {
    const want = s.owner('users', id);
    const got = where.get(id) ?? [];
    if (got.length !== 1 || got[0] !== want) misplaced.push(`${id}: on [${got.join(',')}], owner ${want}`);
  }
  t.same(misplaced.slice(0, 20), [], `every id is on its owner and nowhere else (${misplaced.length} misplaced)`);
  t.equal([...where.keys()].filter((k) => k < 1 || k > USERS).length, 0, 'no other ids anywhere');

  const shares = await Promise.all(SHARD_IDS.map(async (id) => Number((await s.direct<{ n: string }>(id, 'select count(*) as n from users'))[0]!.n)));
  t.equal(shares.reduce((a, b) => a + b, 0), USERS, `600 rows in all (${shares.join(' + ')})`);
  for (const [i, n] of shares.entries()) t.ok(n > USERS / 6, `${SHARD_IDS[i]} holds ${n} rows, more than 1/6`);
});

t.test('reads by key reach the owner and return the row', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const port42 = s.port(s.owner('users', 42));
  const cases: [string, unknown[]][] = [
    ['select id, name, inet_server_port() as port from users where id = $1', [42]],
    ['select id, name, inet_server_port() as port from users where id = 42', []],
    ["select id, name, inet_server_port() as port from users where id = '42'", []],
    ['select u.id, u.name, inet_server_port() as port from users u where u.id = $1::bigint', ['42']],
    ['select u.id, u.name, inet_server_port() as port from public.users as u where 42 = u.id and u.name is not null', []],
  ];
  for (const [text, values] of cases) {
    const r = await errorOf(async () => {
      const res = await c.query(text, values);
      t.same(res.rows, [{ id: '42', name: name(42), port: port42 }], text);
    });
    t.equal(r, null, `no error: ${text}${r ? ` (${r.message})` : ''}`);
  }
});

t.test('IN, = ANY($1) and OR of equalities', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const six = [1, 2, 3, 4, 5, 6];
  t.ok(new Set(six.map((k) => s.owner('users', k))).size > 1, 'precondition: keys 1..6 live on several shards');

  // Simple protocol, several shards: the shards' rows concatenated.
  const inList = await c.query('select id, inet_server_port() as port from users where id in (1,2,3,4,5,6)');
  t.same(
    inList.rows.map((r: { id: string; port: number }) => [Number(r.id), r.port]).sort((a, b) => a[0]! - b[0]!),
    six.map((k) => [k, s.port(s.owner('users', k))]),
    'IN (1..6): 6 rows, each from its owner',
  );
  t.equal(inList.rowCount, 6, 'command tag counts the 6 rows');

  // = ANY($1) with keys on one shard: extended protocol, one shard.
  const same = s.keysOn('users', 's1', 3);
  const any = await c.query('select id, inet_server_port() as port from users where id = ANY($1) order by id', [same]);
  t.same(
    any.rows.map((r: { id: string; port: number }) => [Number(r.id), r.port]),
    same.map((k) => [k, s.port('s1')]),
    `= ANY($1) with ${same.join(',')} (all on s1)`,
  );
  // = ANY($1) over several shards: the extended protocol concatenates the owners' rows too.
  const cross = await c.query('select id from users where id = ANY($1)', [six]);
  t.same(cross.rows.map((r: { id: string }) => Number(r.id)).sort((a, b) => a - b), six, `= ANY($1) over several shards in the extended protocol: ${cross.rowCount} rows`);
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }], 'session still works');

  const or = await c.query('select id, inet_server_port() as port from users where id = 7 or id = 8 or id = 9');
  t.same(
    or.rows.map((r: { id: string; port: number }) => [Number(r.id), r.port]).sort((a, b) => a[0]! - b[0]!),
    [7, 8, 9].map((k) => [k, s.port(s.owner('users', k))]),
    'OR of equalities',
  );
  const [k1, k2] = s.keysOn('users', 's2', 2);
  const orParams = await c.query('select id, inet_server_port() as port from users where id = $1 or id = $2 order by id', [k1, k2]);
  t.same(
    orParams.rows.map((r: { id: string; port: number }) => [Number(r.id), r.port]),
    [k1, k2].map((k) => [k, s.port('s2')]),
    'OR of parameter equalities on one shard',
  );
});

t.test('a keyless SELECT returns every row once', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const r = await c.query('select * from users');
  t.equal(r.rowCount, USERS, 'command tag: 600');
  const ids = r.rows.map((x: { id: string }) => Number(x.id)).sort((a, b) => a - b);
  t.same(ids, Array.from({ length: USERS }, (_, i) => i + 1), 'ids 1..600, each once');
  t.same(Object.keys(r.rows[0] ?? {}), ['id', 'name', 'email', 'country'], 'columns as one Postgres would give');
});

t.test('a join on the shard key with a key condition runs on the owner', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await c.query('insert into orders (id, user_id, amount) values (1, 42, 10.50)');
  await c.query('insert into orders (id, user_id, amount) values ($1, $2, $3)', [2, 42, '20.00']);
  await c.query('insert into orders (id, user_id, amount) values (1, 43, 5)');
  t.same(await s.holders('select 1 from orders where user_id = 42'), [s.owner('orders', 42)], 'orders of 42 are on the owner of 42');
  t.same(await s.holders('select 1 from orders where user_id = 43'), [s.owner('orders', 43)], 'orders of 43 are on the owner of 43');
  const want = [
    { id: '42', name: name(42), order_id: '1', amount: '10.50', port: s.port(s.owner('users', 42)) },
    { id: '42', name: name(42), order_id: '2', amount: '20.00', port: s.port(s.owner('users', 42)) },
  ];
  const text = 'select u.id, u.name, o.id as order_id, o.amount, inet_server_port() as port from users u join orders o on o.user_id = u.id where u.id = ';
  t.same((await c.query(`${text}42 order by o.id`)).rows, want, 'literal key');
  t.same((await c.query(`${text}$1 order by o.id`, [42])).rows, want, 'parameter key');
});

t.test('reference table, SELECT 1, SHOW and psql catalog commands', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  const d = await directClient(s.clusters[0]!, { t });
  for (const text of ['select code, name from countries order by code', 'select 1 as one', 'show server_version', "select count(*) from pg_class where relname = 'users'"]) {
    t.same((await c.query(text)).rows, (await d.query(text)).rows, `simple: ${text}`);
    t.same((await c.query(extended(text))).rows, (await d.query(extended(text))).rows, `extended: ${text}`);
  }
  const viaProxy = await psql(s.proxy.port, '\\d users\n\\dt\n');
  const direct = await psql(s.clusters[0]!.port, '\\d users\n\\dt\n');
  t.equal(viaProxy.code, 0, `psql \\d users and \\dt exit 0 (${viaProxy.stderr.trim()})`);
  t.match(viaProxy.stdout, /Table "public\.users"/, '\\d users describes the table');
  t.match(viaProxy.stdout, /countries[\s\S]*events[\s\S]*orders[\s\S]*users/, '\\dt lists the tables');
  t.equal(viaProxy.stdout, direct.stdout, 'same output as psql straight to a shard');
});

t.test('UPDATE and DELETE by key change only the owner', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  // A key inserted through pgshard, and decoy rows with the same key planted on the other shards: a
  // statement sent anywhere but the owner would touch a decoy.
  const key = 1001;
  const owner = s.owner('users', key);
  await c.query(`insert into users (id, name) values (${key}, 'real')`);
  const others = SHARD_IDS.filter((id) => id !== owner);
  for (const id of others) await s.direct(id, `insert into users (id, name) values (${key}, 'decoy')`);
  t.teardown(() => Promise.all(others.map((id) => s.direct(id, `delete from users where id = ${key}`))));

  const names = async () => Promise.all(SHARD_IDS.map(async (id) => (await s.direct<{ name: string }>(id, `select name from users where id = ${key}`)).map((r) => r.name)));
  const expected = (ownerName: string | null) => SHARD_IDS.map((id) => (id === owner ? (ownerName === null ? [] : [ownerName]) : ['decoy']));

  const u1 = await c.query(`update users set name = 'renamed' where id = ${key}`);
  t.equal(u1.rowCount, 1, 'UPDATE 1 (literal key)');
  t.same(await names(), expected('renamed'), 'only the owner row changed');
  const u2 = await c.query('update users set name = $1 where id = $2', ['renamed again', key]);
  t.equal(u2.rowCount, 1, 'UPDATE 1 (parameter key)');
  t.same(await names(), expected('renamed again'), 'only the owner row changed');

  const d1 = await c.query('delete from users where id = $1', [key]);
  t.equal(d1.rowCount, 1, 'DELETE 1');
  t.same(await names(), expected(null), 'only the owner row is gone');
  t.equal((await c.query(`delete from users where id = ${key}`)).rowCount, 0, 'DELETE again: 0 rows, still on the owner');
  t.same(await names(), expected(null), 'decoys untouched');
});
