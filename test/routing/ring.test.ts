import t from 'tap';
import fc from 'fast-check';
import { initHash, hash64, hash64Text } from '../../src/routing/hash.js';
import { HashRing, type ShardWeight } from '../../src/routing/ring.js';
import { canonicalFromText } from '../../src/routing/canonical.js';
import type { KeyType } from '../../src/config/schema.js';

await initHash();
await initHash(); // idempotent

const three: ShardWeight[] = [
  { id: 's1', weight: 1 },
  { id: 's2', weight: 1 },
  { id: 's3', weight: 1 },
];

/** Deterministic pseudo-random bigint keys (xorshift64*), as canonical bytes. */
function keys(count: number, seed: number): Uint8Array[] {
  let x = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n;
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    x ^= x >> 12n;
    x ^= (x << 25n) & 0xffffffffffffffffn;
    x ^= x >> 27n;
    out.push(canonicalFromText('bigint', BigInt.asIntN(64, x * 0x2545f4914f6cdd1dn).toString()));
  }
  return out;
}

function counts(ring: HashRing, ks: Uint8Array[]): Map<string, number> {
  const m = new Map<string, number>(ring.shardIds.map((id) => [id, 0]));
  for (const k of ks) {
    const s = ring.shardFor(k);
    m.set(s, m.get(s)! + 1);
  }
  return m;
}

t.test('xxHash64, seed 0', async (t) => {
  t.equal(hash64(new Uint8Array()), 0xef46db3751d8e999n, 'empty input (reference vector)');
  t.equal(hash64Text('a'), 0xd24ec4f1a98c6e5bn, '"a" (reference vector)');
  t.ok(hash64Text('s1#0') >= 0n, 'unsigned');
});

t.test('the point formula: point i of shard S is xxHash64("S#i")', async (t) => {
  t.equal(hash64Text('s1#0'), 0xa960ea41da029655n);
  t.equal(hash64Text('s1#1'), 0xe146591f75fdc4can);
  t.equal(hash64Text('s2#0'), 0xf80fce9db12282bfn);
  const ring = HashRing.build([{ id: 's1', weight: 2 }], 3);
  const want = [...Array(6).keys()].map((i) => hash64Text(`s1#${i}`)).sort((a, b) => (a < b ? -1 : 1));
  t.same(ring.points().map((p) => p.point), want, 'vnodes × weight points, sorted');
  t.equal(ring.size, 6);
});

t.test('regression table: fixed owners (fails if the point or key formula changes)', async (t) => {
  const ring = HashRing.build(three, 256);
  const table: [KeyType, string, string][] = [
    ['bigint', '0', 's2'],
    ['bigint', '1', 's1'],
    ['bigint', '42', 's3'],
    ['bigint', '-1', 's2'],
    ['bigint', '9223372036854775807', 's2'],
    ['bigint', '-9223372036854775808', 's2'],
    ['bigint', '1000000', 's1'],
    ['bigint', '123456789', 's1'],
    ['text', 'alice', 's1'],
    ['text', 'bob', 's1'],
    ['text', '', 's2'],
    ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 's2'],
    ['uuid', '00000000-0000-0000-0000-000000000000', 's1'],
  ];
  for (const [type, key, owner] of table) t.equal(ring.shardFor(canonicalFromText(type, key)), owner, `${type} ${key}`);
  const pts = ring.points();
  t.same(pts[0], { point: 45611409817135312n, shard: 's2' }, 'first point');
  t.same(pts.at(-1), { point: 18430035012957202042n, shard: 's2' }, 'last point');
});

t.test('lookup is the first point clockwise, wrapping', async (t) => {
  const ring = HashRing.build(three, 16);
  const pts = ring.points();
  const brute = (h: bigint): string => (pts.find((p) => p.point >= h) ?? pts[0]!).shard;
  t.equal(keys(5000, 7).filter((k) => ring.shardFor(k) !== brute(hash64(k))).length, 0, 'binary search = linear scan');
  t.equal(pts.filter((p) => ring.shardForHash(p.point) !== p.shard).length, 0, 'a point owns its own position');
  t.same(ring.pointFor(pts.at(-1)!.point + 1n), pts[0], 'past the last point wraps to the first');
  t.same(ring.pointFor(0n), pts[0]);
  t.same(ring.pointFor(0xffffffffffffffffn), pts.at(-1)!.point === 0xffffffffffffffffn ? pts.at(-1) : pts[0]);
});

