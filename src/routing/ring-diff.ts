/**
 * Which parts of the hash space change owner between two rings. Pure: the rebalance plans and reports
 * with it; the row filter asks the two rings directly, which is the same question asked key by key.
 */
import type { HashRing } from './ring.js';

/** The ring positions start…end (both inclusive) move from one shard to another. */
export interface MovingRange {
  start: bigint;
  end: bigint;
  from: string;
  to: string;
}

const MAX = (1n << 64n) - 1n;

/**
 * The ranges whose owner differs, in ring order, adjacent ranges with the same move merged. Between two
 * consecutive points of either ring, both owners are constant (each is the owner of the next point
 * clockwise), so comparing the owners at every point of the union is exact.
 */
export function ringDiff(before: HashRing, after: HashRing): MovingRange[] {
  const cuts = [...new Set([...before.points(), ...after.points()].map((p) => p.point))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: MovingRange[] = [];
  const add = (start: bigint, end: bigint, from: string, to: string) => {
    if (from === to || start > end) return;
    const last = out[out.length - 1];
    if (last && last.end + 1n === start && last.from === from && last.to === to) last.end = end;
    else out.push({ start, end, from, to });
  };
  let prev = -1n;
  for (const c of cuts) {
    add(prev + 1n, c, before.shardForHash(c), after.shardForHash(c));
    prev = c;
  }
  // Past the last point, keys wrap to the first point of each ring.
  if (prev < MAX) add(prev + 1n, MAX, before.shardForHash(MAX), after.shardForHash(MAX));
  return out;
}

/** The fraction of the hash space each move (`from→to`) covers. */
export function movedShares(ranges: readonly MovingRange[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of ranges) {
    const k = `${r.from}→${r.to}`;
    out.set(k, (out.get(k) ?? 0) + Number(r.end - r.start + 1n) / 2 ** 64);
  }
  return out;
}

/** Whether a ring position lies in one of the ranges (binary search; ranges in ring order). */
export function inRanges(ranges: readonly MovingRange[], hash: bigint): MovingRange | null {
  let a = 0;
  let b = ranges.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (ranges[m]!.end < hash) a = m + 1;
    else b = m;
  }
  const r = ranges[a];
  return r && r.start <= hash ? r : null;
}
