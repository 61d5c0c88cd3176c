import { hash64, hash64Text } from './hash.js';

/**
 * The consistent-hash ring
 * ========================
 *
 * The ring is the 64-bit hash space [0, 2^64), read clockwise (upwards, wrapping from 2^64-1 to 0).
 *
 * - Points: a shard S with weight W owns `vnodes × W` points. Point i of S (i = 0 … vnodes×W−1) sits at
 *   `xxHash64(UTF-8 bytes of "<S.id>#<i>", seed 0)`; for shard `s1` the points are the hashes of `s1#0`,
 *   `s1#1`, …. A point's place depends only on the shard id and i, so adding or removing a shard never
 *   moves another shard's points.
 * - Ownership: a key's position is `xxHash64(canonical bytes of the key, seed 0)` (see canonical.ts); it
 *   belongs to the shard of the first point clockwise: the smallest point ≥ the position, or the smallest
 *   point of all when no point is ≥ it.
 * - Ties: if two shards' points hash to the same value, the point belongs to the shard whose id sorts first
 *   (JavaScript string order; ids are ASCII) and the other is dropped, so the ring does not depend on the
 *   order shards are listed in.
 *
 * A ring is immutable: `withShard` / `withoutShard` return a new one.
 */

export interface ShardWeight {
  readonly id: string;
  readonly weight: number;
}

export interface RingPoint {
  /** The point's position on the ring (unsigned 64-bit). */
  readonly point: bigint;
  readonly shard: string;
}

const TWO_64 = 1n << 64n;

/** Splits a hash into its high and low 32 bits without bigint arithmetic (single-threaded scratch). */
const scratch = new DataView(new ArrayBuffer(8));

export class HashRing {
  private constructor(
    /** Points per unit of weight. */
    readonly vnodes: number,
    /** The shards, in the order given to `build`. */
    readonly shards: readonly ShardWeight[],
    /** Sorted point positions, high and low 32 bits (compared as two numbers: much cheaper than bigints). */
    private readonly hi: Uint32Array,
    private readonly lo: Uint32Array,
    /** For each point, its shard's index in `shardIds`. */
    private readonly owner: Uint32Array,
    /** Shard ids, in the order given to `build`. */
    readonly shardIds: readonly string[],
  ) {}

  static build(shards: readonly ShardWeight[], vnodes: number): HashRing {
    if (!Number.isInteger(vnodes) || vnodes < 1) throw new RangeError(`vnodes must be a positive integer, got ${vnodes}`);
    if (shards.length === 0) throw new RangeError('a ring needs at least one shard');
    const seen = new Set<string>();
    let total = 0;
    for (const s of shards) {
      if (s.id === '') throw new RangeError('a shard id cannot be empty');
      if (seen.has(s.id)) throw new RangeError(`duplicate shard id "${s.id}"`);
      if (!Number.isInteger(s.weight) || s.weight < 1) throw new RangeError(`shard "${s.id}": weight must be a positive integer, got ${s.weight}`);
      seen.add(s.id);
      total += vnodes * s.weight;
    }
    const shardIds = shards.map((s) => s.id);
    // Rank of each shard by id, for breaking ties between equal points.
    const byId = shardIds.map((_, i) => i).sort((a, b) => (shardIds[a]! < shardIds[b]! ? -1 : 1));
    const rank = new Uint32Array(shards.length);
    byId.forEach((shardIndex, r) => (rank[shardIndex] = r));

    const hi = new Uint32Array(total);
    const lo = new Uint32Array(total);
    const owner = new Uint32Array(total);
    let j = 0;
    shards.forEach((s, k) => {
      const n = vnodes * s.weight;
      for (let i = 0; i < n; i++, j++) {
        scratch.setBigUint64(0, hash64Text(`${s.id}#${i}`));
        hi[j] = scratch.getUint32(0);
        lo[j] = scratch.getUint32(4);
        owner[j] = k;
      }
    });

    const order = new Uint32Array(total).map((_, i) => i);
    order.sort((a, b) => hi[a]! - hi[b]! || lo[a]! - lo[b]! || rank[owner[a]!]! - rank[owner[b]!]!);

    const sHi = new Uint32Array(total);
    const sLo = new Uint32Array(total);
    const sOwner = new Uint32Array(total);
    let m = 0;
    for (const i of order) {
      // Equal to the point kept last: that one's shard id sorts first, so it keeps the point.
      if (m > 0 && sHi[m - 1] === hi[i] && sLo[m - 1] === lo[i]) continue;
      sHi[m] = hi[i]!;
      sLo[m] = lo[i]!;
      sOwner[m] = owner[i]!;
      m++;
    }
    return new HashRing(
      vnodes,
      shards.map((s) => ({ id: s.id, weight: s.weight })),
      sHi.slice(0, m),
      sLo.slice(0, m),
      sOwner.slice(0, m),
      shardIds,
    );
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.hi.length;
  }

