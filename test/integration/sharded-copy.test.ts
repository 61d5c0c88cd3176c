// COPY FROM STDIN into sharded tables, in text, CSV and binary format, from psql and from a raw protocol
// client: every row lands on the shard that owns its key (as `pgshard route` says), the command tag is the
// total, and a COPY that fails leaves no row and no prepared transaction anywhere.
import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TABLES, SHARD_IDS, withSharded } from '../helpers/three-shards.js';
import { RawClient, fe, type BackendMessage } from '../helpers/raw-client.js';
import { psql } from '../helpers/tools.js';
import { startFaultRelay } from '../helpers/fault-relay.js';
import { sleep, startProxy } from '../helpers/proxy.js';
import { numericFromBinary } from '../../src/execute/copy-binary-key.js';

const EXTRA = `
CREATE TABLE bin_int (k int PRIMARY KEY, v text);
CREATE TABLE bin_num (k numeric(20,0) PRIMARY KEY, v text);
CREATE TABLE bin_uuid (v text, k uuid PRIMARY KEY);
CREATE TABLE bin_text (k varchar(40) PRIMARY KEY, v text);
CREATE TABLE bin_char (k char(4) PRIMARY KEY, v text);
CREATE DOMAIN positive_id AS bigint CHECK (VALUE > 0);
CREATE TABLE bin_domain (k positive_id PRIMARY KEY, v text);
CREATE UNLOGGED TABLE copy_sink (k bigint, payload text);
`;

const s = await withSharded(t, {
  schema: EXTRA,
  overrides: {
    tables: {
      ...TABLES,
      bin_int: { shard_key: 'k', key_type: 'int' },
      bin_num: { shard_key: 'k', key_type: 'bigint' },
      bin_uuid: { shard_key: 'k', key_type: 'uuid' },
      bin_text: { shard_key: 'k', key_type: 'text' },
      bin_char: { shard_key: 'k', key_type: 'text' },
      bin_domain: { shard_key: 'k', key_type: 'bigint' },
      copy_sink: { shard_key: 'k', key_type: 'bigint' },
    },
  },
});
/** psql runs with -q; the COPY tag is printed only when QUIET is off. */
const QUIET_OFF = { args: ['-v', 'QUIET=off'] };
const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshard-copy-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** Every row of `table` (key as text) on each shard is on the shard that owns it; returns how many rows there are. */
async function rowsWhereTheyBelong(t: Test, table: string, where = 'true', key = 'k'): Promise<number> {
  let n = 0;
  for (const id of SHARD_IDS) {
    const rows = await s.direct<{ k: string }>(id, `select ${key}::text as k from ${table} where ${where}`);
    const misplaced = rows.filter((r) => s.owner(table, r.k) !== id);
    t.same(misplaced, [], `no row of ${table} on ${id} belongs elsewhere (${rows.length} rows there)`);
    n += rows.length;
  }
  return n;
}

async function preparedLeft(): Promise<number> {
  return s.total('select count(*) from pg_prepared_xacts');
}

/** A binary COPY file made by a plain Postgres (shard s0, straight): `COPY (query) TO STDOUT (FORMAT binary)`. */
async function binaryFile(name: string, query: string): Promise<string> {
  const file = path.join(dir, name);
  const r = await psql(s.port('s0'), `\\copy (${query}) to '${file}' with (format binary)`);
  if (r.code !== 0) throw new Error(r.stderr);
  return file;
}

t.test('text format from psql: rows on their owners, COPY n', async (t) => {
  const lines = Array.from({ length: 300 }, (_, i) => `${1000 + i}\tname ${i} \\t tab\t\\N\tcc`);
  const r = await psql(s.proxy.port, `\\copy users (id, name, email, country) from stdin\n${lines.join('\n')}\n\\.\n`, QUIET_OFF);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /COPY 300/, 'the tag counts every row');
  t.equal(await rowsWhereTheyBelong(t, 'users', "country = 'cc'", 'id'), 300);
  t.equal((await s.direct('s1', "select name, email from users where id = $1", [s.keysOn('users', 's1', 1, 1000)[0]]))[0]?.email, null, '\\N is NULL');
  t.equal(await preparedLeft(), 0);
});

