/**
 * OFFSET and LIMIT over the merged rows: skips OFFSET rows, passes LIMIT rows, then (WITH TIES) the rows
 * equal to the last one on the ORDER BY keys, then says stop — so the shards still sending can be
 * cancelled instead of read to the end.
 */
import type { LimitPlan } from '../../sql/types.js';

export type LimitVerdict = 'skip' | 'take' | 'stop';

export class Limiter {
  private seen = 0;
  private taken = 0;

  constructor(
    private readonly plan: LimitPlan | undefined,
    /** For WITH TIES: does this row tie with the last row taken? */
    private readonly tiesWithLast: ((row: unknown) => boolean) | null = null,
  ) {}

  /** True when no row at all is wanted (LIMIT 0). */
  get empty(): boolean {
    return this.plan?.count === 0 && !this.plan.withTies;
  }

  next(row: unknown): LimitVerdict {
    const p = this.plan;
    if (p === undefined) return 'take';
    if (this.seen < p.offset) {
      this.seen++;
      return 'skip';
    }
    if (p.count === null || this.taken < p.count) {
      this.taken++;
      return 'take';
    }
    if (p.withTies && this.taken > 0 && this.tiesWithLast !== null && this.tiesWithLast(row)) {
      this.taken++;
      return 'take';
    }
    return 'stop';
  }

  /** After a take: has the limit been reached (no further row can be taken, ties aside)? */
  get full(): boolean {
    const p = this.plan;
    return p !== undefined && p.count !== null && !p.withTies && this.taken >= p.count;
  }
}
