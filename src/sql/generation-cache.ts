/**
 * A bounded cache whose hit costs one Map lookup: entries live in a young and an old generation of at
 * most half the bound each; a hit in the old one moves the entry to the young one, and when the young one
 * is full it becomes the old one (the previous old one is dropped whole). What was not used during the
 * last two generations goes first, an approximation of least-recently-used that spends nothing per hit on
 * bookkeeping (lru-cache's reordering showed in the per-statement profile of the simple protocol).
 */
export class GenerationCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;
  private readonly keepOld: boolean;

  /** At most `max` entries are kept (max 1: no old generation). */
  constructor(max: number) {
    this.half = Math.max(1, Math.floor(max / 2));
    this.keepOld = max >= 2;
  }

  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) {
      this.old.delete(key);
      this.addYoung(key, o);
    }
    return o;
  }

  set(key: K, value: V): void {
    if (this.young.has(key)) {
      this.young.set(key, value);
      return;
    }
    this.old.delete(key);
    this.addYoung(key, value);
  }

  private addYoung(key: K, value: V): void {
    if (this.young.size >= this.half) {
      this.old = this.keepOld ? this.young : new Map();
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}
