/**
 * Which rows move: the same canonical form and hash the router uses (canonical.ts, the ring), asked of
 * the ring that routes now and of the ring the rebalance moves to.
 */
import type { KeyType } from '../config/schema.js';
import { canonicalFromText } from '../routing/canonical.js';
import { hash64 } from '../routing/hash.js';
import type { HashRing } from '../routing/ring.js';

export class Moves {
  constructor(
    readonly before: HashRing,
    readonly after: HashRing,
  ) {}

  /** The key's owner on both rings; null for a NULL key (no row can have one in a sharded table's key). */
  owners(keyType: KeyType, key: string | null): { from: string; to: string } | null {
    if (key === null) return null;
    const h = hash64(canonicalFromText(keyType, key));
    return { from: this.before.shardForHash(h), to: this.after.shardForHash(h) };
  }

  /** The shard a row of `source` moves to, or null when it stays (or does not belong to `source`). */
  destination(keyType: KeyType, key: string | null, source: string): string | null {
    const o = this.owners(keyType, key);
    return o && o.from === source && o.to !== source ? o.to : null;
  }
}
