/** Binary COPY FROM STDIN splitting: PGCOPY byte fixtures in every chunking, malformed input, key decoding. */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { BINARY_SIGNATURE, BinaryCopySplitter, type BinaryCopyOptions } from '../../src/execute/copy-binary.js';
import { binaryKeyReader, numericFromBinary, TypeOid } from '../../src/execute/copy-binary-key.js';
import { canonicalFromText, canonicalToString } from '../../src/routing/canonical.js';
import { PgError } from '../../src/protocol/errors.js';

type Field = Buffer | null;

function int16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
}
function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
}
function int64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
}

function header(extension = Buffer.alloc(0), flags = 0): Buffer {
  return Buffer.concat([BINARY_SIGNATURE, int32(flags), int32(extension.length), extension]);
}

function tuple(fields: Field[]): Buffer {
  return Buffer.concat([int16(fields.length), ...fields.flatMap((f) => (f === null ? [int32(-1)] : [int32(f.length), f]))]);
}

const TRAILER = int16(-1);

interface Split {
  header: string | null;
  rows: { bytes: string; key: string | null }[];
  trailer: boolean;
}

/** Feeds `data` in chunks of the given sizes (cycled) and collects what the splitter reports. */
function split(opts: BinaryCopyOptions, data: Buffer, sizes: number[] = [data.length || 1]): Split {
  const s = new BinaryCopySplitter(opts);
  const rows: Split['rows'] = [];
  let h: Buffer | null = null;
  const take = (r: ReturnType<BinaryCopySplitter['push']>) => rows.push(...r.map((x) => ({ bytes: x.bytes.toString('hex'), key: x.key?.toString('hex') ?? null })));
  let p = 0;
  for (let k = 0; p < data.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]!);
    take(s.push(data.subarray(p, p + n)));
    h ??= s.takeHeader();
    p += n;
  }
  take(s.end());
  h ??= s.takeHeader();
  return { header: h?.toString('hex') ?? null, rows, trailer: s.sawTrailer };
}

function sameAtEveryBoundary(t: Test, opts: BinaryCopyOptions, data: Buffer): Split {
  const whole = split(opts, data);
  for (let cut = 1; cut < data.length; cut++) t.same(split(opts, data, [cut, data.length]), whole, `cut at ${cut}`);
  t.same(split(opts, data, [1]), whole, 'one byte at a time');
  t.same(split(opts, data, [3, 1, 7]), whole, 'chunks of 3, 1 and 7 bytes');
  return whole;
}

function throwsPg(t: Test, fn: () => unknown, code: string, message: string | RegExp): void {
  try {
    fn();
    t.fail(`expected ${code} ${String(message)}`);
  } catch (e) {
    t.ok(e instanceof PgError, `a PgError: ${(e as Error).message}`);
    t.equal((e as PgError).code, code);
    t.match((e as PgError).message, message);
  }
}

const KEY1: BinaryCopyOptions = { keyColumn: 1, columnCount: 3 };

t.test('header, tuples and trailer: each tuple keeps its exact bytes; the key is its field', async (t) => {
  const rows = [
    tuple([Buffer.from('a'), int64(1n), Buffer.from('x')]),
    tuple([null, int64(-2n), Buffer.alloc(0)]),
    tuple([Buffer.from('long '.repeat(40)), int64(9007199254740993n), null]),
  ];
  const hdr = header(Buffer.from('ext!'));
  const data = Buffer.concat([hdr, ...rows, TRAILER]);
  const r = sameAtEveryBoundary(t, KEY1, data);
  t.equal(r.header, hdr.toString('hex'), 'the header, with its extension');
  t.same(
    r.rows,
    rows.map((b, i) => ({ bytes: b.toString('hex'), key: [int64(1n), int64(-2n), int64(9007199254740993n)][i]!.toString('hex') })),
  );
  t.equal(r.trailer, true);
});

