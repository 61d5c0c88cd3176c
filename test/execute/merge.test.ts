/**
 * The merge steps on their own: the order of rows (k-way merge keys), duplicate removal, LIMIT, and the
 * aggregate merge (partial rows in, finished rows out), with rows built as a shard would send them.
 */
import t from 'tap';
import fc from 'fast-check';
import { GroupMerger } from '../../src/execute/merge/aggregate.js';
import { Deduper } from '../../src/execute/merge/distinct.js';
import { Evaluator } from '../../src/execute/merge/evaluate.js';
import { Limiter } from '../../src/execute/merge/limit.js';
import { resolveKeys, RowOrder } from '../../src/execute/merge/order-by.js';
import { Row, type Field } from '../../src/execute/rows.js';
import { EXACT_CONTEXT, Oid } from '../../src/execute/values.js';
import type { GroupMergePlan } from '../../src/sql/types.js';
import { dataRowOf } from '../../src/protocol/messages.js';

const field = (name: string, typeOid: number): Field => ({ name, tableOid: 0, column: 0, typeOid, typeLen: -1, typmod: -1, format: 0 });
const row = (...values: (string | null)[]): Row => {
  const buf = dataRowOf(values.map((v) => (v === null ? null : Buffer.from(v, 'utf8'))));
  return new Row(buf, 0, buf.length);
};
const texts = (msg: Buffer): (string | null)[] => {
  const r = new Row(msg, 0, msg.length);
  return Array.from({ length: r.length }, (_, i) => r.text(i));
};

t.test('k-way merge of sorted shard streams equals one sort (property)', async (t) => {
  const fields = [field('x', Oid.int4), field('s', Oid.text)];
  const order = new RowOrder(resolveKeys([{ column: 0, desc: true, nullsFirst: false }, { column: 1, desc: false, nullsFirst: true }], fields, EXACT_CONTEXT));
  const value = fc.tuple(fc.option(fc.integer({ min: -5, max: 5 }), { nil: null }), fc.option(fc.constantFrom('a', 'B', 'é', ''), { nil: null }));
  fc.assert(
    fc.property(fc.array(fc.array(value, { maxLength: 20 }), { minLength: 1, maxLength: 5 }), (shards) => {
      const streams = shards.map((vs) => vs.map(([x, s]) => row(x === null ? null : String(x), s)).sort((a, b) => order.compare(a, b)));
      const merged: Row[] = [];
      const heads = streams.map(() => 0);
      for (;;) {
        let best = -1;
        for (let i = 0; i < streams.length; i++) if (heads[i]! < streams[i]!.length && (best < 0 || order.compare(streams[i]![heads[i]!]!, streams[best]![heads[best]!]!) < 0)) best = i;
        if (best < 0) break;
        merged.push(streams[best]![heads[best]!++]!);
      }
      const all = streams.flat().sort((a, b) => order.compare(a, b));
      return merged.length === all.length && merged.every((r, i) => order.compare(r, all[i]!) === 0);
    }),
  );
  // DESC puts NULLs first unless told otherwise; here NULLS LAST for x.
  const rs = [row('1', 'a'), row(null, 'a'), row('2', null), row('2', 'a')].sort((a, b) => order.compare(a, b));
  t.same(rs.map((r) => [r.text(0), r.text(1)]), [['2', null], ['2', 'a'], ['1', 'a'], [null, 'a']]);
});

t.test('duplicates: by type equality, adjacent or hashed', async (t) => {
  const fields = [field('n', Oid.numeric), field('f', Oid.float8)];
  const d = new Deduper(null, 2, fields, EXACT_CONTEXT, false);
  t.same([row('1.5', '0'), row('1.50', '-0'), row('2', 'NaN'), row('2.0', 'NaN'), row(null, null), row(null, null)].map((r) => d.admit(r)), [true, false, true, false, true, false]);
  const a = new Deduper([0], 2, fields, EXACT_CONTEXT, true);
  t.same([row('1', '1'), row('1', '2'), row('2', '1'), row('1', '1')].map((r) => a.admit(r)), [true, false, true, true], 'adjacent: only neighbours');
});

