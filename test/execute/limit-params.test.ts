// LIMIT/OFFSET bind parameters: the values a merge uses, read from the Bind as Postgres reads them.
import t from 'tap';
import { bindLimit, type LimitParams } from '../../src/execute/merge/limit.js';
import { PgError } from '../../src/protocol/errors.js';

const int8 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
};
const int4 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const text = (s: string) => Buffer.from(s);
const params = (values: (Buffer | null)[], formats: (0 | 1)[], types: number[] = []): LimitParams => ({ values, formats, types });
const codeOf = (f: () => unknown) => {
  try {
    f();
    return null;
  } catch (e) {
    return e instanceof PgError ? e.code : 'other';
  }
};

t.test('values from text and binary parameters', async (t) => {
  const plan = { count: null, offset: 0, countParam: 1, offsetParam: 2 };
  t.same(bindLimit(plan, params([text('10'), text(' 5 ')], [0, 0])), { count: 10, offset: 5 });
  t.same(bindLimit(plan, params([int8(7n), int8(3n)], [1, 1])), { count: 7, offset: 3 });
  t.same(bindLimit(plan, params([int4(7), int4(0)], [1, 1], [23, 23])), { count: 7, offset: 0 });
  t.same(bindLimit(plan, params([null, null], [0, 0])), { count: null, offset: 0 }, 'NULL: no limit, no offset');
  t.same(bindLimit(plan, params([int8(1n << 62n), text('1')], [1, 0])), { count: Number.MAX_SAFE_INTEGER, offset: 1 }, 'past 2^53 is no limit');
  t.same(bindLimit({ count: 4, offset: 0, offsetParam: 1 }, params([text('2')], [0])), { count: 4, offset: 2 }, 'literal LIMIT, parameter OFFSET');
  const plain = { count: 3, offset: 1 };
  t.equal(bindLimit(plain, null), plain, 'no parameters: the plan itself');
});

t.test("Postgres's errors", async (t) => {
  const plan = { count: null, offset: 0, countParam: 1, offsetParam: 2 };
  t.equal(codeOf(() => bindLimit(plan, params([text('-1'), text('0')], [0, 0]))), '2201W');
  t.equal(codeOf(() => bindLimit(plan, params([text('-1'), text('-1')], [0, 0]))), '2201X', 'OFFSET is checked first');
  t.equal(codeOf(() => bindLimit(plan, params([text('x'), text('-1')], [0, 0]))), '22P02', 'conversion comes before the sign checks');
  t.equal(codeOf(() => bindLimit(plan, params([int4(1), int8(1n)], [1, 1]))), '22P03', 'a 4-byte binary value for an int8 parameter');
  t.equal(codeOf(() => bindLimit(plan, params([text('1.5'), text('1')], [0, 0], [1700, 0]))), '0A000', 'a numeric parameter is refused');
  t.equal(codeOf(() => bindLimit(plan, null)), '42P02', 'no Bind (simple protocol)');
  t.equal(codeOf(() => bindLimit({ count: null, offset: 0, countParam: 1, withTies: true }, params([null], [0]))), '2201W');
});
