import type { FuncCall, Node, ResTarget, SelectStmt, SortBy } from 'libpg-query';
import { namesOf, operatorName } from './ast.js';
import { dropLimit, limitOf } from './limit.js';
import { collationOf, Outputs, resolveItem } from './order-by.js';
import { outputName } from './rewrite-names.js';
import { clone, parseExpr, sameTree, target, Unsupported, walk } from './rewrite.js';
import type { AggregateKey, AggregatePlan, CrossShardPlan, FinalExpr, GroupMergePlan } from './types.js';

/**
 * Aggregates across shards. Each shard runs the statement grouped as the client wrote it, but returns
 * partial results instead of final ones: sum and count for avg, count/sum/sum of squares for the
 * variance family, sorted arrays for string_agg/array_agg, the distinct values for count(DISTINCT x).
 * pgshard merges the partial rows by group key, finishes every aggregate with Postgres's own rules
 * (src/execute/merge/aggregate.ts), then evaluates expressions over them, HAVING, DISTINCT, ORDER BY and
 * LIMIT itself. Client columns that contain aggregates are sent as `CASE WHEN false THEN expr END AS name`
 * (see typingTarget): the shard names and types the column as Postgres would, without computing it.
 * avg and the variance family sum `x::numeric` (a float argument must not overflow on a shard before
 * pgshard can refuse it) next to `CASE WHEN false THEN min(x) END`, a column typed like x that costs nothing.
 */

/** Built-in aggregates (user-defined ones cannot be told from plain functions by syntax). */
export const AGGREGATES = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'bit_xor',
  'json_agg', 'jsonb_agg', 'json_agg_strict', 'jsonb_agg_strict', 'json_object_agg', 'jsonb_object_agg', 'json_object_agg_strict',
  'jsonb_object_agg_strict', 'json_object_agg_unique', 'jsonb_object_agg_unique', 'json_object_agg_unique_strict',
  'jsonb_object_agg_unique_strict', 'xmlagg', 'stddev', 'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp', 'corr',
  'covar_pop', 'covar_samp', 'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx',
  'regr_sxy', 'regr_syy', 'mode', 'percentile_cont', 'percentile_disc', 'range_agg', 'range_intersect_agg', 'any_value',
]);

function funcName(f: FuncCall): string | undefined {
  const names = namesOf(f.funcname);
  if (names === undefined || names.length === 0) return undefined;
  if (names.length === 2 && names[0] !== 'pg_catalog') return undefined;
  return names[names.length - 1];
}

export function isAggregateCall(f: FuncCall): boolean {
  if (f.over !== undefined) return false;
  if (f.agg_star === true || f.agg_distinct === true || f.agg_within_group === true || f.agg_filter !== undefined || (f.agg_order?.length ?? 0) > 0) return true;
  const n = funcName(f);
  return n !== undefined && AGGREGATES.has(n);
}

/** True when an expression contains an aggregate of this query level (not inside a sub-SELECT). */
export function hasAggregate(node: unknown): boolean {
  let found = false;
  walk(node, (n) => {
    if ('FuncCall' in n && isAggregateCall(n.FuncCall)) found = true;
    if ('JsonArrayAgg' in n || 'JsonObjectAgg' in n) found = true;
  });
  return found;
}

export function hasWindow(node: unknown): boolean {
  let found = false;
  walk(node, (n) => {
    if ('FuncCall' in n && n.FuncCall.over !== undefined) found = true;
  });
  return found;
}

/** An expression built from SQL text with placeholders `__a`, `__b` replaced by nodes (so its shape is the parser's own). */
function template(sql: string, parts: Record<string, Node>): Node {
  const replace = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(replace);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    if ('ColumnRef' in o) {
      const names = namesOf((o as { ColumnRef: { fields?: Node[] } }).ColumnRef.fields);
      if (names?.length === 1 && names[0]!.startsWith('__') && parts[names[0]!.slice(2)] !== undefined) return clone(parts[names[0]!.slice(2)]);
    }
    const out: Record<string, unknown> = {};
    for (const k in o) out[k] = replace(o[k]);
    return out;
  };
  return replace(parseExpr(sql)) as Node;
}