t.test('CSV with HEADER, quoting, a custom delimiter and NULL marker', async (t) => {
  const data = [
    'id;name;email;country',
    '2001;"semi;colon";nil;csv',
    '2002;"line',
    'break";"";csv',
    '"2003";"say ""hi""";x@y;csv',
    '2004;plain;"nil";csv',
  ].join('\n');
  // From a file: psql 15 sends the `\\.` line of inline data, which PostgreSQL 18 reads as data in CSV.
  const file = path.join(dir, 'users.csv');
  await writeFile(file, data + '\n');
  const r = await psql(s.proxy.port, `\\copy users (id, name, email, country) from '${file}' with (format csv, header, delimiter ';', null 'nil')`, QUIET_OFF);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /COPY 4/);
  t.equal(await rowsWhereTheyBelong(t, 'users', "country = 'csv'", 'id'), 4);
  const got = new Map<string, { name: string; email: string | null }>();
  for (const id of SHARD_IDS)
    for (const row of await s.direct<{ id: string; name: string; email: string | null }>(id, "select id, name, email from users where country = 'csv'"))
      got.set(row.id, { name: row.name, email: row.email });
  t.same(Object.fromEntries(got), {
    '2001': { name: 'semi;colon', email: null },
    '2002': { name: 'line\nbreak', email: '' },
    '2003': { name: 'say "hi"', email: 'x@y' },
    '2004': { name: 'plain', email: 'nil' },
  }, 'values decoded as Postgres decodes them (a quoted NULL marker is text)');
});

t.test('binary format from psql (a file COPY TO made on a plain Postgres): each row on its owner', async (t) => {
  const file = await binaryFile('users.bin', "select g::bigint, 'bin ' || g, null::text, 'bn' from generate_series(3000, 3499) g");
  const r = await psql(s.proxy.port, `\\copy users (id, name, email, country) from '${file}' with (format binary)`, QUIET_OFF);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /COPY 500/, 'the tag is the total');
  t.equal(await rowsWhereTheyBelong(t, 'users', "country = 'bn'", 'id'), 500);
  t.same(await s.direct(s.owner('users', 3123), 'select name, email from users where id = 3123'), [{ name: 'bin 3123', email: null }], 'values intact');
  t.equal(await preparedLeft(), 0);
});

t.test('binary format: int4, numeric, uuid, varchar and domain keys route as their text form does', async (t) => {
  const cases: [string, string][] = [
    ['bin_int', "select (g * 7919 - 500000)::int, 'v' || g from generate_series(1, 200) g"],
    ['bin_num', "select (g::numeric * 100000000000), 'v' || g from generate_series(1, 200) g"],
    ['bin_uuid', "select 'v' || g, md5(g::text)::uuid from generate_series(1, 200) g"],
    ['bin_text', "select 'key ü ' || g, 'v' || g from generate_series(1, 200) g"],
    ['bin_domain', "select g::bigint, 'v' || g from generate_series(1, 200) g"],
  ];
  for (const [table, query] of cases) {
    const file = await binaryFile(`${table}.bin`, query);
    const r = await psql(s.proxy.port, `\\copy ${table} from '${file}' with (format binary)`, QUIET_OFF);
    t.equal(r.code, 0, `${table}: ${r.stderr}`);
    t.match(r.stdout, /COPY 200/, `${table}: COPY 200`);
    t.equal(await rowsWhereTheyBelong(t, table), 200, `${table}: every row, on its owner`);
  }
  t.equal(await preparedLeft(), 0);
});

t.test('binary numeric keys are read exactly as numeric_recv and numeric_out read them', async (t) => {
  const values = ['0', '42', '-42', '10000', '9999.9999', '-0.0001', '123456789012345678901234567890', '1e-20', '100000000.0000', "'NaN'", "'Infinity'"];
  const rows = await s.direct<{ b: Buffer; txt: string }>('s0', `select numeric_send(v) as b, v::text as txt from (values ${values.map((v) => `(${v}::numeric)`).join(',')}) x(v)`);
  for (const row of rows) t.equal(numericFromBinary(row.b), row.txt, `numeric ${row.txt}`);
});

