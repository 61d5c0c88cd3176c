import t from 'tap';
import fc from 'fast-check';
import * as N from '../../src/execute/numeric.js';

const num = (s: string): N.Decimal => N.parseNumeric(s);
const fmt = N.formatNumeric;

/** A decimal text from units and scale. */
function text(units: bigint, scale: number): string {
  return fmt(N.dec(units, scale));
}

const decimal = fc.tuple(fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }), fc.integer({ min: 0, max: 12 })).map(([u, s]) => N.dec(u, s));

t.test('parse and print keep the display scale', async (t) => {
  for (const s of ['0', '0.000', '-1.50', '123456789012345678901234567890.123', 'NaN', 'Infinity', '-Infinity', '-0.001']) t.equal(fmt(num(s)), s);
  t.equal(fmt(num('+1.5')), '1.5');
  t.equal(fmt(num('1e3')), '1000');
  t.equal(fmt(num('1.5e-3')), '0.0015');
});

t.test('comparison ignores scale, orders -Infinity < finite < Infinity < NaN', async (t) => {
  t.equal(N.compareDecimal(num('1.5'), num('1.50')), 0);
  t.equal(N.decimalKey(num('1.5')), N.decimalKey(num('1.500')));
  t.not(N.decimalKey(num('1.5')), N.decimalKey(num('15')));
  const order = ['-Infinity', '-5', '-0.001', '0', '0.001', '2', 'Infinity', 'NaN'].map(num);
  for (let i = 0; i + 1 < order.length; i++) t.ok(N.compareDecimal(order[i]!, order[i + 1]!) < 0, `${fmt(order[i]!)} < ${fmt(order[i + 1]!)}`);
  t.equal(N.compareDecimal(num('NaN'), num('NaN')), 0);
  fc.assert(
    fc.property(decimal, decimal, (a, b) => {
      const s = Math.max(a.scale, b.scale);
      const x = a.units * 10n ** BigInt(s - a.scale);
      const y = b.units * 10n ** BigInt(s - b.scale);
      return Math.sign(N.compareDecimal(a, b)) === (x < y ? -1 : x > y ? 1 : 0);
    }),
  );
});

t.test('addition and multiplication are exact with Postgres scales', async (t) => {
  t.equal(fmt(N.add(num('1.5'), num('2.25'))), '3.75');
  t.equal(fmt(N.add(num('1.50'), num('-1.5'))), '0.00');
  t.equal(fmt(N.mul(num('1.5'), num('2.25'))), '3.375');
  t.equal(fmt(N.mul(num('0.10'), num('3'))), '0.30');
  t.equal(fmt(N.add(num('Infinity'), num('-Infinity'))), 'NaN');
  t.equal(fmt(N.mul(num('Infinity'), num('0'))), 'NaN');
  t.equal(fmt(N.mul(num('-Infinity'), num('-2'))), 'Infinity');
});

t.test('division picks select_div_scale and rounds half away from zero (values from Postgres 18)', async (t) => {
  t.equal(fmt(N.div(num('1'), num('3'))), '0.33333333333333333333');
  t.equal(fmt(N.div(num('10'), num('3'))), '3.3333333333333333');
  t.equal(fmt(N.div(num('100000'), num('3'))), '33333.333333333333');
  t.equal(fmt(N.div(num('2'), num('3'))), '0.66666666666666666667');
  t.equal(fmt(N.div(num('-2'), num('3'))), '-0.66666666666666666667');
  t.equal(fmt(N.div(num('1.000'), num('8'))), '0.12500000000000000000');
  t.equal(fmt(N.div(num('7'), num('7'))), '1.00000000000000000000');
  t.equal(fmt(N.div(num('5'), num('Infinity'))), '0');
  t.equal(fmt(N.div(num('Infinity'), num('-2'))), '-Infinity');
  t.throws(() => N.div(num('1'), num('0')), { code: '22012', message: 'division by zero' });
  t.throws(() => N.div(num('Infinity'), num('0')), { code: '22012' });
  fc.assert(
    fc.property(decimal, decimal.filter((d) => d.units !== 0n), (a, b) => {
      const q = N.div(a, b);
      // |q - a/b| ≤ half a unit in the last place, and ties go away from zero.
      const s = q.scale;
      const num2 = a.units * 10n ** BigInt(b.scale + s) * 2n;
      const den = b.units * 10n ** BigInt(a.scale);
      const diff = q.units * 2n * den - num2; // (q - a/b) · 2·den·10^s
      const absDen = den < 0n ? -den : den;
      const absDiff = diff < 0n ? -diff : diff;
      return absDiff <= absDen && s >= a.scale && s >= b.scale;
    }),
  );
});