const DIRECT = new Set(['count', 'sum', 'min', 'max', 'bool_and', 'bool_or', 'every']);
const VARIANCE: Record<string, 'var_samp' | 'var_pop' | 'stddev_samp' | 'stddev_pop'> = {
  variance: 'var_samp', var_samp: 'var_samp', var_pop: 'var_pop', stddev: 'stddev_samp', stddev_samp: 'stddev_samp', stddev_pop: 'stddev_pop',
};
const OPERATORS = new Set(['+', '-', '*', '/', '%', '=', '<>', '!=', '<', '>', '<=', '>=']);
const FUNCTIONS = new Set(['round', 'trunc', 'abs', 'ceil', 'ceiling', 'floor']);
const CASTS = new Set(['int2', 'int4', 'int8', 'smallint', 'integer', 'int', 'bigint', 'numeric', 'decimal', 'text', 'varchar', 'bool', 'boolean']);

class GroupPlanner {
  private readonly outputs: Outputs;
  private readonly targets: ResTarget[];
  /** Hidden shard columns, appended after the client's: hidden[i] is shard column targets.length + i. */
  private readonly hidden: Node[] = [];
  private readonly aggregates: AggregatePlan[] = [];
  private readonly aggNodes: Node[] = [];
  /** Shard target list: the client's columns, some replaced. */
  private readonly shardTargets: Node[];
  private distinctArg: Node | undefined;
  private distinctColumn: number | undefined;

  constructor(private readonly stmt: SelectStmt) {
    this.targets = (stmt.targetList ?? []).map((t) => {
      if (!('ResTarget' in t) || t.ResTarget.val === undefined) throw new Unsupported('this select list is not supported across shards');
      return t.ResTarget;
    });
    this.outputs = new Outputs(this.targets);
    if (this.outputs.star >= 0) throw new Unsupported('SELECT * with aggregates or GROUP BY is not supported across shards', 'Name the columns.');
    this.shardTargets = this.targets.map((t) => ({ ResTarget: clone(t) }) as Node);
  }

  /** The shard column computing `node`, added as a hidden column unless one already does. */
  private hiddenColumn(node: Node): number {
    let i = this.hidden.findIndex((h) => sameTree(h, node));
    if (i < 0) {
      this.hidden.push(clone(node));
      i = this.hidden.length - 1;
    }
    return this.targets.length + i;
  }

  /** The shard column holding a group-level value: a client column when one has it, else a hidden one. */
  private columnFor(node: Node): number {
    const i = this.targets.findIndex((t) => !hasAggregate(t.val) && sameTree(t.val, node));
    return i >= 0 ? i : this.hiddenColumn(node);
  }