t.test('LIMIT / OFFSET / WITH TIES', async (t) => {
  const l = new Limiter({ count: 2, offset: 1 });
  t.same([1, 2, 3, 4].map((x) => l.next(x)), ['skip', 'take', 'take', 'stop']);
  let last = 0;
  const ties = new Limiter({ count: 2, offset: 0, withTies: true }, (x) => x === last);
  const got = [5, 7, 7, 7, 8].map((x) => {
    const v = ties.next(x);
    if (v === 'take') last = x;
    return v;
  });
  t.same(got, ['take', 'take', 'take', 'take', 'stop']);
  t.ok(new Limiter({ count: 0, offset: 0 }).empty);
});

t.test('aggregate merge: partial rows of several shards finished as Postgres', async (t) => {
  // SELECT g, count(*), sum(i), avg(i), min(s), string_agg(s, ',' ORDER BY k), stddev_samp(i) … GROUP BY g
  // shard row: g, count, sum(i::int8), [hidden] sum(i::numeric), count(i), type probe, min(s), array_agg(s ORDER BY k), array_agg(k ORDER BY k), sum(i*i)
  const fields = [
    field('g', Oid.int4), field('count', Oid.int8), field('sum', Oid.int8), field('avg', Oid.numeric), field('min', Oid.text), field('string_agg', Oid.text), field('stddev', Oid.numeric),
    field('h1', Oid.numeric), field('h2', Oid.int8), field('h3', Oid.int4), field('h4', 1009), field('h5', 1007), field('h6', Oid.numeric),
  ];
  const plan: GroupMergePlan = {
    keys: [0],
    aggregates: [
      { fn: 'count', column: 1 },
      { fn: 'sum', column: 2 },
      { fn: 'avg', sum: 7, count: 8, type: 9 },
      { fn: 'min', column: 4 },
      { fn: 'string_agg', values: 10, keys: [{ column: 11, desc: false, nullsFirst: false }], delimiter: ',' },
      { fn: 'stddev_samp', count: 8, sum: 7, squares: 12, type: 9 },
    ],
    outputs: [{ column: 0 }, { agg: 0 }, { agg: 1 }, { agg: 2 }, { agg: 3 }, { agg: 4 }, { agg: 5 }],
    order: [{ expr: { column: 0 }, desc: false, nullsFirst: false }],
    having: { op: '>', args: [{ agg: 0 }, { const: '1', type: 'int4' }] },
  };
  const m = new GroupMerger(plan, fields, 7, EXACT_CONTEXT);
  m.typecheck();
  // group 1: values i = 1, 2 on shard A (k 10, 30) and 4 on shard B (k 20); group 2: one row only (dropped by HAVING)
  m.add(row('1', '2', '3', null, 'b', null, null, '3', '2', null, '{b,d}', '{10,30}', '5'));
  m.add(row('1', '1', '4', null, 'a', null, null, '4', '1', null, '{a}', '{20}', '16'));
  m.add(row('2', '1', '7', null, 'z', null, null, '7', '1', null, '{z}', '{1}', '49'));
  const out = m.finish().map(texts);
  t.same(out, [['1', '3', '7', '2.3333333333333333', 'a', 'b,a,d', '1.5275252316519467']]);
});

t.test('expressions over aggregates: types, overflow, division', async (t) => {
  const ev = new Evaluator(EXACT_CONTEXT, () => ({ t: 'int', bits: 64, v: 7n }), () => ({ t: 'int', bits: 32, v: 2147483647n }));
  t.same(ev.eval({ op: '/', args: [{ agg: 0 }, { const: '2', type: 'int4' }] }), { t: 'int', bits: 64, v: 3n }, 'bigint / int: truncating bigint');
  t.throws(() => ev.eval({ op: '+', args: [{ column: 0 }, { const: '1', type: 'int4' }] }), { code: '22003', message: 'integer out of range' });
  t.throws(() => ev.eval({ op: '%', args: [{ agg: 0 }, { const: '0', type: 'int4' }] }), { code: '22012' });
  const q = ev.eval({ op: '/', args: [{ cast: 'numeric', arg: { agg: 0 } }, { const: '3', type: 'int4' }] });
  t.equal(q.t === 'numeric' && q.v !== null ? `${q.v.units}/${q.v.scale}` : '', '23333333333333333/16', 'numeric division at select_div_scale');
  t.same(ev.eval({ fn: 'coalesce', args: [{ const: null, type: 'unknown' }, { agg: 0 }] }), { t: 'int', bits: 64, v: 7n });
  t.throws(() => ev.eval({ fn: 'round', args: [{ agg: 0 }] }), { code: '0A000' }, 'round(bigint) is computed in double precision by Postgres');
});

