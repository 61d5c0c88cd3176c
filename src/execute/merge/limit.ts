/**
 * OFFSET and LIMIT over the merged rows: skips OFFSET rows, passes LIMIT rows, then (WITH TIES) the rows
 * equal to the last one on the ORDER BY keys, then says stop — so the shards still sending can be
 * cancelled instead of read to the end.
 */
import { PgError, SqlState } from '../../protocol/errors.js';
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

/** The values of a Bind, with the parameter types the statement was prepared with (0: unspecified). */
export interface LimitParams {
  values: readonly (Buffer | null)[];
  formats: readonly (0 | 1)[];
  types: readonly number[];
}

const INT_PARAM_BYTES: Record<number, number> = { 0: 8, 20: 8, 23: 4, 21: 2 };

/**
 * A LIMIT/OFFSET bind parameter's value as Postgres computes it for `LIMIT $n` (bigint; NULL is null),
 * or an error as Postgres gives it. Types other than the integers are refused: their conversion to
 * bigint (rounding numeric, float) is not reproduced here.
 */
function paramValue(params: LimitParams | null, n: number): bigint | null {
  if (params === null || n > params.values.length) throw new PgError(SqlState.UndefinedParameter, `there is no parameter $${n}`);
  const type = params.types[n - 1] ?? 0;
  const bytes = INT_PARAM_BYTES[type];
  if (bytes === undefined) throw new PgError(SqlState.FeatureNotSupported, `a LIMIT or OFFSET parameter of type OID ${type} is not supported across shards`, { hint: 'Send it as an integer (int2, int4, int8) or with an unspecified type.' });
  const v = params.values[n - 1] ?? null;
  if (v === null) return null;
  if (params.formats[n - 1] === 1) {
    if (v.length !== bytes) throw new PgError(SqlState.InvalidBinaryRepresentation, 'incorrect binary data format in bind parameter ' + n);
    return bytes === 8 ? v.readBigInt64BE(0) : bytes === 4 ? BigInt(v.readInt32BE(0)) : BigInt(v.readInt16BE(0));
  }
  const s = v.toString('utf8');
  const m = /^\s*([+-]?\d+)\s*$/.exec(s);
  const typeName = bytes === 8 ? 'bigint' : bytes === 4 ? 'integer' : 'smallint';
  if (m === null) throw new PgError(SqlState.InvalidTextRepresentation, `invalid input syntax for type ${typeName}: "${s}"`);
  const x = BigInt(m[1]!);
  if (x >= 1n << BigInt(bytes * 8 - 1) || x < -(1n << BigInt(bytes * 8 - 1))) throw new PgError(SqlState.NumericValueOutOfRange, `value "${s}" is out of range for type ${typeName}`);
  return x;
}

/** Counts past 2^53 are as good as no limit for a merge that counts rows in a JavaScript number. */
const toCount = (x: bigint): number => (x > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(x));

/**
 * A LIMIT plan with its bind parameters replaced by the Bind's values; Postgres's errors for negative
 * values (OFFSET is checked first, as the executor does). Plans without parameters come back as they are.
 */
export function bindLimit(plan: LimitPlan | undefined, params: LimitParams | null): LimitPlan | undefined {
  if (plan === undefined || (plan.countParam === undefined && plan.offsetParam === undefined)) return plan;
  const out: LimitPlan = { count: plan.count, offset: plan.offset };
  if (plan.withTies) out.withTies = true;
  // Parameter values are converted at Bind, before the executor checks signs (OFFSET first).
  const o = plan.offsetParam !== undefined ? paramValue(params, plan.offsetParam) : undefined;
  const c = plan.countParam !== undefined ? paramValue(params, plan.countParam) : undefined;
  if (o !== undefined) {
    if (o !== null && o < 0n) throw new PgError(SqlState.InvalidRowCountInResultOffsetClause, 'OFFSET must not be negative');
    out.offset = o === null ? 0 : toCount(o);
  }
  if (c !== undefined) {
    if (c !== null && c < 0n) throw new PgError(SqlState.InvalidRowCountInLimitClause, 'LIMIT must not be negative');
    if (c === null && plan.withTies) throw new PgError(SqlState.InvalidRowCountInLimitClause, 'row count cannot be null in FETCH FIRST ... WITH TIES clause');
    out.count = c === null ? null : toCount(c);
  }
  return out;
}