/** Sends a COPY statement and `data` in CopyData messages of `chunk` bytes, then CopyDone; the answer up to ReadyForQuery. */
async function rawCopy(c: RawClient, sql: string, data: Buffer, chunk: number): Promise<BackendMessage[]> {
  c.send(fe.query(sql));
  const first = await c.readUntil(['G', 'Z'], 10_000);
  if (first.at(-1)!.type === 'Z') return first;
  const parts: Buffer[] = [];
  for (let p = 0; p < data.length; p += chunk) parts.push(copyData(data.subarray(p, p + chunk)));
  parts.push(Buffer.from([0x63, 0, 0, 0, 4]));
  c.send(...parts);
  return [...first, ...(await c.readUntilReady(10_000))];
}

function copyData(b: Buffer): Buffer {
  const m = Buffer.alloc(5 + b.length);
  m[0] = 0x64;
  m.writeInt32BE(4 + b.length, 1);
  b.copy(m, 5);
  return m;
}

t.test('binary format in odd-sized CopyData messages from a raw client; in a transaction', async (t) => {
  const data = await readFile(await binaryFile('raw.bin', "select g::bigint, 'raw ' || g, 'e', 'rw' from generate_series(4000, 4099) g"));
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  let m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN (FORMAT binary)', data, 7);
  t.same(m.filter((x) => x.type === 'C').map((x) => x.tag), ['COPY 100'], 'COPY 100 from 7-byte messages');
  t.equal(await rowsWhereTheyBelong(t, 'users', "country = 'rw'", 'id'), 100);

  // Inside a transaction: rolled back everywhere, then committed everywhere.
  await c.query('begin');
  const again = await readFile(await binaryFile('raw2.bin', "select g::bigint, 'raw ' || g, 'e', 'rw2' from generate_series(4100, 4149) g"));
  m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN BINARY', again, 1);
  t.same(m.filter((x) => x.type === 'C').map((x) => x.tag), ['COPY 50'], 'one byte per message');
  t.equal(m.at(-1)!.status, 'T', 'still in the transaction');
  t.equal((await c.query('rollback')).find((x) => x.type === 'C')?.tag, 'ROLLBACK');
  t.equal(await s.total("select count(*) from users where country = 'rw2'"), 0, 'rolled back on every shard');
  await c.query('begin');
  await c.query('create table bin_new (id bigint, name text, email text, country text)');
  m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN BINARY', again, 1000);
  t.same(m.filter((x) => x.type === 'C').map((x) => x.tag), ['COPY 50']);
  t.equal((await c.query('commit')).find((x) => x.type === 'C')?.tag, 'COMMIT');
  t.equal(await rowsWhereTheyBelong(t, 'users', "country = 'rw2'", 'id'), 50, 'committed on every shard');
  await c.query('drop table bin_new');
  t.equal(await preparedLeft(), 0);
});

