// The rebalance's bulk copy (COPY TO STDOUT → COPY FROM STDIN), against real Postgres: rows reach the
// destination their key names, byte for byte; counts and progress add up; the source is not read ahead of
// a destination that does not take rows (backpressure); an aborted copy writes nothing and leaves the
// destinations' connections usable.
import t from 'tap';
import { withShards, APP } from '../helpers/shards.js';
import { sleep } from '../helpers/proxy.js';
import { connect, end, rows } from '../../src/rebalance/pg.js';
import { copyField, copyRows, unescapeCopyText, type CopyCounts } from '../../src/rebalance/copy.js';

t.test('COPY text fields are decoded as COPY writes them', async (t) => {
  const f = (s: string) => unescapeCopyText(Buffer.from(s, 'utf8'));
  t.equal(f('plain'), 'plain');
  t.equal(f('\\N'), null);
  t.equal(f('a\\tb\\nc\\\\d\\re'), 'a\tb\nc\\d\re');
  t.equal(f('\\b\\f\\v'), '\b\f\v');
  t.equal(f('\\101\\x42\\7'), 'AB\x07', 'octal and hex escapes');
  t.equal(f('\\xz'), 'xz', 'a \\x without digits is an x');
  t.equal(f('\\303\\251'), 'é', 'escaped bytes form UTF-8 characters');
  t.equal(f('grüße'), 'grüße');
  t.equal(f('\\N\\N'), 'NN', 'only a whole field \\N is NULL');
  const line = Buffer.from('x\t42\tk\\tey\t\\N\nnext\t1\n');
  const nl = line.indexOf(10);
  t.equal(copyField(line, 0, nl, 0), 'x');
  t.equal(copyField(line, 0, nl, 1), '42');
  t.equal(copyField(line, 0, nl, 2), 'k\tey');
  t.equal(copyField(line, 0, nl, 3), null, 'the last field stops at the line end, not at the next line');
  t.throws(() => copyField(line, 0, nl, 4), /fewer than 5 fields/);
});

t.test('rows go to the destination their key names, with every value intact', async (t) => {
  const shards = await withShards(t, 3);
  const [src, a, b] = shards.clusters;
  const ddl = `CREATE TABLE things (k text PRIMARY KEY, n int, body text, raw bytea, tags text[], doc jsonb, at timestamptz, id int GENERATED ALWAYS AS IDENTITY)`;
  for (const c of [src!, a!, b!]) await c.query(ddl, 'app');
  await src!.query(
    `INSERT INTO things (k, n, body, raw, tags, doc, at) OVERRIDING SYSTEM VALUE
     SELECT 'k' || i, i, CASE WHEN i % 7 = 0 THEN NULL ELSE E'line\\none\\ttab \\\\ back ' || repeat('é', i % 5) END,
            decode(lpad(to_hex(i), 8, '0'), 'hex'), ARRAY['a', 'b c', NULL], jsonb_build_object('i', i, 's', E'q"\\n'), '2026-01-01'::timestamptz + i * interval '1 hour'
       FROM generate_series(1, 5000) i;
     INSERT INTO things (k, n) VALUES (E'tab\\tkey', -1), (E'new\\nline', -2), (E'back\\\\slash', -3);`,
    'app',
  );
  // Shards whose defaults read dates differently: the copy must not depend on them.
  await src!.query(`ALTER DATABASE app SET datestyle = 'SQL, MDY'`, 'app');
  await b!.query(`ALTER DATABASE app SET datestyle = 'SQL, DMY'`, 'app');
  const conf = (c: { port: number }) => ({ id: 'x', host: '127.0.0.1', port: c.port, database: APP.database, user: APP.user, password: APP.password, weight: 1 });
  const [s, da, db] = [await connect(conf(src!)), await connect(conf(a!)), await connect(conf(b!))];
  t.teardown(async () => Promise.all([s, da, db].map(end)));
  const cols = ['k', 'n', 'body', 'raw', 'tags', 'doc', 'at', 'id'];
  // Keys ending in 1 or 2 go to a, in 3 to b, the others stay; the special keys go to b.
  const route = (k: string | null): string | null => (k === null ? null : /[12]$/.test(k) ? 'a' : /3$/.test(k) || !k.startsWith('k') ? 'b' : null);
  const deltas: CopyCounts[] = [];
  await s.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const counts = await copyRows({ source: s, table: 'things', columns: cols, keyIndex: 0, route, destination: async (id) => (id === 'a' ? da : db), progress: (d) => deltas.push(d), every: 700 });
  await s.query('COMMIT');

  const all = await rows(s, `SELECT ${cols.join(', ')} FROM things ORDER BY k`);
  const want = (to: string) => all.filter((r) => route(r[0]!) === to);
  t.same(await rows(da, `SELECT ${cols.join(', ')} FROM things ORDER BY k`), want('a'), 'a has exactly its rows, values identical');
  t.same(await rows(db, `SELECT ${cols.join(', ')} FROM things ORDER BY k`), want('b'), 'b too, the keys with escapes among them');
  t.same(counts, { scanned: 5003, copied: want('a').length + want('b').length });
  t.same(
    deltas.reduce((x, d) => ({ scanned: x.scanned + d.scanned, copied: x.copied + d.copied }), { scanned: 0, copied: 0 }),
    counts,
    'the progress deltas add up to the totals',
  );
  t.ok(deltas.length >= Math.floor(5003 / 700), `progress reported ${deltas.length} times`);
  t.ok(deltas.slice(0, -1).every((d) => d.scanned === 700), 'every 700 rows read');
  const [[nextId]] = (await rows(da, `INSERT INTO things (k) VALUES ('fresh') RETURNING id`)) as [[string]];
  t.equal(nextId, '1', 'identity values came as they were (the destination sequence was not used)');
});