  plan(): CrossShardPlan & { shardStatement: SelectStmt } {
    const stmt = this.stmt;
    if ((stmt.distinctClause?.length ?? 0) > 0 && !(stmt.distinctClause!.length === 1 && Object.keys(stmt.distinctClause![0]!).length === 0))
      throw new Unsupported('DISTINCT ON together with aggregates or GROUP BY is not supported across shards');

    // GROUP BY: the columns that identify a group.
    const keys = (stmt.groupClause ?? []).map((g) => {
      if ('GroupingSet' in g) throw new Unsupported('GROUPING SETS, ROLLUP and CUBE are not supported across shards');
      const r = resolveGroupItem(g, this.outputs);
      if (r.kind === 'expr') return this.columnFor(r.node);
      if (hasAggregate(this.targets[r.index]!.val)) throw new Unsupported('GROUP BY an aggregate is not allowed');
      return r.index;
    });

    // Client columns.
    const outputs: FinalExpr[] = this.targets.map((t, i) => {
      const val = t.val!;
      if (!hasAggregate(val)) return { column: i };
      if ('FuncCall' in val && directPartial(val.FuncCall)) return { agg: this.aggregate(val, i) };
      const e = this.compile(val);
      (this.shardTargets[i] as { ResTarget: ResTarget }).ResTarget = typingTarget(t);
      return e;
    });
    const groups: GroupMergePlan = { keys, aggregates: this.aggregates, outputs, order: [] };
    if (stmt.havingClause !== undefined) groups.having = this.compile(stmt.havingClause);

    for (const s of stmt.sortClause ?? []) {
      if (!('SortBy' in s) || s.SortBy.node === undefined) throw new Unsupported('this ORDER BY is not supported across shards');
      const sb = s.SortBy;
      const { desc, nullsFirst } = direction(sb);
      const r = resolveItem(sb.node!, this.outputs);
      let expr: FinalExpr;
      let node: Node | undefined;
      if (r.kind === 'expr') {
        if ((stmt.distinctClause?.length ?? 0) > 0) throw new Unsupported('for SELECT DISTINCT, ORDER BY expressions must appear in select list');
        node = r.node;
        expr = this.compile(r.node);
      } else {
        if (r.index >= outputs.length) throw new Unsupported(`ORDER BY position ${r.index + 1} is not in select list`);
        expr = outputs[r.index]!;
        node = this.targets[r.index]!.val;
      }
      const item: GroupMergePlan['order'][number] = { expr, desc, nullsFirst };
      if (collationOf(node)) item.byteOrder = true;
      groups.order.push(item);
    }
    if ((stmt.distinctClause?.length ?? 0) > 0) groups.distinct = true;
    const limit = limitOf(stmt);
    if (limit !== undefined) {
      if (limit.withTies) throw new Unsupported('FETCH FIRST … WITH TIES with aggregates is not supported across shards');
      groups.limit = limit;
    }
    if (this.distinctColumn !== undefined) {
      groups.distinctOn = this.distinctColumn;
      if ((stmt.groupClause?.length ?? 0) === 0 && (outputs.some((o) => 'column' in o) || this.hidden.length > this.nonLeafHidden))
        throw new Unsupported('count(DISTINCT …) without GROUP BY next to plain columns is not supported across shards');
    }

    // The shard statement: grouped as the client wrote it (plus the DISTINCT argument), no HAVING,
    // ORDER BY, DISTINCT or LIMIT, partial aggregates in hidden columns.
    const shard = clone(stmt);
    delete shard.havingClause;
    delete shard.sortClause;
    delete shard.distinctClause;
    dropLimit(shard, limit);
    if (this.distinctArg !== undefined) shard.groupClause = [...(shard.groupClause ?? []), clone(this.distinctArg)];
    shard.targetList = [...this.shardTargets, ...this.hidden.map((h, i) => target(h, `pgshard_${i + 1}`))];
    return { hidden: this.hidden.length, groups, shardStatement: shard };
  }

  /** Hidden columns that are partial aggregates (not group-level values). */
  private nonLeafHidden = 0;

  private partialColumn(node: Node): number {
    const before = this.hidden.length;
    const c = this.hiddenColumn(node);
    if (this.hidden.length > before) this.nonLeafHidden++;
    return c;
  }

  /** A shard column typed like `x` and always NULL (the planner folds the CASE away, min() included). */
  private typeProbe(x: Node): number {
    return this.partialColumn(template('CASE WHEN false THEN min(__a) END', { a: x }));
  }