t.test('rounding and truncation to a scale', async (t) => {
  t.equal(fmt(N.roundTo(num('2.5'), 0)), '3');
  t.equal(fmt(N.roundTo(num('-2.5'), 0)), '-3');
  t.equal(fmt(N.roundTo(num('1.2345'), 2)), '1.23');
  t.equal(fmt(N.roundTo(num('1.235'), 2)), '1.24');
  t.equal(fmt(N.roundTo(num('1.2'), 4)), '1.2000');
  t.equal(fmt(N.roundTo(num('1250'), -2)), '1300');
  t.equal(fmt(N.truncTo(num('-1.99'), 0)), '-1');
  t.equal(fmt(N.truncTo(num('1.99'), 1)), '1.9');
});

t.test('numeric typmod and integer casts fail as Postgres does', async (t) => {
  t.equal(fmt(N.applyTypmod(num('12.345'), 5, 2)), '12.35');
  t.throws(() => N.applyTypmod(num('1234.5'), 5, 2), { code: '22003', message: 'numeric field overflow' });
  t.throws(() => N.applyTypmod(num('Infinity'), 5, 2), { code: '22003' });
  t.equal(fmt(N.applyTypmod(num('NaN'), 5, 2)), 'NaN');
  t.equal(N.toInteger(num('2.5'), 32), 3n);
  t.throws(() => N.toInteger(num('2147483648'), 32), { code: '22003', message: 'integer out of range' });
  t.throws(() => N.toInteger(num('NaN'), 64), { code: '0A000' });
});

t.test('integer square root', async (t) => {
  t.equal(N.isqrt(0n), 0n);
  t.equal(N.isqrt(15n), 3n);
  t.equal(N.isqrt(16n), 4n);
  t.equal(N.isqrt(10n ** 60n + 12345n), 10n ** 30n);
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 10n ** 80n }), (n) => {
      const r = N.isqrt(n);
      return r * r <= n && (r + 1n) * (r + 1n) > n;
    }),
  );
});

t.test('variance and stddev follow numeric_stddev_internal (values from Postgres 18)', async (t) => {
  // values 1, 2, 3, 4: var_samp 1.6666666666666667, stddev_samp 1.2909944487358056, var_pop 1.2500000000000000, stddev_pop 1.1180339887498948
  const n = 4n;
  const sum = num('10');
  const sq = num('30');
  t.equal(fmt(N.varianceOf(n, sum, sq, true, false)), '1.6666666666666667');
  t.equal(fmt(N.varianceOf(n, sum, sq, true, true)), '1.2909944487358056');
  t.equal(fmt(N.varianceOf(n, sum, sq, false, false)), '1.2500000000000000');
  t.equal(fmt(N.varianceOf(n, sum, sq, false, true)), '1.1180339887498948');
  // identical values: numerator 0 → 0
  t.equal(fmt(N.varianceOf(3n, num('6.00'), num('12.0000'), true, true)), '0');
});

t.test('weight and first base-10000 digit', async (t) => {
  t.same(N.weightAndFirstDigit(num('100000')), { weight: 1, first: 10 });
  t.same(N.weightAndFirstDigit(num('9999')), { weight: 0, first: 9999 });
  t.same(N.weightAndFirstDigit(num('0.0001')), { weight: -1, first: 1 });
  t.same(N.weightAndFirstDigit(num('0.00001')), { weight: -2, first: 1000 });
  t.same(N.weightAndFirstDigit(num('0')), { weight: 0, first: 0 });
  t.equal(text(-5n, 2), '-0.05');
});
