/** Splitting a multi-row INSERT by shard: every output must parse to exactly the hand-written expectation. */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { loadModule, parseSync } from 'libpg-query';
import { splitInsert, splitInsertParams, type ShardInsert } from '../../src/sql/split-insert.js';
import { PgError } from '../../src/protocol/errors.js';

await loadModule();

function tree(sql: string): unknown {
  const stmts = parseSync(sql).stmts ?? [];
  if (stmts.length !== 1) throw new Error(`expected one statement: ${sql}`);
  return stmts[0]!.stmt;
}

/** Same meaning: equal trees once every source position (location, list_start, ...) is removed. */
function sameTree(a: unknown, b: unknown): boolean {
  const strip = (v: unknown): string =>
    JSON.stringify(v, (k, x: unknown) => {
      if (/^(location|stmt_location|stmt_len|list_start|list_end|rexpr_list_start|rexpr_list_end|name_location)$/.test(k)) return undefined;
      if (x !== null && typeof x === 'object' && !Array.isArray(x)) return Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : 1)));
      return x;
    });
  return strip(a) === strip(b);
}

/** A statement written as prefix + rows + suffix, so the expected text of any subset of rows is easy to write. */
class Insert {
  constructor(
    readonly prefix: string,
    readonly rows: string[],
    readonly suffix = '',
  ) {}
  get sql(): string {
    return this.with(this.rows.map((_, i) => i));
  }
  with(indexes: number[], rows = this.rows): string {
    return `${this.prefix} VALUES ${indexes.map((i) => rows[i]).join(', ')}${this.suffix}`;
  }
}

/** Checks that each shard's text parses to the expected text's tree. */
function expectSplit(t: Test, got: Map<string, string>, want: Record<string, string>): void {
  t.same([...got.keys()], Object.keys(want), 'shards, in order of their first row');
  for (const [shard, sql] of got) t.ok(sameTree(tree(sql), tree(want[shard]!)), `${shard}: ${sql}`);
}

function throwsRefusal(t: Test, fn: () => unknown, why: RegExp): void {
  try {
    fn();
    t.fail('expected a refusal');
  } catch (e) {
    t.ok(e instanceof PgError, 'a PgError');
    t.equal((e as PgError).code, '0A000');
    t.match((e as PgError).message, /cannot be split safely/);
    t.match((e as PgError).message, why);
  }
}

t.test('2 and 3 rows over 3 shards', async (t) => {
  const two = new Insert('INSERT INTO accounts (id, name)', ["(1, 'a')", "(2, 'b')"]);
  expectSplit(t, splitInsert(two.sql, ['s2', 's1']), { s2: two.with([0]), s1: two.with([1]) });
  const three = new Insert('INSERT INTO accounts (id, name)', ["(1, 'a')", "(2, 'b')", "(3, 'c')"]);
  expectSplit(t, splitInsert(three.sql, ['s1', 's2', 's3']), { s1: three.with([0]), s2: three.with([1]), s3: three.with([2]) });
  expectSplit(t, splitInsert(three.sql, ['s3', 's1', 's3']), { s3: three.with([0, 2]), s1: three.with([1]) });
});

t.test('100 rows over 3 shards', async (t) => {
  const rows = Array.from({ length: 100 }, (_, i) => `(${i * 7919}, ${i % 5}, 'row ${i} it''s', now(), ${-i}.5)`);
  const ins = new Insert('INSERT INTO pgbench_history (aid, tid, filler, mtime, delta)', rows);
  const shards = rows.map((_, i) => `s${((i * 31) % 7) % 3}`);
  const got = splitInsert(ins.sql, shards);
  const want: Record<string, string> = {};
  for (const s of new Set(shards))
    want[s] = ins.with(
      shards.flatMap((x, i) => (x === s ? [i] : [])),
      rows,
    );
  expectSplit(t, got, want);
});

