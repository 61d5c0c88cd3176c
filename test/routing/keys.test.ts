import t from 'tap';
import { initHash } from '../../src/routing/hash.js';
import { HashRing } from '../../src/routing/ring.js';
import { canonicalFromText, KeyValueError } from '../../src/routing/canonical.js';
import { shardsForKeys, textArrayElements, type BindParams } from '../../src/routing/keys.js';
import type { KeyType } from '../../src/config/schema.js';
import type { KeyExpr } from '../../src/sql/types.js';

await initHash();
const ring = HashRing.build(
  ['s1', 's2', 's3', 's4'].map((id) => ({ id, weight: 1 })),
  64,
);
const owner = (type: KeyType, v: string): string => ring.shardFor(canonicalFromText(type, v));
const owners = (type: KeyType, vs: string[]): Set<string> => new Set(vs.map((v) => owner(type, v)));

const OID = { int2: 21, int4: 23, int8: 20, text: 25, varchar: 1043, uuid: 2950, numeric: 1700 };

/** array_send by hand: ndim, has-null flag, element oid, (length, lower bound) per dimension, then elements. */
function binaryArray(oid: number, elements: (Buffer | null)[], dims: number[] = elements.length ? [elements.length] : []): Buffer {
  const head = Buffer.alloc(12 + 8 * dims.length);
  head.writeInt32BE(dims.length, 0);
  head.writeInt32BE(elements.includes(null) ? 1 : 0, 4);
  head.writeUInt32BE(oid, 8);
  dims.forEach((d, i) => {
    head.writeInt32BE(d, 12 + 8 * i);
    head.writeInt32BE(1, 16 + 8 * i);
  });
  const parts: Buffer[] = [head];
  for (const e of elements) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(e === null ? -1 : e.length);
    parts.push(len);
    if (e !== null) parts.push(e);
  }
  return Buffer.concat(parts);
}
const i8 = (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64BE(v); return b; };
const i4 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(v); return b; };
const i2 = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(v); return b; };

const params = (values: (Buffer | null)[], formats: (0 | 1)[] = values.map(() => 0)): BindParams => ({ values, formats });
const p = (index: number): KeyExpr => ({ kind: 'param', index });
const pa = (index: number): KeyExpr => ({ kind: 'param-array', index });

t.test('constants, NULL and single parameters', async (t) => {
  t.same(shardsForKeys(ring, 'bigint', [{ kind: 'const', value: '42' }], null), owners('bigint', ['42']));
  t.same(shardsForKeys(ring, 'bigint', [{ kind: 'null' }], null), new Set(), 'NULL: no shard');
  t.same(shardsForKeys(ring, 'bigint', [], null), new Set());
  t.same(shardsForKeys(ring, 'bigint', [p(0)], params([Buffer.from('0042')])), owners('bigint', ['42']), 'text param');
  t.same(shardsForKeys(ring, 'bigint', [p(0)], params([i8(42n)], [1])), owners('bigint', ['42']), 'binary param');
  t.same(shardsForKeys(ring, 'bigint', [p(1)], params([Buffer.from('x'), null])), new Set(), 'NULL param: no shard');
  t.same(
    shardsForKeys(ring, 'bigint', [{ kind: 'const', value: '1' }, p(0), p(1), { kind: 'null' }], params([Buffer.from('2'), i4(3)], [0, 1])),
    owners('bigint', ['1', '2', '3']),
    'union',
  );
  t.same(shardsForKeys(ring, 'uuid', [p(0)], params([Buffer.from('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')])), owners('uuid', ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']));
});

t.test('parameters before Bind: every shard', async (t) => {
  t.equal(shardsForKeys(ring, 'bigint', [p(0)], null), 'all');
  t.equal(shardsForKeys(ring, 'bigint', [{ kind: 'const', value: '1' }, pa(0)], null), 'all');
});

t.test('text-format arrays', async (t) => {
  t.same(textArrayElements('{1,2,3}'), ['1', '2', '3']);
  t.same(textArrayElements(' { 1 , NULL,null, "NULL" , 3 } '), ['1', null, null, 'NULL', '3']);
  t.same(textArrayElements('{"a b","x\\"y","c\\\\d",  e f  ,\\ g\\ }'), ['a b', 'x"y', 'c\\d', 'e f', ' g ']);
  t.same(textArrayElements('{}'), []);
  t.same(textArrayElements('{{1,2},{3,4}}'), ['1', '2', '3', '4']);
  t.same(textArrayElements('[0:1]={7,8}'), ['7', '8']);
  t.same(textArrayElements('{"{a}",b}'), ['{a}', 'b']);
  for (const bad of ['', '1,2', '{1,2', '{1,,2}', '{1,2}x', '{,1}', '{1,}', '{"a}', '{a"b}', '{{1}2}', '{1{2}}'])
    t.throws(() => textArrayElements(bad), { sqlstate: '22P02', message: `malformed array literal: "${bad}"` }, JSON.stringify(bad));

  const keys = ['1', '0042', '9223372036854775807', '-5'];
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], params([Buffer.from(`{${keys.join(',')},NULL}`)])), owners('bigint', keys));
  t.same(shardsForKeys(ring, 'text', [pa(0)], params([Buffer.from('{"a,b",NULL,"null",plain}')])), owners('text', ['a,b', 'null', 'plain']));
  t.same(
    shardsForKeys(ring, 'uuid', [pa(0)], params([Buffer.from('{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11,"{00000000000000000000000000000000}"}')])),
    owners('uuid', ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00000000-0000-0000-0000-000000000000']),
  );
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], params([Buffer.from('{NULL}')])), new Set(), 'only NULLs: no shard');
  t.throws(() => shardsForKeys(ring, 'bigint', [pa(0)], params([Buffer.from('{1,abc}')])), { sqlstate: '22P02', message: 'invalid input syntax for type bigint: "abc"' });
});