t.test('binary COPY errors: NULL key, malformed data, unsupported key type; nothing is written, the session goes on', async (t) => {
  const c = await RawClient.connect(s.proxy.port);
  t.teardown(() => c.close());
  const errorOf = (m: BackendMessage[]) => m.find((x) => x.type === 'E');

  const withNull = await readFile(await binaryFile('null.bin', "select case when g = 5020 then null else g end::bigint, 'n', 'e', 'nullkey' from generate_series(5000, 5040) g"));
  let m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN (FORMAT binary)', withNull, 100);
  t.equal(errorOf(m)?.code, '0A000', `NULL key: ${errorOf(m)?.message}`);
  t.match(errorOf(m)?.message, /NULL in the shard key column "id" of "users"/, 'the same error as a NULL key in text COPY');
  const textAnswer = await rawCopy(c, 'COPY users (id, name) FROM STDIN', Buffer.from('\\N\tx\n'), 100);
  t.equal(errorOf(textAnswer)?.message, errorOf(m)?.message, 'text COPY says the same');
  t.equal(await s.total("select count(*) from users where country = 'nullkey'"), 0, 'no row kept anywhere');

  const good = await readFile(await binaryFile('good.bin', "select g::bigint, 'n', 'e', 'bad' from generate_series(6000, 6020) g"));
  const truncated = good.subarray(0, good.length - 10);
  m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN (FORMAT binary)', truncated, 50);
  t.equal(errorOf(m)?.code, '22P04', `truncated data: ${errorOf(m)?.message}`);
  t.equal(errorOf(m)?.message, 'unexpected EOF in COPY data');
  m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN (FORMAT binary)', Buffer.from('1\tx\t\\N\tbad\n'), 50);
  t.equal(errorOf(m)?.code, '22P04');
  t.equal(errorOf(m)?.message, 'COPY file signature not recognized', 'text data sent as binary');
  m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN (FORMAT binary)', Buffer.concat([good, Buffer.from([0])]), 50);
  t.equal(errorOf(m)?.message, 'received copy data after EOF marker');
  t.equal(await s.total("select count(*) from users where country = 'bad'"), 0, 'no row kept anywhere');

  m = await rawCopy(c, 'COPY bin_char FROM STDIN (FORMAT binary)', Buffer.alloc(0), 1);
  t.equal(errorOf(m)?.code, '0A000', `char(n) key: ${errorOf(m)?.message}`);
  t.match(errorOf(m)?.message, /of type character \(key_type text\)/);
  t.notOk(m.some((x) => x.type === 'G'), 'refused before the data starts');
  m = await rawCopy(c, 'COPY users (id, name) FROM STDIN (FORMAT binary, DELIMITER \'|\')', Buffer.alloc(0), 1);
  t.equal(errorOf(m)?.code, '42601', `an option binary COPY refuses: the shards' own error (${errorOf(m)?.message})`);
  m = await rawCopy(c, 'COPY no_such_table (id) FROM STDIN (FORMAT binary)', Buffer.alloc(0), 1);
  t.ok(errorOf(m), `an unknown table: ${errorOf(m)?.code} ${errorOf(m)?.message}`);

  // In a transaction the failed COPY fails the transaction, as in Postgres.
  await c.query('begin');
  m = await rawCopy(c, 'COPY users (id, name, email, country) FROM STDIN (FORMAT binary)', truncated, 50);
  t.equal(m.at(-1)!.status, 'E', 'the transaction is failed');
  t.equal(errorOf(await c.query('select 1'))?.code, '25P02');
  await c.query('rollback');
  t.same((await c.query('select 1')).find((x) => x.type === 'D')?.values, ['1'], 'the session goes on');
  t.equal(await preparedLeft(), 0);
});

t.test('a shard that does not keep up holds the client back: pgshard stops reading instead of buffering', async (t) => {
  const relay = await startFaultRelay(t, { port: s.port('s1') });
  const p = await startProxy(t, [{ port: s.port('s0') }, { port: relay.port }, { port: s.port('s2') }], {
    tables: { ...TABLES, copy_sink: { shard_key: 'k', key_type: 'bigint' } },
    transactions: { instance_id: 'copyslow', log_file: path.join(dir, 'txlog-copyslow.jsonl') },
  });
  const c = await RawClient.connect(p.port);
  t.teardown(() => c.close());
  c.send(fe.query('COPY copy_sink (k, payload) FROM STDIN'));
  t.match(await c.readUntil(['G', 'E'], 10_000), [{ type: 'G' }], 'CopyInResponse');
  relay.stall();
  const ROWS = 20_000;
  const filler = 'x'.repeat(1900); // under the TOAST threshold: the shards store it as it is, quickly
  const MB = 1024 * 1024;
  let sent = 0;
  for (let i = 0; i < ROWS; i += 500) {
    const lines: string[] = [];
    for (let k = i; k < i + 500; k++) lines.push(`${k}\t${filler}\n`);
    const msg = copyData(Buffer.from(lines.join('')));
    sent += msg.length;
    c.socket.write(msg);
  }
  // Without backpressure pgshard would read all of it at once and hold what s1 does not take. (Enough data
  // that s1's third exceeds what the kernel's socket buffers between pgshard and the relay absorb.)
  await sleep(3000);
  const held = c.socket.writableLength;
  t.ok(held > 10 * MB, `pgshard stopped reading: ${(held / MB).toFixed(1)} of ${(sent / MB).toFixed(1)} MB still wait in the client`);
  relay.flow();
  c.send(Buffer.from([0x63, 0, 0, 0, 4]));
  const done = await c.readUntilReady(120_000);
  t.same(done.filter((m) => m.type === 'C').map((m) => m.tag), [`COPY ${ROWS}`], 'then every row arrives');
  t.equal(await rowsWhereTheyBelong(t, 'copy_sink'), ROWS);
});