t.test('a destination that does not take rows stops the reading; an aborted copy writes nothing', async (t) => {
  const shards = await withShards(t, 2);
  const [src, dst] = shards.clusters;
  for (const c of [src!, dst!]) await c.query('CREATE TABLE big (id int PRIMARY KEY, pad text)', 'app');
  await src!.query(`INSERT INTO big SELECT i, repeat('x', 100) FROM generate_series(1, 100000) i`, 'app');
  const conf = (c: { port: number }) => ({ id: 'x', host: '127.0.0.1', port: c.port, database: APP.database, user: APP.user, password: APP.password, weight: 1 });
  const s = await connect(conf(src!));
  const d = await connect(conf(dst!));
  const locker = await connect(conf(dst!));
  t.teardown(async () => Promise.all([s, d, locker].map(end)));

  // The destination's COPY waits for a lock: pgshard must not buffer the source's 100,000 rows meanwhile.
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
  let scanned = 0;
  await s.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const copying = copyRows({ source: s, table: 'big', columns: ['id', 'pad'], keyIndex: 0, route: () => 'd', destination: async () => d, progress: (x) => (scanned += x.scanned), every: 100 });
  await sleep(1500);
  t.ok(scanned < 5000, `while the destination waits, ${scanned} rows of 100000 were read`);
  await locker.query('COMMIT');
  t.same(await copying, { scanned: 100_000, copied: 100_000 });
  await s.query('COMMIT');
  t.equal((await rows(d, 'SELECT count(*) FROM big'))[0]![0], '100000', 'then every row arrives');

  // Aborted half-way (the progress callback throws, as a cancel does): CopyFail, nothing written.
  await d.query('TRUNCATE big');
  await s.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  let calls = 0;
  const aborted = await copyRows({
    source: s,
    table: 'big',
    columns: ['id', 'pad'],
    keyIndex: 0,
    route: () => 'd',
    destination: async () => d,
    progress: () => {
      if (++calls === 5) throw new Error('cancelled');
    },
    every: 1000,
  }).catch((e: Error) => e);
  t.match(aborted, { message: 'cancelled' });
  t.equal((await rows(d, 'SELECT count(*) FROM big'))[0]![0], '0', 'nothing of the aborted COPY was written');
  t.same(await rows(d, 'SELECT 1'), [['1']], "the destination's connection is usable again");
  const t0 = Date.now();
  await end(s);
  t.ok(Date.now() - t0 < 5000, 'the source connection, left in the middle of its COPY, closes');

  // A row already there: the COPY fails (the primary key), and the error comes back.
  await d.query(`INSERT INTO big VALUES (77, 'already')`);
  const s2 = await connect(conf(src!));
  t.teardown(() => end(s2));
  await s2.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const dup = await copyRows({ source: s2, table: 'big', columns: ['id', 'pad'], keyIndex: 0, route: () => 'd', destination: async () => d, progress: () => undefined, every: 1000 }).catch((e: Error & { code?: string }) => e);
  t.match(dup, { code: '23505' });
  t.same(await rows(d, 'SELECT count(*) FROM big'), [['1']], 'only the row that was there');
  t.same(await rows(d, 'SELECT 1'), [['1']], "the destination's connection is usable again");
});