t.test('ON CONFLICT DO UPDATE, RETURNING *, a CTE, quoted mixed-case names, casts, literals', async (t) => {
  const ins = new Insert(
    `WITH defaults AS (SELECT 'n/a'::text AS label) INSERT INTO "Sales"."OrderLines" AS ol ("OrderId", "lineNo", note, price, placed)`,
    [
      `(10, 1, (SELECT label FROM defaults), CAST('1.50' AS numeric(10, 2)), '2024-01-01'::date)`,
      `(11, 2, 'it''s ünïcødé 😀', 2::numeric, timestamp with time zone '2024-01-01 10:00+02')`,
      `(12, 3, E'tab\\tand \\\\ backslash', '{1,2}'::int[]::text, DEFAULT)`,
      `(13, 4, U&'\\0041BC' || $$dollar 'quoted'$$, ARRAY[1, 2]::text, current_date)`,
    ],
    ` ON CONFLICT ("OrderId", "lineNo") DO UPDATE SET note = EXCLUDED.note || ol.note, price = ol.price + EXCLUDED.price WHERE ol."OrderId" IN (10, 11) RETURNING *`,
  );
  expectSplit(t, splitInsert(ins.sql, ['a', 'b', 'a', 'c']), { a: ins.with([0, 2]), b: ins.with([1]), c: ins.with([3]) });
});

t.test('other forms that survive the round trip', async (t) => {
  const cases: [string, string[], string][] = [
    ['INSERT INTO t (a, b)', ['(1, 2)', '(3, 4)'], ' ON CONFLICT ON CONSTRAINT t_pkey DO NOTHING'],
    ['INSERT INTO t (a, b)', ['(1, 2)', '(3, 4)'], ' ON CONFLICT (lower(b)) WHERE a > 0 DO UPDATE SET (a, b) = (EXCLUDED.a, EXCLUDED.b)'],
    ['INSERT INTO t OVERRIDING SYSTEM VALUE', ['(1)', '(2)'], ''],
    ['INSERT INTO t (a[1], c.f)', ['(1, 2)', '(3, 4)'], ''],
    ['INSERT INTO "order" ("user", "select", "Order")', ['(1, 2, 3)', '(4, 5, 6)'], ' RETURNING "user" AS "Who", "order".*'],
    ['WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) INSERT INTO t (a, b)', ['(1, (SELECT count(*) FROM r))', '(2, 2)'], ''],
    ['INSERT INTO t (a, b)', ["(1, 'x' COLLATE \"C\")", "(2, EXISTS (SELECT 1 FROM u WHERE u.k = 'Q'))"], ' RETURNING old.*, new.*'],
    // Written unlike the deparser writes them, so the positions (list_start, rexpr_list_end) differ.
    ['INSERT INTO t (a, b)', ['(1, 1 IN (1,2))', "(2, ARRAY[1,2]::text || ('{\"k\": 1}'::jsonb -> 'k'))"], ''],
  ];
  for (const [prefix, rows, suffix] of cases) {
    const ins = new Insert(prefix, rows, suffix);
    expectSplit(t, splitInsert(ins.sql, ['x', 'y']), { x: ins.with([0]), y: ins.with([1]) });
  }
});

