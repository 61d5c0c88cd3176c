import type { Node, SelectStmt, WindowDef } from 'libpg-query';
import { forEachCall, namesOf } from './ast.js';
import type { Scope } from './scope.js';
import { AGGREGATES } from './aggregate.js';

/**
 * Why a SELECT's rows are not simply the concatenation of what each shard returns: the executor must merge
 * (ORDER BY, LIMIT, aggregates, DISTINCT, ...) or, inside a sub-SELECT, the statement cannot run shard by
 * shard. Grouping, DISTINCT or window partitions that include a shard key are partition-wise: each group
 * lives on one shard, so those do not count.
 */


export function selectShape(stmt: SelectStmt, scope: Scope): string[] {
  const reasons: string[] = [];
  const targets = stmt.targetList ?? [];
  const isKey = (n: Node | undefined): boolean => n !== undefined && 'ColumnRef' in n && keyIn(scope, n.ColumnRef.fields);
  const groupItems = stmt.groupClause ?? [];
  const groupingSets = groupItems.some((g) => 'GroupingSet' in g);
  const groupedByKey = groupItems.length > 0 && !groupingSets && groupItems.some((g) => isKey(g) || isKey(groupTarget(g, targets)));

  const distinct = stmt.distinctClause;
  if (distinct !== undefined && distinct.length > 0 && !groupedByKey) {
    const plain = distinct.length === 1 && Object.keys(distinct[0]!).length === 0;
    const keyed = plain ? targets.some((t) => 'ResTarget' in t && (isKey(t.ResTarget.val) || isStarWithKey(t.ResTarget.val, scope))) : distinct.some(isKey);
    if (!keyed) reasons.push(plain ? 'DISTINCT' : 'DISTINCT ON');
  }
  if (groupItems.length > 0 && !groupedByKey) reasons.push('GROUP BY');
  if (!groupedByKey) {
    const aggs: string[] = [];
    forEachCall([targets, stmt.havingClause ?? null, stmt.sortClause ?? null], (f, kind) => {
      if (f === null) {
        aggs.push(kind === 'JsonArrayAgg' ? 'json_arrayagg' : 'json_objectagg');
        return;
      }
      if (f.over !== undefined) return;
      const names = namesOf(f.funcname) ?? [];
      const name = names[names.length - 1] ?? '?';
      const schemaOk = names.length === 1 || names[0] === 'pg_catalog';
      const aggregate =
        f.agg_star === true || f.agg_distinct === true || f.agg_within_group === true || f.agg_filter !== undefined || (f.agg_order?.length ?? 0) > 0 || (schemaOk && AGGREGATES.has(name));
      if (aggregate && !aggs.includes(name)) aggs.push(name);
    });
    if (aggs.length > 0) reasons.push('aggregate ' + aggs.map((a) => a + '()').join(', '));
    else if (stmt.havingClause !== undefined) reasons.push('HAVING');
  }
  const windows: string[] = [];
  forEachCall([targets, stmt.sortClause ?? null], (f) => {
    if (f === null || f.over === undefined) return;
    const partition = partitionOf(f.over, stmt.windowClause ?? []);
    if (partition.some(isKey)) return;
    const names = namesOf(f.funcname) ?? [];
    const name = names[names.length - 1] ?? '?';
    if (!windows.includes(name)) windows.push(name);
  });
  if (windows.length > 0) reasons.push('window function ' + windows.map((w) => w + '()').join(', '));
  reasons.push(...orderAndLimit(stmt));
  return reasons;
}

/** ORDER BY, LIMIT, OFFSET of a SELECT or of a set operation. */
export function orderAndLimit(stmt: SelectStmt): string[] {
  const reasons: string[] = [];
  if ((stmt.sortClause?.length ?? 0) > 0) reasons.push('ORDER BY');
  const limit = stmt.limitCount;
  if (limit !== undefined && !('A_Const' in limit && limit.A_Const.isnull === true))
    reasons.push(stmt.limitOption === 'LIMIT_OPTION_WITH_TIES' ? 'FETCH FIRST WITH TIES' : 'LIMIT');
  if (stmt.limitOffset !== undefined) reasons.push('OFFSET');
  return reasons;
}

function keyIn(scope: Scope, fields: Node[] | undefined): boolean {
  const r = scope.resolve(fields);
  return r !== null && !r.outer;
}

function isStarWithKey(n: Node | undefined, scope: Scope): boolean {
  if (n === undefined || !('ColumnRef' in n)) return false;
  const fields = n.ColumnRef.fields ?? [];
  const last = fields[fields.length - 1];
  if (last === undefined || !('A_Star' in last)) return false;
  const qual = namesOf(fields.slice(0, -1)) ?? [];
  const entries = qual.length === 0 ? scope.entries : scope.entries.filter((e) => e.name === qual[qual.length - 1]);
  return entries.some((e) => e.keys.size > 0);
}

/** A GROUP BY item: an expression, an output column position (`GROUP BY 1`) or an output column name. */
function groupTarget(g: Node, targets: Node[]): Node | undefined {
  if ('A_Const' in g && g.A_Const.ival !== undefined) {
    const t = targets[(g.A_Const.ival.ival ?? 0) - 1];
    return t !== undefined && 'ResTarget' in t ? t.ResTarget.val : undefined;
  }
  if ('ColumnRef' in g) {
    const names = namesOf(g.ColumnRef.fields);
    if (names?.length === 1) {
      for (const t of targets) if ('ResTarget' in t && t.ResTarget.name === names[0]) return t.ResTarget.val;
    }
  }
  return g;
}

function partitionOf(over: WindowDef, windowClause: Node[]): Node[] {
  if (over.partitionClause !== undefined) return over.partitionClause;
  const ref = over.refname ?? over.name;
  if (ref === undefined) return [];
  for (const w of windowClause) {
    if ('WindowDef' in w && w.WindowDef.name === ref) return partitionOf({ ...w.WindowDef, name: undefined }, windowClause);
  }
  return [];
}
