import type { Node, SelectStmt } from 'libpg-query';
import { namesOf } from './ast.js';
import type { MergePlan, MergeAggregate } from './types.js';

/**
 * Aggregates whose per-shard results combine exactly into the one-Postgres answer without extra columns:
 * a SELECT whose every output is count(*)/count(x)/sum/min/max of plain arguments, with no GROUP BY,
 * HAVING, DISTINCT, window, LIMIT/OFFSET or set operation. Anything else is not merged (yet).
 */
export function simpleAggregateMerge(stmt: SelectStmt): MergePlan | null {
  if (stmt.groupClause?.length || stmt.havingClause || stmt.distinctClause || stmt.windowClause?.length) return null;
  if (stmt.limitCount || stmt.limitOffset || stmt.op !== undefined && stmt.op !== 'SETOP_NONE' || stmt.valuesLists) return null;
  if (stmt.intoClause || stmt.lockingClause?.length) return null;
  const targets = stmt.targetList ?? [];
  if (targets.length === 0) return null;
  const aggregates: MergeAggregate[] = [];
  for (const t of targets) {
    if (!('ResTarget' in t)) return null;
    const a = aggregateOf(t.ResTarget.val);
    if (!a) return null;
    aggregates.push(a);
  }
  return { aggregates };
}

function aggregateOf(n: Node | undefined): MergeAggregate | null {
  if (!n || !('FuncCall' in n)) return null;
  const f = n.FuncCall;
  if (f.over || f.agg_distinct || f.agg_filter || f.agg_within_group || f.agg_order?.length || f.func_variadic) return null;
  const names = namesOf(f.funcname) ?? [];
  if (names.length === 2 && names[0] !== 'pg_catalog') return null;
  const name = names[names.length - 1];
  if (f.agg_star) return name === 'count' ? 'count' : null;
  if ((f.args?.length ?? 0) !== 1) return null;
  return name === 'count' || name === 'sum' || name === 'min' || name === 'max' ? name : null;
}