t.test('parameters keep their numbers, or are renumbered per shard', async (t) => {
  const ins = new Insert('INSERT INTO t (id, v)', ['($1, $2::jsonb)', '($3, $4::jsonb)', '($5, $6::jsonb)'], ' ON CONFLICT (id) DO UPDATE SET v = $7 RETURNING $8::int AS tag');
  expectSplit(t, splitInsert(ins.sql, ['s1', 's2', 's1']), { s1: ins.with([0, 2]), s2: ins.with([1]) });

  const got = splitInsertParams(ins.sql, ['s1', 's2', 's1']);
  t.same([...got.keys()], ['s1', 's2']);
  const s1 = got.get('s1')!;
  const s2 = got.get('s2')!;
  t.ok(sameTree(tree(s1.sql), tree('INSERT INTO t (id, v) VALUES ($1, $2::jsonb), ($3, $4::jsonb) ON CONFLICT (id) DO UPDATE SET v = $5 RETURNING $6::int AS tag')), s1.sql);
  t.same(s1.params, [0, 1, 4, 5, 6, 7]);
  t.ok(sameTree(tree(s2.sql), tree('INSERT INTO t (id, v) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO UPDATE SET v = $3 RETURNING $4::int AS tag')), s2.sql);
  t.same(s2.params, [2, 3, 6, 7]);

  // A parameter shared by rows of two shards, parameters out of order, and one that needs no renumbering.
  const shared = splitInsert('INSERT INTO t (id, v, w) VALUES ($3, $1, 0), ($4, $1, $2)', ['a', 'b'], { renumberParams: true });
  t.same(norm(shared), {
    a: { sql: norm1('INSERT INTO t (id, v, w) VALUES ($2, $1, 0)'), params: [0, 2] },
    b: { sql: norm1('INSERT INTO t (id, v, w) VALUES ($3, $1, $2)'), params: [0, 1, 3] },
  });
  const first = splitInsertParams('INSERT INTO t (id) VALUES ($1), ($2)', ['a', 'b']);
  t.same(norm(first), { a: { sql: norm1('INSERT INTO t (id) VALUES ($1)'), params: [0] }, b: { sql: norm1('INSERT INTO t (id) VALUES ($1)'), params: [1] } });
});

/** Shard texts normalised to their tree, for comparisons. */
function norm(m: Map<string, ShardInsert>): Record<string, { sql: string; params: number[] }> {
  return Object.fromEntries([...m].map(([k, v]) => [k, { sql: norm1(v.sql), params: v.params }]));
}
function norm1(sql: string): string {
  return JSON.stringify(tree(sql), (k, v: unknown) => (k === 'location' ? undefined : v));
}

t.test('rows of a single shard: the client text, unchanged', async (t) => {
  const sql = 'INSERT INTO t (id, v) VALUES ($1, $2), ($3, $2) -- a comment the deparser would drop';
  t.same([...splitInsert(sql, ['s1', 's1'])], [['s1', sql]]);
  t.same([...splitInsertParams(sql, ['s1', 's1'])], [['s1', { sql, params: [0, 1, 2] }]]);
});

t.test('forms the deparser gets wrong are refused, not mangled', async (t) => {
  // A quoted mixed-case CTE name loses its quotes (research notes, section 1.4).
  throwsRefusal(t, () => splitInsert('WITH "NewIds" AS (SELECT 1 AS x) INSERT INTO t (a, b) VALUES ((SELECT x FROM "NewIds"), 1), (2, 2)', ['s1', 's2']), /would not mean the same/);
  // FETCH ... WITH TIES in a row's subquery becomes LIMIT.
  throwsRefusal(t, () => splitInsert('INSERT INTO t (a, b) VALUES ((SELECT x FROM u ORDER BY x FETCH FIRST 1 ROW WITH TIES), 1), (2, 2)', ['s1', 's2']), /would not mean the same/);
});

t.test('statements that are not a plain multi-row VALUES insert are refused', async (t) => {
  throwsRefusal(t, () => splitInsert('WITH moved AS (DELETE FROM old RETURNING id) INSERT INTO t (a) VALUES (1), (2)', ['s1', 's2']), /WITH clause changes data/);
  throwsRefusal(t, () => splitInsert('INSERT INTO t (a) VALUES (1), (2) LIMIT 1', ['s1', 's2']), /ORDER BY, LIMIT or OFFSET/);
  throwsRefusal(t, () => splitInsert('INSERT INTO t (a) SELECT 1', ['s1']), /VALUES list/);
  throwsRefusal(t, () => splitInsert('INSERT INTO t (a) VALUES (1) UNION VALUES (2)', ['s1', 's2']), /VALUES list/);
  throwsRefusal(t, () => splitInsert('UPDATE t SET a = 1', []), /not a single INSERT/);
  throwsRefusal(t, () => splitInsert('INSERT INTO t (a) VALUES (1); INSERT INTO t (a) VALUES (2)', ['s1']), /not a single INSERT/);
  throwsRefusal(t, () => splitInsert('INSERT INTO t (a) VALUES (', ['s1']), /does not parse/);
  t.throws(() => splitInsert('INSERT INTO t (a) VALUES (1), (2)', ['s1']), RangeError);
});

