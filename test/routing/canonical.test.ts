import t, { type Test } from 'tap';
import { canonicalFromParam, canonicalFromText, canonicalToString, KeyValueError } from '../../src/routing/canonical.js';
import type { KeyType } from '../../src/config/schema.js';

const str = (b: Uint8Array): string => canonicalToString(b);
const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const int2 = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(v); return b; };
const int4 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(v); return b; };
const int8 = (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64BE(v); return b; };

t.test('every spelling of 42 gives the same bytes', async (t) => {
  const want = Buffer.from('42');
  const forms: [string, Uint8Array][] = [
    ['literal 42', canonicalFromText('bigint', '42')],
    ["'0042'", canonicalFromText('bigint', '0042')],
    ["'+42'", canonicalFromText('bigint', '+42')],
    ["' 42 '", canonicalFromText('bigint', ' \t42\n ')],
    ["'4_2'", canonicalFromText('bigint', '4_2')],
    ["'0x2A'", canonicalFromText('bigint', '0x2A')],
    ["'0o52'", canonicalFromText('bigint', '0o52')],
    ["'0b101010'", canonicalFromText('bigint', '0b10_1010')],
    ['text param "42"', canonicalFromParam('bigint', text('42'), 0)],
    ['text param "0042"', canonicalFromParam('bigint', text('0042'), 0)],
    ['binary int2', canonicalFromParam('bigint', int2(42), 1)],
    ['binary int4', canonicalFromParam('bigint', int4(42), 1)],
    ['binary int8', canonicalFromParam('bigint', int8(42n), 1)],
    ['int key, binary int4', canonicalFromParam('int', int4(42), 1)],
    ['int key, text', canonicalFromText('int', '042')],
  ];
  for (const [name, bytes] of forms) t.same(Buffer.from(bytes), want, name);
});

t.test('integer canonical forms', async (t) => {
  const cases: [KeyType, string, string][] = [
    ['bigint', '0', '0'],
    ['bigint', '-0', '0'],
    ['bigint', '000', '0'],
    ['bigint', '-00017', '-17'],
    ['bigint', '9223372036854775807', '9223372036854775807'],
    ['bigint', '-9223372036854775808', '-9223372036854775808'],
    ['bigint', '9007199254740993', '9007199254740993'],
    ['bigint', '-9007199254740993', '-9007199254740993'],
    ['bigint', '0x7FFFFFFFFFFFFFFF', '9223372036854775807'],
    ['bigint', '-0x8000000000000000', '-9223372036854775808'],
    ['bigint', '1_000_000', '1000000'],
    ['int', '2147483647', '2147483647'],
    ['int', '-2147483648', '-2147483648'],
  ];
  for (const [type, input, want] of cases) t.equal(str(canonicalFromText(type, input)), want, `${type} ${JSON.stringify(input)}`);
  t.equal(str(canonicalFromParam('bigint', int8(9223372036854775807n), 1)), '9223372036854775807');
  t.equal(str(canonicalFromParam('bigint', int8(-9223372036854775808n), 1)), '-9223372036854775808');
  t.equal(str(canonicalFromParam('bigint', int8(9007199254740993n), 1)), '9007199254740993');
  t.equal(str(canonicalFromParam('bigint', int2(-32768), 1)), '-32768');
  t.equal(str(canonicalFromParam('int', int4(-2147483648), 1)), '-2147483648');
  t.equal(str(canonicalFromParam('bigint', text('9007199254740993'), 0)), '9007199254740993');
  t.equal(str(canonicalFromParam('bigint', int8(-9007199254740993n), 1)), '-9007199254740993');
  t.equal(str(canonicalFromParam('bigint', int8(-9007199254740991n), 1)), '-9007199254740991');
  t.equal(str(canonicalFromParam('bigint', int8(1n << 53n), 1)), '9007199254740992');
  t.equal(str(canonicalFromParam('bigint', int8(-1n), 1)), '-1');
  t.equal(str(canonicalFromParam('int', int8(-5n), 1)), '-5', 'int key, int8 in range');
  t.equal(str(canonicalFromParam('int', int8(-2147483648n), 1)), '-2147483648');
  for (const [input, want] of [['-42', '-42'], ['0', '0'], ['-0', '0'], ['+0', '0'], ['00', '0'], ['-042', '-42'], ['42 ', '42'], ['-4_2', '-42'], ['9_223_372_036_854_775_807', '9223372036854775807']])
    t.equal(str(canonicalFromParam('bigint', text(input), 0)), want, `text param ${JSON.stringify(input)}`);
});

