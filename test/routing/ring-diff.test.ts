import t from 'tap';
import fc from 'fast-check';
import { initHash } from '../../src/routing/hash.js';
import { HashRing } from '../../src/routing/ring.js';
import { inRanges, movedShares, ringDiff } from '../../src/routing/ring-diff.js';

await initHash();

const ids = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `s${i}`, weight: 1 }));
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

t.test('adding a fourth shard to three moves about a quarter, from every old shard, only to the new one', async (t) => {
  const before = HashRing.build(ids(3), 256);
  const after = before.withShard({ id: 's3', weight: 1 });
  const diff = ringDiff(before, after);
  t.ok(diff.every((r) => r.to === 's3'), 'nothing moves between old shards');
  const shares = movedShares(diff);
  let total = 0;
  for (const from of ['s0', 's1', 's2']) {
    const s = shares.get(`${from}→s3`) ?? 0;
    t.ok(s > 0.04 && s < 0.15, `${from} gives ${s.toFixed(3)} (about 1/12)`);
    total += s;
  }
  t.ok(Math.abs(total - after.shares().get('s3')!) < 1e-9, 'exactly the new shard share');
  t.ok(Math.abs(total - 0.25) < 0.06, `about 1/4 moves (${total.toFixed(3)})`);
});

t.test('removing a shard moves only its ranges, to the others', async (t) => {
  const before = HashRing.build(ids(4), 128);
  const after = before.withoutShard('s2');
  const diff = ringDiff(before, after);
  t.ok(diff.every((r) => r.from === 's2' && r.to !== 's2'));
  const total = [...movedShares(diff).values()].reduce((a, b) => a + b, 0);
  t.ok(Math.abs(total - before.shares().get('s2')!) < 1e-9);
});

t.test('same ring: nothing moves', async (t) => {
  const r = HashRing.build(ids(3), 64);
  t.same(ringDiff(r, HashRing.build(ids(3), 64)), []);
});

t.test('property: a position is in a moving range exactly when its owner differs, with those owners', async () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 40 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 3 }),
      fc.array(u64, { minLength: 50, maxLength: 50 }),
      (n, vnodes, add, weight, positions) => {
        const before = HashRing.build(ids(n), vnodes);
        if (!add && n === 1) return;
        const after = add ? before.withShard({ id: `new${n}`, weight }) : before.withoutShard(`s${n - 1}`);
        const diff = ringDiff(before, after);
        // Sorted, disjoint, non-empty ranges.
        for (let i = 0; i < diff.length; i++) {
          if (diff[i]!.start > diff[i]!.end) throw new Error('empty range');
          if (i > 0 && diff[i - 1]!.end >= diff[i]!.start) throw new Error('overlap');
        }
        // Check the boundaries of every range too, where an off-by-one would hide.
        const probes = [...positions, 0n, (1n << 64n) - 1n, ...diff.flatMap((r) => [r.start, r.end, r.start - 1n, r.end + 1n].filter((x) => x >= 0n && x < 1n << 64n))];
        for (const h of probes) {
          const a = before.shardForHash(h);
          const b = after.shardForHash(h);
          const r = inRanges(diff, h);
          if ((a !== b) !== (r !== null)) throw new Error(`position ${h}: owners ${a}/${b} but range ${JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
          if (r && (r.from !== a || r.to !== b)) throw new Error('wrong owners in range');
          if (add && r && r.to !== `new${n}`) throw new Error('adding moved keys between old shards');
          if (!add && r && r.from !== `s${n - 1}`) throw new Error('removing moved keys of another shard');
        }
      },
    ),
    { numRuns: 150 },
  );
});