t.test('property: any assignment of rows to shards gives each shard exactly its rows', async (t) => {
  const rows = [
    "($1, 'a''b')",
    '(2, $2::bigint)',
    "(3, 'ünï 😀')",
    '($3, NULL)',
    "(5, E'\\\\x')",
    '(6, $2)',
    '(7, DEFAULT)',
    "(8, (SELECT max(v) FROM \"Other\" WHERE k = 'K'))",
  ];
  const ins = new Insert('INSERT INTO "Things" ("Key", val)', rows, ' ON CONFLICT ("Key") DO UPDATE SET val = $4 RETURNING "Key"');
  fc.assert(
    fc.property(fc.array(fc.constantFrom('s1', 's2', 's3'), { minLength: rows.length, maxLength: rows.length }), (shards) => {
      const got = splitInsertParams(ins.sql, shards);
      for (const [shard, out] of got) {
        const mine = shards.flatMap((s, i) => (s === shard ? [i] : []));
        if (got.size === 1) return out.sql === ins.sql;
        // The expected text: this shard's rows with $n renamed as `params` says.
        const rename = new Map(out.params.map((old, k) => [old + 1, k + 1]));
        const renamed = rows.map((r) => r.replace(/\$(\d+)/g, (_, n: string) => `$${rename.get(Number(n)) ?? `MISSING${n}`}`));
        const suffix = ins.suffix.replace(/\$(\d+)/g, (_, n: string) => `$${rename.get(Number(n)) ?? `MISSING${n}`}`);
        const want = new Insert(ins.prefix, renamed, suffix).with(mine);
        if (!sameTree(tree(out.sql), tree(want))) return false;
        // params are increasing and each one is used.
        if (!out.params.every((p, k) => k === 0 || p > out.params[k - 1]!)) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

t.test('the test comparison ignores source positions only', async (t) => {
  t.ok(sameTree(tree('SELECT  ARRAY[1,2], 1 IN (1,2)'), tree('SELECT ARRAY[1, 2], 1 IN (1, 2)')));
  t.notOk(sameTree(tree('SELECT 1'), tree('SELECT 2')));
  t.notOk(sameTree(tree('SELECT "A"'), tree('SELECT A')));
});

t.test('cost of a 100-row INSERT over 3 shards', async (t) => {
  const literal = new Insert(
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)',
    Array.from({ length: 100 }, (_, i) => `(${i}, ${i % 10}, ${9520572 + i}, ${-4197 + i}, CURRENT_TIMESTAMP)`),
  ).sql;
  const params = new Insert(
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)',
    Array.from({ length: 100 }, (_, i) => `($${i * 5 + 1}, $${i * 5 + 2}, $${i * 5 + 3}, $${i * 5 + 4}, $${i * 5 + 5})`),
  ).sql;
  const shards = Array.from({ length: 100 }, (_, i) => `s${i % 3}`);
  const time = (f: () => unknown): number => {
    for (let i = 0; i < 20; i++) f();
    const runs: number[] = [];
    for (let r = 0; r < 7; r++) {
      const n = 30;
      const start = process.cpuUsage();
      for (let i = 0; i < n; i++) f();
      const used = process.cpuUsage(start);
      runs.push((used.user + used.system) / n);
    }
    return runs.sort((a, b) => a - b)[3]!;
  };
  const parseOnly = time(() => parseSync(literal));
  const parseParams = time(() => parseSync(params));
  const lit = time(() => splitInsert(literal, shards));
  const par = time(() => splitInsertParams(params, shards));
  t.comment(`100-row INSERT, 3 shards, CPU µs (median of 7): parse alone ${parseOnly.toFixed(0)} (${parseParams.toFixed(0)} with parameters), split with literals ${lit.toFixed(0)}, split with 500 parameters renumbered ${par.toFixed(0)}`);
  t.ok(lit > 0 && par > 0);
});
