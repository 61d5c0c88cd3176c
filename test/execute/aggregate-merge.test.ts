import t from 'tap';
import fc from 'fast-check';
import { compareNumeric, mergeColumn, Oid, sumNumeric } from '../../src/execute/aggregate-merge.js';

t.test('count sums shard counts exactly, beyond 2^53', async (t) => {
  t.equal(mergeColumn('count', Oid.int8, ['9007199254740993', '1', '0']), '9007199254740994');
});

t.test('sum: NULL only when every shard had no value', async (t) => {
  t.equal(mergeColumn('sum', Oid.int8, [null, null]), null);
  t.equal(mergeColumn('sum', Oid.int8, [null, '5', '-7']), '-2');
});

t.test('numeric sums keep the largest scale, as Postgres', async (t) => {
  t.equal(sumNumeric(['1.5', '2.25', '-0.75']), '3.00');
  t.equal(sumNumeric(['0.001', '-0.001']), '0.000');
  t.equal(sumNumeric(['-0.5', '0.25']), '-0.25');
  t.equal(sumNumeric(['NaN', '1']), 'NaN');
  t.equal(sumNumeric(['Infinity', '-Infinity']), 'NaN');
  t.equal(sumNumeric(['Infinity', '5']), 'Infinity');
});

t.test('numeric addition agrees with exact arithmetic (property)', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.integer({ min: 0, max: 8 })), { minLength: 1, maxLength: 5 }), (xs) => {
      const texts = xs.map(([u, sc]) => {
        const neg = u < 0n;
        let d = (neg ? -u : u).toString().padStart(sc + 1, '0');
        if (sc > 0) d = d.slice(0, d.length - sc) + '.' + d.slice(d.length - sc);
        return (neg ? '-' : '') + d;
      });
      const scale = Math.max(...xs.map(([, sc]) => sc));
      const expect = xs.reduce((a, [u, sc]) => a + u * 10n ** BigInt(scale - sc), 0n);
      const got = sumNumeric(texts);
      const [ip, fp = ''] = got.replace('-', '').split('.');
      const units = BigInt(ip! + fp) * (got.startsWith('-') ? -1n : 1n);
      return units === expect && fp.length === scale;
    }),
  );
});

t.test('min and max by type, NaN above all floats', async (t) => {
  t.equal(mergeColumn('min', Oid.int4, ['10', '-3', null, '7']), '-3');
  t.equal(mergeColumn('max', Oid.numeric, ['10.5', '10.50001', '-Infinity']), '10.50001');
  t.equal(mergeColumn('max', Oid.float8, ['1e308', 'NaN', 'Infinity']), 'NaN');
  t.equal(mergeColumn('min', Oid.float8, ['-Infinity', '-1.5']), '-Infinity');
  t.equal(compareNumeric('NaN', 'Infinity') > 0, true);
});

t.test('inexact merges are refused, not approximated', async (t) => {
  t.throws(() => mergeColumn('sum', Oid.float8, ['0.1', '0.2']), { code: '0A000' });
  t.throws(() => mergeColumn('min', Oid.text, ['a', 'B']), { code: '0A000' });
});