  /** Index of the aggregate `node` (a FuncCall) in the plan; `column`: a client column already holds its partial. */
  private aggregate(node: Node, column?: number): number {
    const seen = this.aggNodes.findIndex((a) => sameTree(a, node));
    if (seen >= 0) return seen;
    const f = (node as { FuncCall: FuncCall }).FuncCall;
    const name = funcName(f);
    if (name === undefined) throw new Unsupported('an aggregate in another schema is not supported across shards');
    if (f.agg_within_group === true) throw new Unsupported(`ordered-set aggregate ${name}() is not supported across shards`);
    const args = f.args ?? [];
    /** A partial aggregate call on the shards, keeping the client's FILTER (and ORDER BY for array_agg). */
    const partial = (fn: string, a: Node[], order = false): Node => {
      const call: FuncCall = { funcname: [{ String: { sval: fn } }], args: a.map(clone), funcformat: 'COERCE_EXPLICIT_CALL' };
      if (order && f.agg_order !== undefined) call.agg_order = clone(f.agg_order);
      if (f.agg_filter !== undefined) call.agg_filter = clone(f.agg_filter);
      return { FuncCall: call };
    };
    let plan: AggregatePlan;
    if (f.agg_distinct === true && name !== 'min' && name !== 'max' && name !== 'bool_and' && name !== 'bool_or' && name !== 'every') {
      if (name !== 'count' && name !== 'sum' && name !== 'avg') throw new Unsupported(`${name}(DISTINCT …) is not supported across shards`);
      if (args.length !== 1) throw new Unsupported(`${name}(DISTINCT …) with several arguments is not supported across shards`);
      if (this.distinctArg === undefined) {
        this.distinctArg = args[0]!;
        this.distinctColumn = this.partialColumn(args[0]!);
      } else if (!sameTree(this.distinctArg, args[0])) throw new Unsupported('DISTINCT aggregates over different expressions are not supported across shards');
      const p: AggregatePlan = { fn: `${name}_distinct` as 'count_distinct' };
      if (f.agg_filter !== undefined) p.filter = this.partialColumn(template('bool_or(__a)', { a: f.agg_filter }));
      plan = p;
    } else if (DIRECT.has(name)) {
      if (name === 'count' && f.agg_star !== true && args.length !== 1) throw new Unsupported('count() with several arguments');
      const call = clone(f);
      delete call.agg_distinct;
      const fn = name === 'every' ? 'bool_and' : (name as 'count');
      plan = { fn, column: column ?? this.partialColumn({ FuncCall: call }) };
    } else if (name === 'avg') {
      if (args.length !== 1) throw new Unsupported('avg() takes one argument');
      plan = { fn: 'avg', sum: this.partialColumn(partial('sum', [numericArg(args[0]!)])), count: this.partialColumn(partial('count', args)), type: this.typeProbe(args[0]!) };
    } else if (name in VARIANCE) {
      if (args.length !== 1) throw new Unsupported(`${name}() takes one argument`);
      plan = {
        fn: VARIANCE[name]!,
        count: this.partialColumn(partial('count', args)),
        sum: this.partialColumn(partial('sum', [numericArg(args[0]!)])),
        squares: this.partialColumn(partial('sum', [template('(__a)::numeric * (__a)::numeric', { a: args[0]! })])),
        type: this.typeProbe(args[0]!),
      };
    } else if (name === 'string_agg' || name === 'array_agg') {
      if (name === 'string_agg' && args.length !== 2) throw new Unsupported('string_agg() takes two arguments');
      if (name === 'array_agg' && args.length !== 1) throw new Unsupported('array_agg() takes one argument');
      const values = this.partialColumn(partial('array_agg', [args[0]!], true));
      const keys: AggregateKey[] = (f.agg_order ?? []).map((o) => {
        if (!('SortBy' in o) || o.SortBy.node === undefined) throw new Unsupported('this ORDER BY inside an aggregate is not supported across shards');
        const sb = o.SortBy;
        const key: AggregateKey = { column: this.partialColumn(partial('array_agg', [sb.node!], true)), ...direction(sb) };
        if (collationOf(sb.node)) key.byteOrder = true;
        return key;
      });
      if (name === 'string_agg') {
        const d = args[1]!;
        const c = 'A_Const' in d ? d.A_Const : 'TypeCast' in d && d.TypeCast.arg !== undefined && 'A_Const' in d.TypeCast.arg ? d.TypeCast.arg.A_Const : undefined;
        if (c?.sval === undefined) throw new Unsupported('string_agg() across shards needs a constant string delimiter');
        plan = { fn: 'string_agg', values, keys, delimiter: c.sval.sval ?? '' };
      } else plan = { fn: 'array_agg', values, keys };
    } else {
      throw new Unsupported(`aggregate ${name}() is not supported across shards`);
    }
    this.aggNodes.push(node);
    this.aggregates.push(plan);
    return this.aggregates.length - 1;
  }

