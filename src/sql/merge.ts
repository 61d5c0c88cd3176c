import type { FuncCall, Node, SelectStmt } from 'libpg-query';
import { namesOf } from './ast.js';
import type { CrossShardPlan, MergeAggregate, MergePlan, RowMergePlan, SortKey } from './types.js';
import { hasAggregate, hasWindow, planGroups } from './aggregate.js';
import { distinctKind, planDistinct } from './distinct.js';
import { limitOf, pushDown } from './limit.js';
import { Outputs, sortItem } from './order-by.js';
import { clone, deparseChecked, sameTree, target, Unsupported } from './rewrite.js';

/**
 * How a SELECT that reaches several shards is answered exactly: what each shard runs and how pgshard
 * merges what they return (the plan is data, shown in test/plans/*.json). Called for SELECTs whose rows
 * are not simply the concatenation of the shards' rows (ORDER BY, LIMIT, aggregates, GROUP BY, DISTINCT,
 * UNION); a statement pgshard cannot answer exactly gets `refuse` with the reason.
 *
 * - rows (src/sql/order-by.ts, distinct.ts, limit.ts): a k-way merge of the shards' sorted rows,
 *   duplicate removal, LIMIT/OFFSET; memory bounded by the number of shards.
 * - groups (src/sql/aggregate.ts): partial aggregates merged by group key, finished in pgshard.
 */
export function simpleAggregateMerge(stmt: SelectStmt): MergePlan | null {
  const legacy = oneRowMerge(stmt);
  if (legacy) return legacy;
  try {
    return { aggregates: [], rewrite: crossShardPlan(stmt) };
  } catch (e) {
    if (e instanceof Unsupported) return { aggregates: [], refuse: e.hint !== undefined ? { message: e.message, hint: e.hint } : { message: e.message } };
    throw e;
  }
}

export function crossShardPlan(stmt: SelectStmt): CrossShardPlan {
  if (stmt.intoClause !== undefined || (stmt.lockingClause?.length ?? 0) > 0) throw new Unsupported('SELECT INTO or FOR UPDATE across shards is not supported');
  if (stmt.op !== undefined && stmt.op !== 'SETOP_NONE') return planSetOperation(stmt);
  if (stmt.valuesLists !== undefined) throw new Unsupported('VALUES with ORDER BY or LIMIT across shards is not supported');
  if (hasWindow([stmt.targetList, stmt.sortClause])) throw new Unsupported('window functions across shards are not supported', 'Partition the window by the shard key and add a shard key condition, or route the statement to one shard.');
  const aggregated = (stmt.groupClause?.length ?? 0) > 0 || stmt.havingClause !== undefined || hasAggregate([stmt.targetList, stmt.sortClause]);
  if (aggregated) {
    const p = planGroups(stmt);
    const { shardStatement, ...plan } = p;
    if (!sameTree(shardStatement, stmt)) plan.sql = deparseChecked(shardStatement);
    return plan;
  }
  return planRows(stmt);
}

/** Hidden columns are numbered from the row's end (-1 is the last, since a `*` hides how many client columns come first); while planning, a placeholder. */
const HIDDEN = -1_000_000;

/** ORDER BY / LIMIT / DISTINCT over plain rows. */
function planRows(stmt: SelectStmt): CrossShardPlan {
  const targets = (stmt.targetList ?? []).map((t) => {
    if (!('ResTarget' in t)) throw new Unsupported('this select list is not supported across shards');
    return t.ResTarget;
  });
  const outputs = new Outputs(targets);
  const shard = clone(stmt);
  const hidden: Node[] = [];
  const addHidden = (node: Node): number => {
    let i = hidden.findIndex((h) => sameTree(h, node));
    if (i < 0) {
      hidden.push(clone(node));
      i = hidden.length - 1;
    }
    return HIDDEN - i;
  };

  const order: SortKey[] = (stmt.sortClause ?? []).map((s) => {
    if (!('SortBy' in s)) throw new Unsupported('this ORDER BY is not supported across shards');
    const it = sortItem(s.SortBy, outputs);
    const r = it.resolved;
    const known = r.kind === 'position' ? r.index : r.kind === 'target' ? outputs.columnOf(r.index) : undefined;
    const column = known ?? addHidden(r.kind === 'expr' ? r.node : targets[r.index]!.val!);
    const key: SortKey = { column, desc: it.desc, nullsFirst: it.nullsFirst };
    if (it.byteOrder) key.byteOrder = true;
    return key;
  });

  const plan: RowMergePlan = { order };
  if (distinctKind(stmt) !== 'none') {
    const { distinct, extraOrder } = planDistinct(stmt, shard, outputs, order, hidden.length > 0, addHidden);
    plan.order = [...order, ...extraOrder];
    plan.distinct = distinct;
  }
  const fix = (c: number): number => (c <= HIDDEN ? -(hidden.length - (HIDDEN - c)) : c);
  for (const k of plan.order) k.column = fix(k.column);
  if (plan.distinct?.columns) plan.distinct.columns = plan.distinct.columns.map(fix);

  let changed = hidden.length > 0 || plan.order.length > order.length;
  const limit = limitOf(stmt);
  if (limit !== undefined) {
    if (limit.withTies && order.length === 0) throw new Unsupported('WITH TIES cannot be specified without ORDER BY clause');
    plan.limit = limit;
    if (pushDown(shard, limit)) changed = true;
  }
  if (limit?.withTies && changed)
    throw new Unsupported('FETCH FIRST … WITH TIES across shards needs no OFFSET and every sort key in the select list', 'pgshard cannot rewrite WITH TIES for the shards (its SQL writer would drop it).');
  if (hidden.length > 0) shard.targetList = [...(shard.targetList ?? []), ...hidden.map((h, i) => target(h, `pgshard_${i + 1}`))];
  const out: CrossShardPlan = { hidden: hidden.length, rows: plan };
  if (changed) out.sql = deparseChecked(shard);
  return out;
}