t.test('a NULL key and an empty key are told apart', async (t) => {
  const r = sameAtEveryBoundary(t, { keyColumn: 0, columnCount: 2 }, Buffer.concat([header(), tuple([null, Buffer.from('v')]), tuple([Buffer.alloc(0), null]), TRAILER]));
  t.same(
    r.rows.map((x) => x.key),
    [null, ''],
  );
});

t.test('the end of the data without a trailer ends the stream, as in Postgres', async (t) => {
  const body = Buffer.concat([header(), tuple([int32(1), int32(7)])]);
  t.same(split({ keyColumn: 0, columnCount: 2 }, body).rows.length, 1, 'no trailer');
  t.same(split({ keyColumn: 0, columnCount: 2 }, Buffer.concat([body, Buffer.from([0])])).rows.length, 1, 'one stray byte where a field count would start');
  t.same(split({ keyColumn: 0, columnCount: 2 }, header()).rows, [], 'a header alone: no rows');
});

t.test('random tuples in random chunkings split the same as in one piece', async () => {
  const field = fc.option(fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), { nil: null, freq: 4 });
  fc.assert(
    fc.property(
      fc.array(fc.array(field, { minLength: 3, maxLength: 3 }), { maxLength: 8 }),
      fc.uint8Array({ maxLength: 10 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      (tuples, ext, sizes, withTrailer) => {
        const data = Buffer.concat([header(Buffer.from(ext)), ...tuples.map(tuple), withTrailer ? TRAILER : Buffer.alloc(0)]);
        const whole = split(KEY1, data);
        const chunked = split(KEY1, data, sizes);
        if (JSON.stringify(whole) !== JSON.stringify(chunked)) throw new Error(`chunking ${sizes} differs`);
        if (whole.rows.length !== tuples.length) throw new Error('a tuple was lost');
        tuples.forEach((f, i) => {
          if (whole.rows[i]!.key !== (f[1]?.toString('hex') ?? null)) throw new Error(`key of tuple ${i}`);
        });
      },
    ),
    { numRuns: 300 },
  );
});

t.test('malformed input: 22P04 bad_copy_file_format with the message Postgres gives', async (t) => {
  const opts: BinaryCopyOptions = { keyColumn: 0, columnCount: 2 };
  const good = tuple([int32(1), int32(2)]);
  throwsPg(t, () => split(opts, Buffer.from('1\t2\n')), '22P04', 'COPY file signature not recognized');
  // Garbage is refused at its first byte, not when a whole header has arrived.
  throwsPg(t, () => new BinaryCopySplitter(opts).push(Buffer.from('PGX')), '22P04', 'COPY file signature not recognized');
  throwsPg(t, () => split(opts, Buffer.alloc(0)), '22P04', 'COPY file signature not recognized');
  throwsPg(t, () => split(opts, BINARY_SIGNATURE.subarray(0, 5)), '22P04', 'COPY file signature not recognized');
  throwsPg(t, () => split(opts, Buffer.concat([BINARY_SIGNATURE, Buffer.from([0, 0])])), '22P04', 'invalid COPY file header (missing flags)');
  throwsPg(t, () => split(opts, Buffer.concat([BINARY_SIGNATURE, int32(0), Buffer.from([0])])), '22P04', 'invalid COPY file header (missing length)');
  throwsPg(t, () => split(opts, Buffer.concat([BINARY_SIGNATURE, int32(0), int32(-1)])), '22P04', 'invalid COPY file header (missing length)');
  throwsPg(t, () => split(opts, Buffer.concat([BINARY_SIGNATURE, int32(0), int32(10), Buffer.from('abc')])), '22P04', 'invalid COPY file header (wrong length)');
  throwsPg(t, () => split(opts, header(undefined, 1 << 16)), '22P04', 'invalid COPY file header (WITH OIDS)');
  throwsPg(t, () => split(opts, header(undefined, 1 << 17)), '22P04', 'unrecognized critical flags in COPY file header');
  t.equal(split(opts, Buffer.concat([header(undefined, 1 << 3), good])).rows.length, 1, 'non-critical flags (low 16 bits) are ignored');
  throwsPg(t, () => split(opts, Buffer.concat([header(), good, TRAILER, good])), '22P04', 'received copy data after EOF marker');
  throwsPg(t, () => split(opts, Buffer.concat([header(), TRAILER, Buffer.from([0])]), [1]), '22P04', 'received copy data after EOF marker');
  throwsPg(t, () => split(opts, Buffer.concat([header(), good.subarray(0, good.length - 1)])), '22P04', 'unexpected EOF in COPY data');
  throwsPg(t, () => split(opts, Buffer.concat([header(), good.subarray(0, 4)])), '22P04', 'unexpected EOF in COPY data');
  throwsPg(t, () => split(opts, Buffer.concat([header(), int16(2), int32(-2)])), '22P04', 'invalid field size');
  throwsPg(t, () => split({ keyColumn: 2, columnCount: 3 }, Buffer.concat([header(), good])), '22P04', 'row field count is 2, expected 3');
  throwsPg(t, () => split(opts, Buffer.concat([header(), int16(0)])), '22P04', 'row field count is 0, expected 2');
  throwsPg(t, () => split(opts, Buffer.concat([header(), int16(2), int32(0x7fffffff)])), '54000', 'out of memory');
});

t.test('a huge tuple is joined once, not once per chunk', async (t) => {
  const big = Buffer.alloc(1 << 20, 0x61);
  const data = Buffer.concat([header(), tuple([int32(5), big]), TRAILER]);
  const s = new BinaryCopySplitter({ keyColumn: 0, columnCount: 2 });
  const rows = [];
  let maxPending = 0;
  for (let p = 0; p < data.length; p += 1000) {
    rows.push(...s.push(data.subarray(p, p + 1000)));
    maxPending = Math.max(maxPending, s.pending);
  }
  rows.push(...s.end());
  t.equal(rows.length, 1);
  t.equal(rows[0]!.bytes.length, 2 + 8 + 4 + big.length);
  t.ok(maxPending <= rows[0]!.bytes.length, 'only the tuple is held');
  t.equal(s.pending, 0);
});

// ---------------------------------------------------------------------------------------------------------
// keys

function keyOf(keyType: 'bigint' | 'int' | 'text' | 'uuid', oid: number, field: Buffer): string {
  const r = binaryKeyReader(keyType, oid, String(oid), 't', 'k');
  if (r instanceof PgError) throw r;
  return canonicalToString(r(field));
}

t.test('integer keys give the canonical form of their value, whatever the column width', async (t) => {
  t.equal(keyOf('bigint', TypeOid.int2, int16(-7)), '-7');
  t.equal(keyOf('bigint', TypeOid.int4, int32(42)), '42');
  t.equal(keyOf('bigint', TypeOid.int8, int64(-(2n ** 63n))), '-9223372036854775808');
  t.equal(keyOf('int', TypeOid.int4, int32(2147483647)), '2147483647');
  t.equal(keyOf('bigint', TypeOid.text, Buffer.from(' 0042 ')), '42', 'a text column read as the text COPY path reads it');
  throwsPg(t, () => keyOf('int', TypeOid.int8, int64(2n ** 40n)), '22003', 'integer out of range');
  throwsPg(t, () => keyOf('bigint', TypeOid.int4, int16(1)), '08P01', 'insufficient data left in message');
  throwsPg(t, () => keyOf('bigint', TypeOid.int4, int64(1n)), '22P03', 'incorrect binary data format');
  throwsPg(t, () => keyOf('bigint', TypeOid.text, Buffer.from('abc')), '22P02', 'invalid input syntax for type bigint: "abc"');
});

/** numeric_send of a decimal string (test-side encoder). */
function numericSend(s: string): Buffer {
  if (s === 'NaN') return Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
  const neg = s.startsWith('-');
  const [ip, fp = ''] = (neg ? s.slice(1) : s).split('.');
  const dscale = fp.length;
  const intPart = ip!.replace(/^0+/, '');
  // Base-10000 groups aligned on the decimal point.
  const padInt = intPart.padStart(Math.ceil(intPart.length / 4) * 4, '0');
  const padFrac = fp.padEnd(Math.ceil(fp.length / 4) * 4, '0');
  let digits = [...(padInt + padFrac).matchAll(/.{4}/g)].map((m) => Number(m[0]));
  let weight = padInt.length / 4 - 1;
  while (digits.length && digits[0] === 0) {
    digits.shift();
    weight--;
  }
  while (digits.length && digits[digits.length - 1] === 0) digits.pop();
  if (!digits.length) weight = 0;
  const b = Buffer.alloc(8 + 2 * digits.length);
  b.writeInt16BE(digits.length, 0);
  b.writeInt16BE(weight, 2);
  b.writeUInt16BE(neg && digits.length ? 0x4000 : 0, 4);
  b.writeInt16BE(dscale, 6);
  digits.forEach((d, i) => b.writeInt16BE(d, 8 + 2 * i));
  digits = [];
  return b;
}

t.test('numeric keys: numeric_recv then numeric_out, then the integer rules', async (t) => {
  for (const v of ['0', '42', '-42', '10000', '123456789012345678', '0.5', '42.50', '-0.0001', '100000000.0000'])
    t.equal(numericFromBinary(numericSend(v)), v, `numeric ${v}`);
  t.equal(numericFromBinary(numericSend('NaN')), 'NaN');
  t.equal(keyOf('bigint', TypeOid.numeric, numericSend('9223372036854775807')), '9223372036854775807');
  throwsPg(t, () => keyOf('bigint', TypeOid.numeric, numericSend('42.0')), '22P02', 'invalid input syntax for type bigint: "42.0"');
  throwsPg(t, () => keyOf('bigint', TypeOid.numeric, numericSend('NaN')), '22P02', /"NaN"/);
  throwsPg(t, () => numericFromBinary(Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10])), '22P03', 'invalid digit in external "numeric" value');
  throwsPg(t, () => numericFromBinary(Buffer.from([0, 0, 0, 0, 0x12, 0, 0, 0])), '22P03', 'invalid sign in external "numeric" value');
  throwsPg(t, () => numericFromBinary(Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 1])), '08P01', 'insufficient data');
  fc.assert(
    fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), fc.nat({ max: 12 }), (units, scale) => {
      const neg = units < 0n;
      let digits = (neg ? -units : units).toString().padStart(scale + 1, '0');
      if (scale > 0) digits = digits.slice(0, -scale) + '.' + digits.slice(-scale);
      const text = (neg ? '-' : '') + digits;
      if (numericFromBinary(numericSend(text)) !== text) throw new Error(`numeric ${text}`);
    }),
  );
});

