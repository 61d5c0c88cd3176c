// Binary encoding of merged values (src/execute/binary.ts); the differential oracle compares the bytes
// with a real Postgres for every type of its schema, this covers the corners it rarely reaches.
import t from 'tap';
import { binaryEncoder, float4FromText, numericBinary } from '../../src/execute/binary.js';
import { parseNumeric } from '../../src/execute/numeric.js';
import { PgError } from '../../src/protocol/errors.js';

const ctx = { isoDates: true, postgresIntervals: true, exactFloats: true };
const hex = (oid: number, text: string) => binaryEncoder(oid, ctx)(Buffer.from(text)).toString('hex');

/** The exact decimal expansion of a double cut to 30 significant digits, one unit of the last digit below or above it. */
function besideDecimal(x: number, above: boolean): string {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  const bits = b.readBigUInt64BE();
  const mant = (bits & ((1n << 52n) - 1n)) | (1n << 52n);
  const scale = 1075 - Number((bits >> 52n) & 0x7ffn); // x = mant * 2^-scale = mant * 5^scale * 10^-scale
  const digits = (mant * 5n ** BigInt(scale)).toString();
  const prefix = BigInt(digits.slice(0, 30));
  return `${above ? prefix + 1n : prefix - 1n}e${digits.length - 30 - scale}`;
}

t.test('float4 from decimal text: correctly rounded next to midpoints', async (t) => {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  let wrongThroughDouble = 0;
  for (const start of [1.1, 3.4e-20, 123456.789, 0.1, 2e-41]) {
    f32[0] = start;
    for (let i = 0; i < 200; i++) {
      const f = f32[0]!;
      u32[0]! += 1;
      const next = f32[0]!;
      const mid = (f + next) / 2;
      for (const above of [false, true]) {
        const s = besideDecimal(mid, above);
        if (Math.fround(Number(s)) !== (above ? next : f)) wrongThroughDouble++;
        if (float4FromText(s) !== (above ? next : f)) t.fail(`${s} should be ${above ? next : f}`);
      }
    }
  }
  t.pass(`every decimal beside a midpoint rounds to its float4 (${wrongThroughDouble} would not through a double)`);
  t.equal(float4FromText('0.1'), Math.fround(0.1));
  t.equal(hex(700, '-Infinity'), 'ff800000');
  t.equal(hex(700, 'NaN'), '7fc00000');
});

t.test('numeric as numeric_send writes it', async (t) => {
  const n = (s: string) => numericBinary(parseNumeric(s)).toString('hex');
  t.equal(n('0'), '0000000000000000');
  t.equal(n('0.000'), '0000000000000003');
  t.equal(n('12345.6789'), '000300010000000400010929' + '1a85', 'digits 1, 2345, 6789; weight 1; dscale 4');
  t.equal(n('-0.0001'), '0001ffff400000040001', 'weight -1, negative');
  t.equal(n('100000000'), '0001000200000000' + '0001', 'trailing zero digits dropped');
  t.equal(n('NaN'), '00000000c0000000');
  t.equal(n('-Infinity'), '00000000f0000020');
});

t.test('other types and refusals', async (t) => {
  t.equal(hex(2950, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), 'a0eebc999c0b4ef8bb6d6bb9bd380a11');
  t.equal(hex(1082, '2000-01-02'), '00000001');
  t.equal(hex(1082, 'infinity'), '7fffffff');
  t.equal(hex(1114, '1999-12-31 23:59:59.5'), 'fffffffffff85ee0');
  t.equal(hex(1184, '2000-01-01 05:30:00+05:30'), '0000000000000000');
  t.equal(hex(1186, '1 year 2 mons -3 days +04:05:06.5'), '000000036c9361a0' + 'fffffffd' + '0000000e');
  t.equal(hex(1007, '{1,NULL,3}'), '00000001' + '00000001' + '00000017' + '00000003' + '00000001' + '0000000400000001' + 'ffffffff' + '0000000400000003');
  t.equal(hex(18, '\\202'), '82');
  t.equal(hex(3802, '{"a": 1}'), '01' + Buffer.from('{"a": 1}').toString('hex'));
  const refused = (f: () => unknown) => {
    try {
      f();
      return null;
    } catch (e) {
      return e instanceof PgError ? e.code : 'other';
    }
  };
  t.equal(refused(() => binaryEncoder(600, ctx)), '0A000', 'point has no encoder');
  t.equal(refused(() => binaryEncoder(1082, { ...ctx, isoDates: false })), '0A000', 'dates need DateStyle ISO');
  t.equal(refused(() => binaryEncoder(701, { ...ctx, exactFloats: false })), '0A000', 'floats need extra_float_digits >= 1');
});