/** UNION [ALL] of branches that each run shard by shard (analysis checked that): ORDER BY output columns, LIMIT, UNION's duplicate removal. */
function planSetOperation(stmt: SelectStmt): CrossShardPlan {
  if (stmt.op !== 'SETOP_UNION') throw new Unsupported(`${stmt.op === 'SETOP_INTERSECT' ? 'INTERSECT' : 'EXCEPT'} with ORDER BY or LIMIT across shards is not supported`);
  let leftmost: SelectStmt = stmt;
  while (leftmost.op !== undefined && leftmost.op !== 'SETOP_NONE') leftmost = leftmost.larg ?? {};
  const targets = (leftmost.targetList ?? []).flatMap((t) => ('ResTarget' in t ? [t.ResTarget] : []));
  const outputs = new Outputs(targets);
  const order: SortKey[] = (stmt.sortClause ?? []).map((s) => {
    if (!('SortBy' in s)) throw new Unsupported('this ORDER BY is not supported across shards');
    const it = sortItem(s.SortBy, outputs);
    const r = it.resolved;
    const column = r.kind === 'position' ? r.index : r.kind === 'target' ? outputs.columnOf(r.index) : undefined;
    if (column === undefined) throw new Unsupported('ORDER BY on a UNION result must name a result column across shards');
    const key: SortKey = { column, desc: it.desc, nullsFirst: it.nullsFirst };
    if (it.byteOrder) key.byteOrder = true;
    return key;
  });
  const plan: RowMergePlan = { order };
  if (stmt.all !== true) plan.distinct = { columns: null, adjacent: false };
  const shard = clone(stmt);
  const limit = limitOf(stmt);
  let changed = false;
  if (limit !== undefined) {
    plan.limit = limit;
    changed = pushDown(shard, limit);
  }
  const out: CrossShardPlan = { hidden: 0, rows: plan };
  if (changed) out.sql = deparseChecked(shard);
  return out;
}

/**
 * The original one-row merge: every output is count/sum/min/max of a plain argument, nothing else
 * (no GROUP BY, HAVING, DISTINCT, window, LIMIT or set operation); the shards run the statement as it is.
 */
function oneRowMerge(stmt: SelectStmt): MergePlan | null {
  if (stmt.groupClause?.length || stmt.havingClause || stmt.distinctClause || stmt.windowClause?.length) return null;
  if (stmt.limitCount || stmt.limitOffset || (stmt.op !== undefined && stmt.op !== 'SETOP_NONE') || stmt.valuesLists) return null;
  if (stmt.intoClause || stmt.lockingClause?.length || stmt.sortClause?.length) return null;
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
  const f: FuncCall = n.FuncCall;
  if (f.over || f.agg_distinct || f.agg_filter || f.agg_within_group || f.agg_order?.length || f.func_variadic) return null;
  const names = namesOf(f.funcname) ?? [];
  if (names.length === 2 && names[0] !== 'pg_catalog') return null;
  const name = names[names.length - 1];
  if (f.agg_star) return name === 'count' ? 'count' : null;
  if ((f.args?.length ?? 0) !== 1) return null;
  if ('CollateClause' in f.args![0]!) return null; // min/max(x COLLATE "C"): the general plan carries the collation
  return name === 'count' || name === 'sum' || name === 'min' || name === 'max' ? name : null;
}