t.test('deterministic: same input, same ring, whatever the shard order', async (t) => {
  const a = HashRing.build(three, 64);
  const b = HashRing.build([...three].reverse(), 64);
  t.same(a.points(), b.points());
  t.equal(keys(1000, 3).filter((k) => a.shardFor(k) !== b.shardFor(k)).length, 0);
});

t.test('balance: 3 shards × 256 vnodes, 100k keys', async (t) => {
  const ring = HashRing.build(three, 256);
  const ks = keys(100_000, 1);
  for (const [id, n] of counts(ring, ks)) t.ok(Math.abs(n / ks.length - 1 / 3) <= 1 / 30, `${id}: ${(n / ks.length).toFixed(4)}`);
  const shares = ring.shares();
  t.equal([...shares.values()].reduce((a, b) => a + b, 0), 1, 'shares sum to 1');
  for (const [id, s] of shares) t.ok(Math.abs(s - 1 / 3) <= 1 / 30, `share ${id}: ${s.toFixed(4)}`);

  const weighted = HashRing.build([{ id: 's1', weight: 1 }, { id: 's2', weight: 2 }, { id: 's3', weight: 1 }], 256);
  const c = counts(weighted, ks);
  const expected = new Map([['s1', 0.25], ['s2', 0.5], ['s3', 0.25]]);
  for (const [id, n] of c) {
    const share = n / ks.length;
    t.ok(Math.abs(share / expected.get(id)! - 1) <= 0.1, `weighted ${id}: ${share.toFixed(4)} of the keys, expected ${expected.get(id)}`);
  }
  t.equal(weighted.size, 1024);
});

t.test('build checks its input', async (t) => {
  t.throws(() => HashRing.build([{ id: 'x', weight: 1 }, { id: 'x', weight: 1 }], 4), /duplicate shard id/);
  t.throws(() => HashRing.build([], 4), /at least one shard/);
  t.throws(() => HashRing.build(three, 0), /vnodes/);
  t.throws(() => HashRing.build([{ id: 's', weight: 0 }], 4), /weight/);
});

const shardId = fc.stringMatching(/^[a-z0-9_-]{1,10}$/);

t.test('property: adding a shard moves keys only to it, about 1/(n+1) of them', async (t) => {
  const sample = keys(10_000, 42);
  fc.assert(
    fc.property(
      fc.uniqueArray(shardId, { minLength: 2, maxLength: 9 }),
      ([added, ...ids]) => {
        const before = HashRing.build(ids.map((id) => ({ id, weight: 1 })), 256);
        const after = before.withShard({ id: added!, weight: 1 });
        let moved = 0;
        for (const k of sample) {
          const was = before.shardFor(k);
          const now = after.shardFor(k);
          if (was !== now) {
            if (now !== added) return false; // moved between old shards
            moved++;
          }
        }
        return Math.abs(moved / sample.length - 1 / (ids.length + 1)) <= 0.05;
      },
    ),
    // At 256 vnodes a new shard's share is off 1/(n+1) by more than 5 points for roughly 1 id set in 200:
    // a fixed seed keeps this test deterministic (change it knowingly).
    { numRuns: 40, seed: 20240611 },
  );
  t.pass('held');
});

t.test('property: removing a shard moves only its keys', async (t) => {
  const sample = keys(10_000, 43);
  fc.assert(
    fc.property(fc.uniqueArray(shardId, { minLength: 2, maxLength: 9 }), fc.nat(), (ids, pick) => {
      const before = HashRing.build(ids.map((id, i) => ({ id, weight: 1 + (i % 2) })), 256);
      const removed = ids[pick % ids.length]!;
      const after = before.withoutShard(removed);
      for (const k of sample) {
        const was = before.shardFor(k);
        const now = after.shardFor(k);
        if (now === removed) return false;
        if (was !== removed && now !== was) return false;
      }
      return true;
    }),
    { numRuns: 40 },
  );
  t.pass('held');
});

t.test('withShard / withoutShard are immutable and checked', async (t) => {
  const ring = HashRing.build(three, 32);
  const bigger = ring.withShard({ id: 's4', weight: 1 });
  t.same(ring.shardIds, ['s1', 's2', 's3']);
  t.same(bigger.shardIds, ['s1', 's2', 's3', 's4']);
  t.same(bigger.withoutShard('s4').points(), ring.points(), 'remove undoes add');
  t.throws(() => ring.withShard({ id: 's1', weight: 1 }), /already on the ring/);
  t.throws(() => ring.withoutShard('nope'), /not on the ring/);
  t.throws(() => HashRing.build([{ id: 'only', weight: 1 }], 4).withoutShard('only'), /only shard/);
});