t.test('one-row merge: counts beyond 2^53, sums NULL only without any value, numeric at the largest scale', async (t) => {
  const fields = [field('count', Oid.int8), field('sum', Oid.int8), field('sum', Oid.numeric), field('max', Oid.float8)];
  const plan: GroupMergePlan = {
    keys: [],
    aggregates: [{ fn: 'count', column: 0 }, { fn: 'sum', column: 1 }, { fn: 'sum', column: 2 }, { fn: 'max', column: 3 }],
    outputs: [{ agg: 0 }, { agg: 1 }, { agg: 2 }, { agg: 3 }],
    order: [],
  };
  const m = new GroupMerger(plan, fields, 4, EXACT_CONTEXT);
  m.add(row('9007199254740993', null, '1.5', '1'));
  m.add(row('1', null, '-0.75', 'NaN'));
  m.add(row('0', null, null, null));
  t.same(m.finish().map(texts), [['9007199254740994', null, '0.75', 'NaN']]);
  const overflow = new GroupMerger(plan, fields, 4, EXACT_CONTEXT);
  overflow.add(row('1', '9223372036854775807', null, null));
  overflow.add(row('1', '1', null, null));
  t.throws(() => overflow.finish(), { code: '22003', message: 'bigint out of range' });
});

t.test('select list computed only for the rows LIMIT keeps (and OFFSET skips), as Postgres projects them', async (t) => {
  // SELECT avg(r)::numeric(20,3), iv FROM items GROUP BY iv ORDER BY iv NULLS FIRST LIMIT n OFFSET o
  // (differential seed 500939542 query 2188): a group past the limit averages to Infinity, which does not
  // fit numeric(20,3); Postgres (sorted GroupAggregate + Limit) never computes it.
  // shard row: (typing column), iv, [hidden] sum(r::numeric), count(r), type probe
  const fields = [field('avg', Oid.numeric), field('iv', Oid.interval), field('h1', Oid.numeric), field('h2', Oid.int8), field('h3', Oid.numeric)];
  const plan = (limit: { count: number | null; offset: number }): GroupMergePlan => ({
    keys: [1],
    aggregates: [{ fn: 'avg', sum: 2, count: 3, type: 4 }],
    outputs: [{ cast: 'numeric', typmod: [20, 3], arg: { agg: 0 } }, { column: 1 }],
    order: [{ expr: { column: 1 }, desc: false, nullsFirst: true }],
    limit,
  });
  const ctx = { ...EXACT_CONTEXT, postgresIntervals: true };
  const merged = (limit: { count: number | null; offset: number }): GroupMerger => {
    const m = new GroupMerger(plan(limit), fields, 2, ctx);
    m.typecheck();
    m.add(row(null, null, '136681000000000001.4470', '1', null));
    m.add(row(null, '1 day', 'Infinity', '1', null));
    m.add(row(null, null, '0.0000', '1', null));
    m.add(row(null, '24:00:00', '5', '1', null)); // the same group as '1 day' (interval equality)
    m.add(row(null, '00:00:01', '2.5', '1', null));
    return m;
  };
  t.same(merged({ count: 1, offset: 0 }).finish().map(texts), [['68340500000000000.724', null]]);
  t.same(merged({ count: 1, offset: 1 }).finish().map(texts), [['2.500', '00:00:01']]);
  t.throws(() => merged({ count: null, offset: 0 }).finish(), { code: '22003', message: 'numeric field overflow' }, 'without a limit every group is computed');
  t.throws(() => merged({ count: 1, offset: 3 }).finish(), { code: '22003' }, 'rows skipped by OFFSET are computed');
  t.same(merged({ count: 0, offset: 3 }).finish(), [], 'LIMIT 0 computes nothing');
});
