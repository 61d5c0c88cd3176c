/** RETURNING rows of a split INSERT back in VALUES order. */
import t from 'tap';
import { ReturningOrder } from '../../src/execute/returning-order.js';
import { PgError } from '../../src/protocol/errors.js';

const row = (s: string) => Buffer.from(s);

t.test('rows of each shard are interleaved back by the VALUES order', async (t) => {
  const o = new ReturningOrder(['s1', 's0', 's1', 's2', 's0']);
  // Shards answer one after the other, each in its own VALUES order.
  for (const [shard, r] of [['s1', 'v0'], ['s1', 'v2'], ['s2', 'v3'], ['s0', 'v1'], ['s0', 'v4']] as const) o.add(shard, row(r));
  const out = o.ordered();
  t.ok(Array.isArray(out));
  t.same((out as Buffer[]).map(String), ['v0', 'v1', 'v2', 'v3', 'v4']);
});

t.test('no RETURNING: no rows', async (t) => {
  t.same(new ReturningOrder(['s0', 's1']).ordered(), []);
});

t.test('a shard that returned fewer rows than it was given: 0A000, not a guess', async (t) => {
  const o = new ReturningOrder(['s0', 's1', 's0']);
  o.add('s0', row('a'));
  o.add('s1', row('b'));
  const out = o.ordered();
  t.ok(out instanceof PgError);
  t.equal((out as PgError).code, '0A000');
  t.match((out as PgError).message, 'shard "s0" returned 1 rows for 2 VALUES rows');
});
