import t from 'tap';
import fc from 'fast-check';
import { formatArray, parseArray } from '../../src/execute/arrays.js';
import { parseInterval, parseTimestamptz } from '../../src/execute/datetime.js';
import { EXACT_CONTEXT, equalityKey, Oid, orderCodec, type ValueContext } from '../../src/execute/values.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

function sorted(oid: number, values: string[], ctx: ValueContext = EXACT_CONTEXT): string[] {
  const c = orderCodec(oid, ctx);
  return [...values].sort((x, y) => c.compare(c.key(b(x)), c.key(b(y))));
}

t.test('floats: NaN above everything, -Infinity below, shortest output round-trips', async (t) => {
  t.same(sorted(Oid.float8, ['NaN', '1', 'Infinity', '-Infinity', '-1e-300', '1e300', '0']), ['-Infinity', '-1e-300', '0', '1', '1e300', 'Infinity', 'NaN']);
  const k = equalityKey(Oid.float8, EXACT_CONTEXT);
  t.equal(k(b('-0')), k(b('0')), '-0 = 0');
  t.equal(k(b('NaN')), k(b('NaN')), 'NaN = NaN');
});

t.test('numeric, integers, bool, uuid', async (t) => {
  t.same(sorted(Oid.numeric, ['NaN', '10', '9.99', '-Infinity', 'Infinity', '-0.5']), ['-Infinity', '-0.5', '9.99', '10', 'Infinity', 'NaN']);
  t.same(sorted(Oid.int8, ['9223372036854775807', '-9223372036854775808', '9007199254740993', '9007199254740992']), ['-9223372036854775808', '9007199254740992', '9007199254740993', '9223372036854775807']);
  t.same(sorted(Oid.bool, ['t', 'f']), ['f', 't']);
  t.same(sorted(Oid.uuid, ['ffffffff-0000-4000-a000-000000000000', '0fffffff-0000-4000-a000-000000000000']), ['0fffffff-0000-4000-a000-000000000000', 'ffffffff-0000-4000-a000-000000000000']);
  const k = equalityKey(Oid.numeric, EXACT_CONTEXT);
  t.equal(k(b('1.50')), k(b('1.5')));
});

t.test('text: bytes (code point) order under "C", refused otherwise', async (t) => {
  // UTF-16 order would put U+FF21 (Ａ) after U+1F355 (🍕); UTF-8 bytes (and code points) put it before.
  t.same(sorted(Oid.text, ['🍕', 'Ａ', 'b', 'B', 'é', '']), ['', 'B', 'b', 'é', 'Ａ', '🍕']);
  t.throws(() => orderCodec(Oid.text, { ...EXACT_CONTEXT, textByteOrder: false, textOrderWhy: 'database collation "en_US.UTF-8"' }), { code: '0A000', message: /collation/ });
  const bp = orderCodec(Oid.bpchar, EXACT_CONTEXT);
  t.equal(bp.compare(bp.key(b('a  ')), bp.key(b('a'))), 0, 'char(n) ignores trailing spaces');
  t.equal(equalityKey(Oid.bpchar, EXACT_CONTEXT)(b('a  ')), equalityKey(Oid.bpchar, EXACT_CONTEXT)(b('a')));
});

t.test('bytea in hex and escape output', async (t) => {
  const c = orderCodec(Oid.bytea, EXACT_CONTEXT);
  t.equal(c.compare(c.key(b('\\x00ff')), c.key(b('\\000\\377'))), 0);
  t.same(sorted(Oid.bytea, ['\\xff', '\\x', '\\x00', '\\x0001']), ['\\x', '\\x00', '\\x0001', '\\xff']);
});

t.test('timestamptz compares instants whatever the printed zone; dates with BC and infinity', async (t) => {
  t.equal(parseTimestamptz('2024-01-01 05:30:00+05:30'), parseTimestamptz('2024-01-01 00:00:00+00'));
  t.same(sorted(Oid.timestamptz, ['2024-01-01 00:00:00+00', '2023-12-31 23:00:00-02', 'infinity', '-infinity', '0044-03-15 12:00:00+00 BC', '2024-01-01 00:00:00.000001+00']), [
    '-infinity', '0044-03-15 12:00:00+00 BC', '2024-01-01 00:00:00+00', '2024-01-01 00:00:00.000001+00', '2023-12-31 23:00:00-02', 'infinity',
  ]);
  t.same(sorted(Oid.date, ['2020-01-01', '0001-01-01 BC', '0001-01-01', 'infinity', '10000-01-01']), ['0001-01-01 BC', '0001-01-01', '2020-01-01', '10000-01-01', 'infinity']);
  t.same(sorted(Oid.timetz, ['12:00:00+01', '11:00:00+00', '10:00:00-01']), ['12:00:00+01', '11:00:00+00', '10:00:00-01'], 'same UTC time: ordered by zone');
  t.throws(() => orderCodec(Oid.date, { ...EXACT_CONTEXT, isoDates: false }), { code: '0A000', message: /DateStyle/ });
});

t.test('interval: months as 30 days, days as 24 hours', async (t) => {
  t.equal(parseInterval('1 day'), parseInterval('24:00:00'));
  t.equal(parseInterval('1 mon'), parseInterval('30 days'));
  t.equal(parseInterval('-1 days +02:00:00'), parseInterval('-22:00:00'));
  t.same(sorted(Oid.interval, ['1 year', '11 mons 6 days', '-00:00:01', 'infinity', '00:00:00']), ['-00:00:01', '00:00:00', '11 mons 6 days', '1 year', 'infinity']);
  const k = equalityKey(Oid.interval, EXACT_CONTEXT);
  t.equal(k(b('36:00:00')), k(b('1 day 12:00:00')));
  t.equal(parseInterval('@ 1 day'), null, 'other IntervalStyles are not read');
});

t.test('arrays: array_out quoting round-trips; ordering and equality element by element', async (t) => {
  t.same(parseArray('{1,NULL,"a b","x\\"y","NULL",""}'), ['1', null, 'a b', 'x"y', 'NULL', '']);
  t.equal(formatArray(['1', null, 'a b', 'x"y', 'NULL', '', 'back\\slash', 'é,']), '{1,NULL,"a b","x\\"y","NULL","","back\\\\slash","é,"}');
  t.equal(parseArray('[0:1]={1,2}'), null);
  t.equal(parseArray('{{1,2},{3,4}}'), null);
  fc.assert(
    fc.property(fc.array(fc.option(fc.string({ unit: 'binary' }), { nil: null })), (xs) => {
      const back = parseArray(formatArray(xs));
      return JSON.stringify(back) === JSON.stringify(xs);
    }),
  );
  t.same(sorted(1007, ['{1,2}', '{1}', '{1,NULL}', '{}', '{0,5}']), ['{}', '{0,5}', '{1}', '{1,2}', '{1,NULL}']);
  const k = equalityKey(1231, EXACT_CONTEXT);
  t.equal(k(b('{1.0,2}')), k(b('{1.00,2.0}')));
});
