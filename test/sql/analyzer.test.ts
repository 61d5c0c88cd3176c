/** The analyser as the session uses it: caching, immutability, robustness, positions, speed. */
import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import type { Config } from '../../src/config/schema.js';
import { initParser, StatementAnalyzer } from '../../src/sql/analyze.js';

const tables = JSON.parse(readFileSync(new URL('./tables.json', import.meta.url), 'utf8')) as Config['tables'];

await Promise.all([initParser(), initParser()]);
await initParser();

t.test('cache: exact text, hit and miss counters, shared frozen results', async (t) => {
  const a = new StatementAnalyzer(tables, 'reference', 2);
  const first = a.analyze('SELECT * FROM users WHERE id = $1');
  t.same(a.stats, { hits: 0, misses: 1 });
  const again = a.analyze('SELECT * FROM users WHERE id = $1');
  t.equal(again, first, 'the same object comes back');
  t.same(a.stats, { hits: 1, misses: 1 });
  a.analyze('SELECT * FROM users WHERE id = $1 '); // different text, different entry
  t.same(a.stats, { hits: 1, misses: 2 });
  t.ok(Object.isFrozen(first) && Object.isFrozen(first.statements[0]) && Object.isFrozen(first.statements[0]!.route), 'deeply frozen');
  t.throws(() => {
    (first.statements as unknown as unknown[]).push({});
  }, 'cannot be changed by a caller');
  a.analyze('SELECT 1');
  a.analyze('SELECT 2');
  a.analyze('SELECT * FROM users WHERE id = $1');
  t.same(a.stats, { hits: 1, misses: 5 }, 'least recently used entry was evicted');
  const bad = a.analyze('SELEC 1');
  t.equal(a.analyze('SELEC 1'), bad, 'parse errors are cached too');
});

t.test('schema: qualifiers, folding, catalogs', async (t) => {
  const a = new StatementAnalyzer({ 'public.Accounts': { shard_key: 'Id', key_type: 'bigint', cross_shard: 'refuse' }, pg_thing: { reference: true } }, 'refuse');
  const route = (sql: string) => a.analyze(sql).statements[0]!.route;
  t.same(route('SELECT * FROM accounts WHERE id = 1'), { type: 'keys', table: 'Accounts', keys: [{ kind: 'const', value: '1' }] }, 'unquoted names fold');
  t.same(route('SELECT * FROM "Accounts" WHERE "Id" = 2'), { type: 'keys', table: 'Accounts', keys: [{ kind: 'const', value: '2' }] }, 'quoted names match exactly');
  t.same(route('SELECT * FROM other.accounts WHERE id = 3'), { type: 'keys', table: 'Accounts', keys: [{ kind: 'const', value: '3' }] }, 'schema ignored');
  t.same(route('SELECT * FROM pg_thing'), { type: 'none' }, 'pg_ names are catalog relations');
  t.same(route('SELECT * FROM information_schema.columns'), { type: 'none' });
  t.equal(route('SELECT * FROM nowhere').type, 'refuse');
});

t.test('never throws, whatever the text', async (t) => {
  const a = new StatementAnalyzer(tables, 'refuse', 10);
  const fragments = [
    'SELECT', 'INSERT INTO users', 'UPDATE orders SET', 'DELETE FROM', 'WITH x AS (', ')', '(', 'users', 'orders u', 'countries',
    'WHERE', 'id', 'user_id', '=', 'IN', 'ANY', '$1', '42', "'0042'", '::bigint', 'JOIN', 'ON', 'AND', 'OR', 'NOT', 'EXISTS',
    'UNION', 'LIMIT 1', 'ORDER BY 1', 'GROUP BY id', ',', '*', ';', 'VALUES (1)', 'RETURNING *', 'SET id = 1', '/* pgshard: key=1 */',
    'LATERAL', 'COPY', 'EXPLAIN ANALYZE', 'BEGIN', 'SET x = 1', 'FROM', 'count(*)', 'NULL', 'ARRAY[1,2]', "E'\\''", 'é', '\u0000',
  ];
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constantFrom(...fragments), fc.string()), { maxLength: 14 }), (parts) => {
      const sql = parts.join(' ');
      const r = a.analyze(sql);
      for (const s of r.statements) if (s.route.type === 'refuse' && s.route.sqlstate === 'XX000') throw new Error(`internal error on ${sql}: ${s.route.message}`);
    }),
    { numRuns: 2000 },
  );
  t.pass('no throw, no internal error');
});

t.test('statement positions are UTF-8 byte offsets', async (t) => {
  const a = new StatementAnalyzer(tables, 'reference');
  const sql = "SELECT 'Grüße'; /* c */ SET application_name = 'ü'  ;  SELECT 3";
  const r = a.analyze(sql);
  const bytes = Buffer.from(sql);
  const texts = r.statements.map((s) => bytes.subarray(s.location, s.location + s.length).toString());
  t.same(texts, ["SELECT 'Grüße'", "SET application_name = 'ü'  ", 'SELECT 3']);
  const set = r.statements[1]!.session;
  t.same(set, { type: 'set', name: 'application_name', local: false, sql: "SET application_name = 'ü'" });
});

// How fast analysis is belongs to bench/ (timed tests fail on a loaded machine); what is tested here is that
// a text is parsed once and then served from the bounded cache.
t.test('a statement text is analysed once, then served from the cache', async (t) => {
  const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';
  const a = new StatementAnalyzer(tables, 'reference', 2);
  const first = a.analyze(sql);
  t.equal(a.analyze(sql), first, 'the same analysis object for the same text');
  t.same(a.stats, { hits: 1, misses: 1 });
  t.not(a.analyze(sql + ' '), first, 'another text (even one space) is analysed on its own');
  a.analyze('SELECT 1');
  a.analyze('SELECT 2');
  t.not(a.analyze(sql), first, 'the cache is bounded: the oldest entry was evicted');
  t.same(a.stats, { hits: 1, misses: 5 });
});