  /** The shard owning a key, given the key's canonical bytes. The routing hot path. */
  shardFor(canonical: Uint8Array): string {
    return this.shardIds[this.owner[this.indexFor(hash64(canonical))]!]!;
  }

  /** The shard owning a ring position. */
  shardForHash(hash: bigint): string {
    return this.shardIds[this.owner[this.indexFor(hash)]!]!;
  }

  /** The point (and its shard) owning a ring position. */
  pointFor(hash: bigint): RingPoint {
    return this.pointAt(this.indexFor(hash));
  }

  /** Every point in ring order, for the admin view. */
  points(): RingPoint[] {
    const out: RingPoint[] = new Array(this.hi.length);
    for (let i = 0; i < this.hi.length; i++) out[i] = this.pointAt(i);
    return out;
  }

  /** Each shard's fraction of the 2^64 keyspace (the fractions sum to 1). */
  shares(): Map<string, number> {
    const owned = new Map<string, bigint>(this.shardIds.map((id) => [id, 0n]));
    const n = this.hi.length;
    let prev = this.position(n - 1) - TWO_64; // the last point, one turn back: the first point's arc wraps
    for (let i = 0; i < n; i++) {
      const p = this.position(i);
      const id = this.shardIds[this.owner[i]!]!;
      owned.set(id, owned.get(id)! + (p - prev));
      prev = p;
    }
    const out = new Map<string, number>();
    for (const [id, v] of owned) out.set(id, Number(v) / 2 ** 64);
    return out;
  }

  /** A new ring with one more shard. */
  withShard(shard: ShardWeight): HashRing {
    if (this.shardIds.includes(shard.id)) throw new RangeError(`shard "${shard.id}" is already on the ring`);
    return HashRing.build([...this.shards, shard], this.vnodes);
  }

  /** A new ring without one shard. */
  withoutShard(id: string): HashRing {
    if (!this.shardIds.includes(id)) throw new RangeError(`shard "${id}" is not on the ring`);
    if (this.shardIds.length === 1) throw new RangeError(`cannot remove "${id}": it is the ring's only shard`);
    return HashRing.build(
      this.shards.filter((s) => s.id !== id),
      this.vnodes,
    );
  }

  /** Index of the first point ≥ hash, wrapping to 0. */
  private indexFor(hash: bigint): number {
    scratch.setBigUint64(0, hash);
    const h = scratch.getUint32(0);
    const l = scratch.getUint32(4);
    const hi = this.hi;
    const lo = this.lo;
    let a = 0;
    let b = hi.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      const x = hi[m]!;
      if (x < h || (x === h && lo[m]! < l)) a = m + 1;
      else b = m;
    }
    return a === hi.length ? 0 : a;
  }

  private position(i: number): bigint {
    return (BigInt(this.hi[i]!) << 32n) | BigInt(this.lo[i]!);
  }

  private pointAt(i: number): RingPoint {
    return { point: this.position(i), shard: this.shardIds[this.owner[i]!]! };
  }
}