function throwsKey(t: Test, fn: () => unknown, sqlstate: string, message: string | RegExp, name: string): void {
  try {
    fn();
    t.fail(`${name}: no error`);
  } catch (e) {
    t.ok(e instanceof KeyValueError, `${name}: a KeyValueError`);
    const err = e as KeyValueError;
    t.equal(err.sqlstate, sqlstate, `${name}: sqlstate`);
    if (typeof message === 'string') t.equal(err.message, message, `${name}: message`);
    else t.match(err.message, message, `${name}: message`);
  }
}

t.test('bad integers are refused as Postgres refuses them', async (t) => {
  const syntax: [KeyType, string][] = [
    ['bigint', 'abc'], ['bigint', ''], ['bigint', ' '], ['bigint', '-'], ['bigint', '1.5'], ['bigint', '1e3'],
    ['bigint', '12a'], ['bigint', '_1'], ['bigint', '1_'], ['bigint', '1__2'], ['bigint', '0x'], ['bigint', '0xG'],
    ['bigint', '0b102'], ['bigint', '--1'], ['bigint', '4 2'], ['bigint', '٤٢'], ['int', 'NaN'],
  ];
  for (const [type, input] of syntax)
    throwsKey(t, () => canonicalFromText(type, input), '22P02', `invalid input syntax for type ${type === 'int' ? 'integer' : 'bigint'}: "${input}"`, JSON.stringify(input));
  throwsKey(t, () => canonicalFromParam('bigint', text('abc'), 0), '22P02', 'invalid input syntax for type bigint: "abc"', 'text param');

  const range: [KeyType, string][] = [
    ['bigint', '9223372036854775808'], ['bigint', '-9223372036854775809'], ['bigint', '99999999999999999999'],
    ['bigint', '0x8000000000000000'], ['bigint', '9_223_372_036_854_775_808'], ['int', '2147483648'], ['int', '-2147483649'], ['int', '0x80000000'],
  ];
  for (const [type, input] of range)
    throwsKey(t, () => canonicalFromText(type, input), '22003', `value "${input}" is out of range for type ${type === 'int' ? 'integer' : 'bigint'}`, input);
  throwsKey(t, () => canonicalFromParam('int', int8(2147483648n), 1), '22003', 'integer out of range', 'int key, binary int8');
  throwsKey(t, () => canonicalFromParam('bigint', Buffer.alloc(3), 1), '22P03', /incorrect binary data format/, 'binary length 3');
});

t.test('uuid forms', async (t) => {
  const want = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
  for (const input of [
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
    'a0eebc999c0b4ef8bb6d6bb9bd380a11',
    'a0ee-bc99-9c0b4ef8-bb6d6bb9-bd380a11',
    '{a0eebc999c0b4ef8bb6d6bb9bd380a11}',
  ]) {
    t.equal(str(canonicalFromText('uuid', input)), want, input);
    t.equal(str(canonicalFromParam('uuid', text(input), 0)), want, `text param ${input}`);
  }
  t.equal(str(canonicalFromParam('uuid', Buffer.from('a0eebc999c0b4ef8bb6d6bb9bd380a11', 'hex'), 1)), want, 'binary');
  for (const bad of ['', 'a0eebc99', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111',
    ' a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-',
    'a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'])
    throwsKey(t, () => canonicalFromText('uuid', bad), '22P02', `invalid input syntax for type uuid: "${bad}"`, bad);
  throwsKey(t, () => canonicalFromParam('uuid', Buffer.alloc(15), 1), '22P03', /incorrect binary data format/, 'binary 15 bytes');
});

t.test('text keys are their UTF-8 bytes', async (t) => {
  t.same(Buffer.from(canonicalFromText('text', 'héllo ✓')), Buffer.from('héllo ✓', 'utf8'));
  t.same(Buffer.from(canonicalFromParam('text', text('héllo ✓'), 0)), Buffer.from('héllo ✓', 'utf8'));
  t.same(Buffer.from(canonicalFromParam('text', text('héllo ✓'), 1)), Buffer.from('héllo ✓', 'utf8'));
  t.equal(str(canonicalFromText('text', ' 0042 ')), ' 0042 ', 'no normalisation');
});
