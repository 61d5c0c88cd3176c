import { PgError, SqlState } from '../protocol/errors.js';

/**
 * RETURNING rows of a multi-row INSERT split over shards, put back in VALUES order. Each shard inserts
 * its rows in their VALUES order and returns one row per inserted row, in that order; so the i-th VALUES
 * row's RETURNING row is the next row of shard rowShards[i]. When a shard returns a different number of
 * rows than it was given (ON CONFLICT DO NOTHING skipped one, a BEFORE trigger returned NULL), which row
 * is missing cannot be known, and the order cannot be given exactly: that is an error, not a guess.
 *
 * Rows are held until the statement completes: as many as the statement has VALUES rows.
 */
export class ReturningOrder {
  private readonly rows = new Map<string, Buffer[]>();

  /** `rowShards`: the shard of each VALUES row, in order. */
  constructor(private readonly rowShards: readonly string[]) {}

  /** A DataRow (its bytes, owned by the caller's copy) returned by `shard`. */
  add(shard: string, row: Buffer): void {
    const list = this.rows.get(shard);
    if (list) list.push(row);
    else this.rows.set(shard, [row]);
  }

  /** The rows in VALUES order, or the error to give instead. Nothing returned at all (no RETURNING) is no rows. */
  ordered(): Buffer[] | PgError {
    let total = 0;
    for (const list of this.rows.values()) total += list.length;
    if (total === 0) return [];
    const sent = new Map<string, number>();
    for (const s of this.rowShards) sent.set(s, (sent.get(s) ?? 0) + 1);
    for (const [shard, n] of sent) {
      const got = this.rows.get(shard)?.length ?? 0;
      if (got !== n)
        return new PgError(
          SqlState.FeatureNotSupported,
          `the RETURNING rows of this INSERT cannot be given in VALUES order: shard "${shard}" returned ${got} rows for ${n} VALUES rows (ON CONFLICT DO NOTHING or a trigger skipped some)`,
          { hint: 'Send the rows of each shard in an INSERT of their own, or leave out RETURNING.' },
        );
    }
    for (const s of this.rows.keys()) if (!sent.has(s)) return new PgError(SqlState.InternalError, `RETURNING rows from shard "${s}", which was given no row`);
    const next = new Map<string, number>();
    return this.rowShards.map((s) => {
      const i = next.get(s) ?? 0;
      next.set(s, i + 1);
      return this.rows.get(s)![i]!;
    });
  }
}