t.test('uuid and text keys', async (t) => {
  const u = Buffer.from('a0eebc999c0b4ef8bb6d6bb9bd380a11', 'hex');
  t.equal(keyOf('uuid', TypeOid.uuid, u), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  t.equal(keyOf('uuid', TypeOid.text, Buffer.from('{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}')), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  throwsPg(t, () => keyOf('uuid', TypeOid.uuid, u.subarray(0, 15)), '08P01', 'insufficient data');
  t.equal(keyOf('text', TypeOid.varchar, Buffer.from('ünï😀')), 'ünï😀');
  t.same(Buffer.from(canonicalFromText('text', 'ünï😀')), Buffer.from('ünï😀'), 'the same bytes the text path hashes');
  throwsPg(t, () => keyOf('text', TypeOid.text, Buffer.from([0x61, 0xff])), '22021', /0xff/);
});

t.test('column types that cannot be canonicalised exactly are refused with 0A000', async (t) => {
  for (const [keyType, oid, name] of [
    ['text', TypeOid.bpchar, 'character(4)'],
    ['bigint', 701, 'double precision'],
    ['uuid', TypeOid.int8, 'bigint'],
    ['text', TypeOid.int4, 'integer'],
  ] as const) {
    const r = binaryKeyReader(keyType, oid, name, 'items', 'k');
    t.ok(r instanceof PgError && r.code === '0A000', `${keyType} key in a ${name} column`);
    t.match((r as PgError).message, `shard key column "k" of type ${name}`);
  }
});