t.test('binary-format arrays', async (t) => {
  const want = owners('bigint', ['1', '-2', '9007199254740993']);
  const bin = (b: Buffer): BindParams => params([b], [1]);
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], bin(binaryArray(OID.int8, [i8(1n), null, i8(-2n), i8(9007199254740993n)]))), want, 'int8[] with a NULL');
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], bin(binaryArray(OID.int4, [i4(1), i4(-2)]))), owners('bigint', ['1', '-2']), 'int4[]');
  t.same(shardsForKeys(ring, 'int', [pa(0)], bin(binaryArray(OID.int2, [i2(1), i2(-2)]))), owners('int', ['1', '-2']), 'int2[]');
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], bin(binaryArray(OID.int8, [i8(1n), i8(2n), i8(3n), i8(4n)], [2, 2]))), owners('bigint', ['1', '2', '3', '4']), '2-D');
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], bin(binaryArray(OID.int8, []))), new Set(), 'empty array');
  t.same(shardsForKeys(ring, 'text', [pa(0)], bin(binaryArray(OID.text, [Buffer.from('alice'), Buffer.from('bob')]))), owners('text', ['alice', 'bob']), 'text[]');
  t.same(shardsForKeys(ring, 'text', [pa(0)], bin(binaryArray(OID.varchar, [Buffer.from('alice')]))), owners('text', ['alice']), 'varchar[]');
  t.same(
    shardsForKeys(ring, 'uuid', [pa(0)], bin(binaryArray(OID.uuid, [Buffer.from('a0eebc999c0b4ef8bb6d6bb9bd380a11', 'hex')]))),
    owners('uuid', ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']),
    'uuid[]',
  );
  t.equal(shardsForKeys(ring, 'bigint', [pa(0)], bin(binaryArray(OID.numeric, [Buffer.alloc(8)]))), 'all', 'an element type that is not the key type: every shard');

  const good = binaryArray(OID.int8, [i8(1n), i8(2n)]);
  for (const [name, bytes] of [
    ['cut short', good.subarray(0, good.length - 3)],
    ['trailing bytes', Buffer.concat([good, Buffer.alloc(1)])],
    ['wrong element length', binaryArray(OID.int8, [i4(1)])],
    ['header only', Buffer.alloc(8)],
  ] as const)
    t.throws(() => shardsForKeys(ring, 'bigint', [pa(2)], params([null, null, bytes], [0, 0, 1])), { sqlstate: '22P03', message: 'incorrect binary data format in bind parameter 3' }, name);
  t.throws(() => shardsForKeys(ring, 'int', [pa(0)], bin(binaryArray(OID.int8, [i8(1n << 40n)]))), { name: 'KeyValueError', sqlstate: '22003' }, 'int key, int8 element out of range');
});

t.test('bad values and missing parameters', async (t) => {
  t.throws(() => shardsForKeys(ring, 'bigint', [{ kind: 'const', value: 'abc' }], null), new KeyValueError('22P02', 'invalid input syntax for type bigint: "abc"'));
  t.throws(() => shardsForKeys(ring, 'bigint', [p(0)], params([i4(1).subarray(0, 3)], [1])), { sqlstate: '22P03', message: 'incorrect binary data format in bind parameter 1' });
  t.throws(() => shardsForKeys(ring, 'bigint', [p(1)], params([Buffer.from('1')])), { name: 'KeyValueError', sqlstate: '08P01' });
});

t.test('a large array reaches every shard', async (t) => {
  const many = Array.from({ length: 200 }, (_, i) => String(i));
  t.same(shardsForKeys(ring, 'bigint', [pa(0)], params([Buffer.from(`{${many.join(',')}}`)])), new Set(ring.shardIds));
});