  /** An expression over aggregates and group-level values, computed by pgshard. */
  private compile(node: Node): FinalExpr {
    if ('FuncCall' in node && isAggregateCall(node.FuncCall)) return { agg: this.aggregate(node) };
    if ('A_Const' in node) return constant(node);
    if (!hasAggregate(node)) return { column: this.columnFor(node) };
    if ('A_Expr' in node) {
      const a = node.A_Expr;
      if (a.kind === 'AEXPR_NULLIF') return { fn: 'nullif', args: [this.compile(a.lexpr!), this.compile(a.rexpr!)] };
      const op = operatorName(a.name);
      if (a.kind !== 'AEXPR_OP' || op === undefined || !OPERATORS.has(op)) throw new Unsupported(`operator ${op ?? a.kind ?? '?'} over aggregates is not supported across shards`);
      if (a.lexpr === undefined) {
        if (op === '-') return { op: 'neg', args: [this.compile(a.rexpr!)] };
        if (op === '+') return this.compile(a.rexpr!);
        throw new Unsupported(`prefix operator ${op} over aggregates is not supported across shards`);
      }
      return { op: op === '!=' ? '<>' : op, args: [this.compile(a.lexpr), this.compile(a.rexpr!)] };
    }
    if ('BoolExpr' in node) {
      const b = node.BoolExpr;
      const op = b.boolop === 'AND_EXPR' ? 'and' : b.boolop === 'OR_EXPR' ? 'or' : 'not';
      return { op, args: (b.args ?? []).map((x) => this.compile(x)) };
    }
    if ('NullTest' in node) return { op: node.NullTest.nulltesttype === 'IS_NOT_NULL' ? 'isnotnull' : 'isnull', args: [this.compile(node.NullTest.arg!)] };
    if ('TypeCast' in node) {
      const tn = node.TypeCast.typeName;
      const names = namesOf(tn?.names) ?? [];
      const name = names[names.length - 1];
      if (name === undefined || (names.length === 2 && names[0] !== 'pg_catalog') || !CASTS.has(name) || (tn?.arrayBounds?.length ?? 0) > 0)
        throw new Unsupported(`a cast to ${names.join('.') || '?'} over aggregates is not supported across shards`);
      const typmod = (tn?.typmods ?? []).map((m) => {
        if ('A_Const' in m && m.A_Const.ival !== undefined) return m.A_Const.ival.ival ?? 0;
        throw new Unsupported('a type modifier that is not an integer');
      });
      const cast = canonicalType(name);
      if (typmod.length > 0 && cast !== 'numeric') throw new Unsupported(`a cast to ${name}(…) over aggregates is not supported across shards`);
      const e: FinalExpr = { cast, arg: this.compile(node.TypeCast.arg!) };
      if (typmod.length > 0) e.typmod = typmod;
      return e;
    }
    if ('CoalesceExpr' in node) return { fn: 'coalesce', args: (node.CoalesceExpr.args ?? []).map((x) => this.compile(x)) };
    if ('MinMaxExpr' in node) return { fn: node.MinMaxExpr.op === 'IS_GREATEST' ? 'greatest' : 'least', args: (node.MinMaxExpr.args ?? []).map((x) => this.compile(x)) };
    if ('CaseExpr' in node) {
      const c = node.CaseExpr;
      if (c.arg !== undefined) throw new Unsupported('CASE x WHEN … over aggregates is not supported across shards (write CASE WHEN x = …)');
      const args: FinalExpr[] = [];
      for (const w of c.args ?? []) {
        if (!('CaseWhen' in w)) throw new Unsupported('this CASE over aggregates is not supported across shards');
        args.push(this.compile(w.CaseWhen.expr!), this.compile(w.CaseWhen.result!));
      }
      args.push(c.defresult !== undefined ? this.compile(c.defresult) : { const: null, type: 'unknown' });
      return { fn: 'case', args };
    }
    if ('FuncCall' in node) {
      const f = node.FuncCall;
      const name = funcName(f);
      if (name === undefined || !FUNCTIONS.has(name) || f.over !== undefined || f.agg_distinct === true || f.func_variadic === true)
        throw new Unsupported(`function ${namesOf(f.funcname)?.join('.') ?? '?'}() over aggregates is not supported across shards`);
      return { fn: name === 'ceiling' ? 'ceil' : name, args: (f.args ?? []).map((x) => this.compile(x)) };
    }
    throw new Unsupported('this expression over aggregates is not supported across shards');
  }
}

/** A client column that is itself one aggregate whose shard result merges as it is (count, sum, min, max, bool_and/or). */
function directPartial(f: FuncCall): boolean {
  const n = funcName(f);
  if (n === undefined || !DIRECT.has(n) || f.agg_within_group === true) return false;
  if (f.agg_distinct === true && n !== 'min' && n !== 'max' && n !== 'bool_and' && n !== 'bool_or' && n !== 'every') return false;
  return !(n === 'count' && f.agg_star !== true && (f.args?.length ?? 0) !== 1);
}

