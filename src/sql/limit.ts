import type { Node, SelectStmt } from 'libpg-query';
import type { LimitPlan } from './types.js';
import { intConst, parseExpr, Unsupported } from './rewrite.js';

/**
 * LIMIT / OFFSET / FETCH FIRST across shards: integer literals or bind parameters ($n, as drivers and
 * query builders send them; their values are read from the Bind at execution, see
 * src/execute/merge/limit.ts). Each shard is asked for LIMIT + OFFSET rows and no OFFSET: the first
 * LIMIT+OFFSET rows of the merged order are among them; pgshard skips OFFSET rows and stops at LIMIT
 * (cancelling the shards still sending).
 */

/** A LIMIT/OFFSET value: a literal, null (LIMIT ALL / NULL), a parameter number, or undefined (absent). */
type LimitValue = number | null | { param: number } | undefined;

function literal(n: Node | undefined, what: string): LimitValue {
  if (n === undefined) return undefined;
  if ('ParamRef' in n && (n.ParamRef.number ?? 0) > 0) return { param: n.ParamRef.number! };
  if ('A_Const' in n) {
    const c = n.A_Const;
    if (c.isnull === true) return null; // LIMIT NULL / LIMIT ALL
    if (c.ival !== undefined) return c.ival.ival ?? 0;
    if (c.fval !== undefined && /^\d+$/.test(c.fval.fval ?? '')) {
      const v = Number(c.fval.fval);
      if (Number.isSafeInteger(v)) return v;
    }
  }
  throw new Unsupported(`${what} with a value other than an integer literal or a bind parameter is not supported across shards`);
}

/** The statement's LIMIT/OFFSET, or undefined when it has neither. Negative values are left to the shards to reject. */
export function limitOf(stmt: SelectStmt): LimitPlan | undefined {
  const count = literal(stmt.limitCount, 'LIMIT');
  const offset = literal(stmt.limitOffset, 'OFFSET');
  if (count === undefined && offset === undefined) return undefined;
  if ((typeof count === 'number' && count < 0) || (typeof offset === 'number' && offset < 0)) throw new Unsupported('a negative LIMIT or OFFSET'); // Postgres rejects it too
  const plan: LimitPlan = { count: typeof count === 'object' && count !== null ? null : (count ?? null), offset: typeof offset === 'number' ? offset : 0 };
  if (typeof count === 'object' && count !== null) plan.countParam = count.param;
  if (typeof offset === 'object' && offset !== null) plan.offsetParam = offset.param;
  if (stmt.limitOption === 'LIMIT_OPTION_WITH_TIES') plan.withTies = true;
  return plan;
}

/**
 * Sets the shard statement's LIMIT to count + offset and drops its OFFSET. True when that changed the
 * statement. Parameters become `$n::int8` terms of the sum (int8 is the type Postgres gives a LIMIT
 * parameter; a NULL makes the sum NULL, i.e. no limit on the shard, which is still exact); an OFFSET
 * parameter without a LIMIT stays referenced as `OFFSET $n::int8 * 0`, since the shards are bound with
 * every parameter of the client's Bind.
 */
export function pushDown(stmt: SelectStmt, limit: LimitPlan): boolean {
  if (limit.offsetParam !== undefined) {
    delete stmt.limitOffset;
    if (limit.count === null && limit.countParam === undefined) {
      delete stmt.limitCount;
      stmt.limitOption = 'LIMIT_OPTION_COUNT'; // what the parser gives any statement with an OFFSET
      stmt.limitOffset = parseExpr(`$${limit.offsetParam}::int8 * 0`);
    } else {
      const c = limit.countParam !== undefined ? `$${limit.countParam}::int8` : String(limit.count);
      stmt.limitCount = parseExpr(`${c} + $${limit.offsetParam}::int8`);
    }
    return true;
  }
  if (limit.offset === 0) return false;
  delete stmt.limitOffset;
  if (limit.countParam !== undefined) {
    stmt.limitCount = parseExpr(`$${limit.countParam}::int8 + ${limit.offset}`);
    return true;
  }
  if (limit.count === null) {
    delete stmt.limitCount;
    stmt.limitOption = 'LIMIT_OPTION_DEFAULT';
  } else stmt.limitCount = intConst(limit.count + limit.offset);
  return true;
}

/**
 * Removes LIMIT/OFFSET from a shard statement (aggregates: the limit applies after merging). Bind
 * parameters stay referenced (`OFFSET ($1::int8 + $2::int8) * 0`, i.e. no offset) so the shard's
 * statement takes the same parameters as the client's.
 */
export function dropLimit(stmt: SelectStmt, limit?: LimitPlan): void {
  delete stmt.limitCount;
  delete stmt.limitOffset;
  stmt.limitOption = 'LIMIT_OPTION_DEFAULT';
  const params = [limit?.countParam, limit?.offsetParam].filter((p): p is number => p !== undefined);
  if (params.length > 0) {
    stmt.limitOffset = parseExpr(`(${params.map((p) => `$${p}::int8`).join(' + ')}) * 0`);
    stmt.limitOption = 'LIMIT_OPTION_COUNT';
  }
}
