/** Canonical key text: literals, casts, arrays, uuids, and a property test over random integers. */
import t from 'tap';
import fc from 'fast-check';
import { canonicalInteger, canonicalUuid, parseArrayLiteral } from '../../src/sql/keys.js';
import { initParser, StatementAnalyzer } from '../../src/sql/analyze.js';
import type { KeyExpr } from '../../src/sql/types.js';

await initParser();

t.test('canonicalInteger', async (t) => {
  const cases: [string, string | undefined][] = [
    ['42', '42'],
    ['0042', '42'],
    ['  +42 ', '42'],
    ['-0', '0'],
    ['-007', '-7'],
    ['1_000', '1000'],
    ['0x2A', '42'],
    ['-0x2a', '-42'],
    ['0o17', '15'],
    ['0b101', '5'],
    ['9223372036854775807', '9223372036854775807'],
    ['-9223372036854775808', '-9223372036854775808'],
    ['123456789012345678901234567890', '123456789012345678901234567890'],
    ['', undefined],
    ['+', undefined],
    ['1.5', undefined],
    ['1e3', undefined],
    ['1__0', undefined],
    ['_1', undefined],
    ['1_', undefined],
    ['0x', undefined],
    ['abc', undefined],
    ['4 2', undefined],
  ];
  for (const [input, expected] of cases) t.equal(canonicalInteger(input), expected, JSON.stringify(input));
});

t.test('canonicalUuid', async (t) => {
  const want = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
  for (const input of [
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
    'a0eebc999c0b4ef8bb6d6bb9bd380a11',
    'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11',
  ])
    t.equal(canonicalUuid(input), want, input);
  for (const bad of ['a0eebc99', 'g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11', '{a0eebc999c0b4ef8bb6d6bb9bd380a11'])
    t.equal(canonicalUuid(bad), undefined, bad);
});

t.test('parseArrayLiteral', async (t) => {
  t.same(parseArrayLiteral('{1,2,3}'), ['1', '2', '3']);
  t.same(parseArrayLiteral(' { 1 , "2" ,NULL, null, "NULL" } '), ['1', '2', null, null, 'NULL']);
  t.same(parseArrayLiteral('{"a,b","c\\"d"}'), ['a,b', 'c"d']);
  t.same(parseArrayLiteral('{}'), []);
  t.equal(parseArrayLiteral('{{1,2},{3,4}}'), undefined, 'two dimensions');
  t.equal(parseArrayLiteral('[1:2]={1,2}'), undefined, 'dimension decoration');
  t.equal(parseArrayLiteral('{1,,2}'), undefined, 'empty element');
  t.equal(parseArrayLiteral('1,2'), undefined, 'no braces');
});

const analyzer = new StatementAnalyzer({ users: { shard_key: 'id', key_type: 'bigint', cross_shard: 'allow' } }, 'reference', 100);

function keysOf(sql: string): KeyExpr[] | string {
  const a = analyzer.analyze(sql);
  const route = a.statements[0]?.route;
  return route?.type === 'keys' ? route.keys : JSON.stringify(a);
}

/** Integers of any size: within int64, and far beyond 2^53 and 2^64 both ways. */
const anyInteger = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.integer().map(BigInt));

t.test('every literal spelling of an integer key gives its decimal text', async (t) => {
  fc.assert(
    fc.property(anyInteger, fc.nat({ max: 3 }), (n, zeros) => {
      const digits = (n < 0n ? -n : n).toString();
      const sign = n < 0n ? '-' : '';
      const padded = sign + '0'.repeat(zeros) + digits;
      const expected: KeyExpr[] = [{ kind: 'const', value: n.toString() }];
      const forms = [
        `id = ${n}`,
        `${n} = id`,
        `id = '${padded}'`,
        `id = '${n}'::bigint`,
        `id = ${n}::int8`,
        `id = CAST('${padded}' AS bigint)`,
        `id = bigint '${n}'`,
        `id IN (${n})`,
        `id = ANY('{${padded}}')`,
        `id = ANY(ARRAY[${n}])`,
        n < 0n ? `id = -${digits}` : `id = +${digits}`,
        n < 0n ? `id = -(${digits})` : `id = (${digits})`,
      ];
      for (const where of forms) {
        const got = keysOf(`SELECT * FROM users WHERE ${where}`);
        if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`${where}: ${JSON.stringify(got)}`);
      }
      const inserted = keysOf(`INSERT INTO users (id) VALUES ('${padded}'), (${n})`);
      if (JSON.stringify(inserted) !== JSON.stringify([...expected, ...expected])) throw new Error(`INSERT: ${JSON.stringify(inserted)}`);
    }),
    { numRuns: 300 },
  );
  t.pass('all spellings agree');
});
