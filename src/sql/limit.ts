import type { Node, SelectStmt } from 'libpg-query';
import type { LimitPlan } from './types.js';
import { intConst, Unsupported } from './rewrite.js';

/**
 * LIMIT / OFFSET / FETCH FIRST across shards. Literal counts only (bind parameters come with the extended
 * protocol). Each shard is asked for LIMIT + OFFSET rows and no OFFSET: the first LIMIT+OFFSET rows of the
 * merged order are among them; pgshard skips OFFSET rows and stops at LIMIT (cancelling the shards still
 * sending).
 */

function literal(n: Node | undefined, what: string): number | null | undefined {
  if (n === undefined) return undefined;
  if ('A_Const' in n) {
    const c = n.A_Const;
    if (c.isnull === true) return null; // LIMIT NULL / LIMIT ALL
    if (c.ival !== undefined) return c.ival.ival ?? 0;
    if (c.fval !== undefined && /^\d+$/.test(c.fval.fval ?? '')) {
      const v = Number(c.fval.fval);
      if (Number.isSafeInteger(v)) return v;
    }
  }
  throw new Unsupported(`${what} with a value other than an integer literal is not supported across shards`);
}

/** The statement's LIMIT/OFFSET, or undefined when it has neither. Negative values are left to the shards to reject. */
export function limitOf(stmt: SelectStmt): LimitPlan | undefined {
  const count = literal(stmt.limitCount, 'LIMIT');
  const offset = literal(stmt.limitOffset, 'OFFSET');
  if (count === undefined && offset === undefined) return undefined;
  if ((count ?? 0) < 0 || (offset ?? 0) < 0) throw new Unsupported('a negative LIMIT or OFFSET'); // Postgres rejects it too
  const plan: LimitPlan = { count: count ?? null, offset: offset ?? 0 };
  if (stmt.limitOption === 'LIMIT_OPTION_WITH_TIES') plan.withTies = true;
  return plan;
}

/** Sets the shard statement's LIMIT to count + offset and drops its OFFSET. True when that changed the statement. */
export function pushDown(stmt: SelectStmt, limit: LimitPlan): boolean {
  if (limit.offset === 0) return false;
  delete stmt.limitOffset;
  if (limit.count === null) {
    delete stmt.limitCount;
    stmt.limitOption = 'LIMIT_OPTION_DEFAULT';
  } else stmt.limitCount = intConst(limit.count + limit.offset);
  return true;
}

/** Removes LIMIT/OFFSET from a shard statement (aggregates: the limit applies after merging). */
export function dropLimit(stmt: SelectStmt): void {
  delete stmt.limitCount;
  delete stmt.limitOffset;
  stmt.limitOption = 'LIMIT_OPTION_DEFAULT';
}