/** The rows of the reference table `countries` on each shard (code|name, sorted). */
async function countriesEverywhere(): Promise<string[][]> {
  return Promise.all(SHARD_IDS.map(async (id) => (await s.direct<{ r: string }>(id, "select code || '|' || name as r from countries order by code")).map((x) => x.r)));
}

t.test('COPY FROM into a reference table: every shard gets every row, the tag counts them once', async (t) => {
  const before = await countriesEverywhere();
  const lines = Array.from({ length: 50 }, (_, i) => `t${i}\tText land ${i}`);
  const r = await psql(s.proxy.port, `\\copy countries (code, name) from stdin\n${lines.join('\n')}\n\\.\n`, QUIET_OFF);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /COPY 50\b/, 'the tag counts the rows once, not once per shard');
  const after = await countriesEverywhere();
  t.equal(after[0]!.length, before[0]!.length + 50);
  t.same(after[1], after[0], 'shard s1 holds the same rows as s0');
  t.same(after[2], after[0], 'shard s2 too');

  // Binary format: the client's stream (header, tuples, trailer) reaches every shard unchanged.
  const file = await binaryFile('ref.bin', "select 'b' || g, 'Binary land ' || g from generate_series(1, 20) g");
  const b = await psql(s.proxy.port, `\\copy countries (code, name) from '${file}' with (format binary)`, QUIET_OFF);
  t.equal(b.code, 0, b.stderr);
  t.match(b.stdout, /COPY 20\b/);
  const bin = await countriesEverywhere();
  t.equal(bin[0]!.length, before[0]!.length + 70);
  t.same(bin[1], bin[0]);
  t.same(bin[2], bin[0]);
  t.equal(await preparedLeft(), 0);
});

t.test('COPY FROM into a reference table that fails (a duplicate key) writes nothing anywhere; in a transaction, ROLLBACK undoes it', async (t) => {
  const before = await countriesEverywhere();
  const dup = await psql(s.proxy.port, `\\copy countries (code, name) from stdin\nzz\tNew\nde\tAgain\n\\.\n`);
  t.not(dup.code, 0);
  t.match(dup.stderr, /duplicate key value violates unique constraint "countries_pkey"/);
  t.same(await countriesEverywhere(), before, 'no shard kept a row');
  const tx = await psql(s.proxy.port, `BEGIN;\n\\copy countries (code, name) from stdin\nq1\tOne\nq2\tTwo\n\\.\nSELECT count(*) FROM countries WHERE code LIKE 'q%';\nROLLBACK;\n`, { tuplesOnly: true });
  t.equal(tx.code, 0, tx.stderr);
  t.match(tx.stdout, /^\s*2\s*$/m, 'the transaction sees its rows');
  t.same(await countriesEverywhere(), before, 'rolled back on every shard');
  t.equal(await preparedLeft(), 0);
});

t.test('COPY FROM into a reference table from node-postgres with pg-copy-streams', async (t) => {
  const { default: pg } = await import('pg');
  const { from: copyFrom } = await import('pg-copy-streams');
  const { pipeline } = await import('node:stream/promises');
  const { Readable } = await import('node:stream');
  const before = await countriesEverywhere();
  const c = new pg.Client({ connectionString: s.proxy.url });
  await c.connect();
  t.teardown(() => c.end());
  const chunks = Array.from({ length: 10 }, (_, k) => Array.from({ length: 100 }, (_, i) => `n${k * 100 + i}\tNode land ${k * 100 + i}\n`).join(''));
  await pipeline(Readable.from(chunks), c.query(copyFrom('COPY countries (code, name) FROM STDIN')));
  const after = await countriesEverywhere();
  t.equal(after[0]!.length, before[0]!.length + 1000);
  t.same(after[1], after[0]);
  t.same(after[2], after[0]);
  t.equal((await c.query("select count(*)::int as n from countries where code like 'n%'")).rows[0].n, 1000, 'and the session goes on');
});