/**
 * The shard column standing for a client column computed by pgshard: named and typed as Postgres would
 * (RowDescription), never evaluated on a shard's partial rows (where it could fail, e.g. divide by zero).
 * `CASE WHEN false THEN expr END AS name`: the planner folds it to a typed NULL, aggregates included.
 * Where a CASE would lose a type modifier (a cast to numeric(p,s) inside) or the name is not certain,
 * `(SELECT expr LIMIT 0)`, which keeps both but still computes the aggregates inside.
 */
function typingTarget(t: ResTarget): ResTarget {
  const val = t.val!;
  const name = outputName(t);
  let typmod = false;
  walk(val, (n) => {
    if ('TypeCast' in n && (n.TypeCast.typeName?.typmods?.length ?? 0) > 0) typmod = true;
  });
  if (name === undefined || typmod) return { ...clone(t), val: template('(SELECT __a LIMIT 0)', { a: val }) };
  return { name, val: template('CASE WHEN false THEN __a END', { a: val }) };
}

function numericArg(x: Node): Node {
  return template('(__a)::numeric', { a: x });
}

function direction(sb: SortBy): { desc: boolean; nullsFirst: boolean } {
  const dir = sb.sortby_dir ?? 'SORTBY_DEFAULT';
  if (dir === 'SORTBY_USING') throw new Unsupported('ORDER BY … USING is not supported across shards with aggregates');
  const desc = dir === 'SORTBY_DESC';
  const nulls = sb.sortby_nulls ?? 'SORTBY_NULLS_DEFAULT';
  return { desc, nullsFirst: nulls === 'SORTBY_NULLS_FIRST' ? true : nulls === 'SORTBY_NULLS_LAST' ? false : desc };
}

function canonicalType(name: string): string {
  switch (name) {
    case 'smallint':
      return 'int2';
    case 'integer':
    case 'int':
      return 'int4';
    case 'bigint':
      return 'int8';
    case 'decimal':
      return 'numeric';
    case 'boolean':
      return 'bool';
    default:
      return name;
  }
}

function constant(node: Node): FinalExpr {
  const c = (node as { A_Const: NonNullable<Extract<Node, { A_Const: unknown }>['A_Const']> }).A_Const;
  if (c.isnull === true) return { const: null, type: 'unknown' };
  if (c.ival !== undefined) return { const: String(c.ival.ival ?? 0), type: 'int4' };
  if (c.fval !== undefined) {
    const v = c.fval.fval ?? '0';
    if (/^-?\d+$/.test(v)) {
      const b = BigInt(v);
      return b >= -(2n ** 63n) && b < 2n ** 63n ? { const: v, type: 'int8' } : { const: v, type: 'numeric' };
    }
    return { const: v, type: 'numeric' };
  }
  if (c.boolval !== undefined) return { const: c.boolval.boolval === true ? 't' : 'f', type: 'bool' };
  if (c.sval !== undefined) return { const: c.sval.sval ?? '', type: 'unknown' };
  throw new Unsupported('this constant is not supported in an expression over aggregates across shards');
}

/** GROUP BY item: position, output alias, or expression (Postgres prefers input columns for bare names; see the caveat). */
function resolveGroupItem(g: Node, outputs: Outputs): { kind: 'target'; index: number } | { kind: 'expr'; node: Node } {
  if ('A_Const' in g && g.A_Const.ival !== undefined) {
    const p = g.A_Const.ival.ival ?? 0;
    if (p < 1 || p > outputs.targets.length) throw new Unsupported(`GROUP BY position ${p} is not in select list`);
    return { kind: 'target', index: p - 1 };
  }
  if ('ColumnRef' in g) {
    const names = namesOf(g.ColumnRef.fields);
    if (names?.length === 1) {
      const i = outputs.targets.findIndex((t) => t.name === names[0]);
      if (i >= 0) return { kind: 'target', index: i };
    }
  }
  return { kind: 'expr', node: g };
}

export function planGroups(stmt: SelectStmt): CrossShardPlan & { shardStatement: SelectStmt } {
  if (hasWindow([stmt.targetList, stmt.havingClause, stmt.sortClause])) throw new Unsupported('window functions are not supported across shards');
  return new GroupPlanner(stmt).plan();
}
