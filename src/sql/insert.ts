import type { InsertStmt, Node, ResTarget, SelectStmt } from 'libpg-query';
import type { KeyExpr, RouteSpec } from './types.js';
import { forEachSubLink, namesOf, stripCasts } from './ast.js';
import { asNested, BlockState, EMPTY_KEYS, finishWith, keyMap, occsSince, outputsOf, queryBlock, withScope, type BlockResult, type Env } from './block.js';
import { subLink } from './conditions.js';
import { StatementContext, refusal } from './context.js';
import { resolveTable } from './from.js';
import { keyExprOf, singleKey } from './keys.js';
import type { ShardingSchema } from './schema.js';
import { CteScope, Scope } from './scope.js';

export interface InsertAnalysis {
  readonly result: BlockResult;
  /** The sharded target's occurrence. */
  readonly target?: number;
  /** One key per VALUES row (or the one key of INSERT ... SELECT const), when the target is sharded. */
  readonly rowKeys?: KeyExpr[];
  /** The number of VALUES rows, for per-row routing. */
  readonly rows?: number;
}

/**
 * INSERT: each VALUES row goes to the shard of its key column's value. The key must be a literal or a
 * parameter in every row; INSERT ... SELECT is accepted only when the SELECT's key is one constant or
 * parameter (the ORM "insert if not exists" form), since otherwise the rows' keys are known only after the
 * SELECT has run.
 */
export function insertBlock(env: Env, stmt: InsertStmt, parent: Scope | null, outerCtes: CteScope | null): InsertAnalysis {
  const ctx = env.ctx;
  const first = ctx.occurrences.length;
  const ctes = withScope(stmt.withClause, parent, outerCtes);
  const scope = new Scope(parent, ctes);
  const block = new BlockState(env, scope);
  const rel = stmt.relation ?? {};
  const t = resolveTable(block, rel, true);
  const alias = rel.alias?.aliasname ?? rel.relname ?? '';
  const target = t.kind === 'sharded' ? t.occ : undefined;

  // The source rows: a plain VALUES list, or a query.
  const src = stmt.selectStmt;
  const values = src !== undefined && 'SelectStmt' in src && isPlainValues(src.SelectStmt) ? rowsOf(src.SelectStmt) : undefined;
  let sourceOccs: number[] = [];
  if (values !== undefined) {
    const valuesBlock = new BlockState(env, new Scope(parent, ctes));
    forEachSubLink(values, (s) => subLink(valuesBlock, s, null));
    sourceOccs = occsSince(env, valuesBlock.firstOcc);
  } else if (src !== undefined) {
    sourceOccs = asNested(env, queryBlock(env, src, parent, ctes)).occs;
  }

  let rowKeys: KeyExpr[] | undefined;
  if (t.kind === 'sharded') {
    const cols = (stmt.cols ?? []).map((c) => ('ResTarget' in c ? c.ResTarget : ({} as ResTarget)));
    // Without a column list, the key's position in the table (learned from a shard's catalog) decides.
    const tableOrder = cols.length === 0 ? env.schema.columnsOf(t.name) : undefined;
    const keyIndex = tableOrder
      ? tableOrder.findIndex((c) => c === t.key || c === t.key.toLowerCase())
      : cols.findIndex((c) => (c.name === t.key || c.name === t.key.toLowerCase()) && (c.indirection?.length ?? 0) === 0);
    const mustGive = (hint: string): void =>
      ctx.refuse(`INSERT into sharded table "${t.name}" must give the shard key column "${t.key}"`, hint);
    if (src === undefined) mustGive('DEFAULT VALUES gives no shard key');
    else if (cols.length === 0 && tableOrder === undefined) mustGive(`name the columns, as in INSERT INTO ${t.name} (${t.key}, ...): pgshard does not know the table's column order`);
    else if (keyIndex < 0) mustGive(`the column list has no "${t.key}"`);
    else if (values !== undefined) {
      rowKeys = [];
      for (let i = 0; i < values.length; i++) {
        const item = values[i]![keyIndex];
        const k = item === undefined ? undefined : keyExprOf(item, t.keyType);
        if (item !== undefined && 'SetToDefault' in item) mustGive(`row ${i + 1} has DEFAULT for "${t.key}"`);
        else if (k === undefined && item !== undefined && invalidLiteral(item)) {
          const lit = invalidLiteral(item)!;
          ctx.refuse(`invalid input syntax for type ${t.keyType === 'int' ? 'integer' : t.keyType}: "${lit}"`, undefined, '22P02');
        } else if (k === undefined) mustGive(`row ${i + 1}: the shard key must be a literal or a parameter`);
        else if (k.kind === 'null') mustGive(`row ${i + 1} has NULL for "${t.key}"`);
        else {
          rowKeys.push(k);
          continue;
        }
        rowKeys = undefined;
        break;
      }
      if (rowKeys !== undefined) ctx.restrict(t.occ, rowKeys);
    } else {
      const k = selectedKey(src, keyIndex, t.keyType);
      if (k !== undefined && k.kind !== 'null') {
        rowKeys = [k];
        ctx.restrict(t.occ, rowKeys);
      } else if (sourceOccs.length > 0) {
        const from = ctx.occurrences[sourceOccs[0]!]!;
        ctx.refuse(`INSERT ... SELECT from sharded table "${from.table}" is not supported yet`, 'insert the rows with VALUES (or COPY) instead');
      } else {
        mustGive(`the SELECT must give "${t.key}" as one literal or parameter`);
      }
    }
  }

  // ON CONFLICT and RETURNING see the target (and EXCLUDED, the row proposed for insertion).
  scope.add({ name: alias, keys: t.kind === 'sharded' ? keyMap(t.key, t.occ) : EMPTY_KEYS });
  scope.add({ name: 'excluded', keys: EMPTY_KEYS });
  const conflict = stmt.onConflictClause;
  if (conflict !== undefined) {
    forEachSubLink([conflict.targetList, conflict.whereClause, conflict.infer], (s) => subLink(block, s, null));
    if (t.kind === 'sharded') {
      for (const node of conflict.targetList ?? []) {
        if (!('ResTarget' in node) || (node.ResTarget.name !== t.key && node.ResTarget.name !== t.key.toLowerCase())) continue;
        const v = assignedValue(node.ResTarget);
        // SET key = EXCLUDED.key keeps the row where this insert was routed.
        const names = v !== undefined && 'ColumnRef' in v ? namesOf(v.ColumnRef.fields) : undefined;
        if (names !== undefined && names.length === 2 && names[0] === 'excluded' && (names[1] === t.key || names[1] === t.key.toLowerCase())) continue;
        if (v !== undefined && 'ColumnRef' in v && sameColumn(scope, v, t.occ)) continue;
        ctx.keyChanges.push({ occ: t.occ, value: v === undefined ? undefined : keyExprOf(v, t.keyType) });
      }
    }
  }
  const returning = stmt.returningClause?.exprs;
  forEachSubLink(returning, (s) => subLink(block, s, null));
  const { columns, keys } = outputsOf(returning, scope);
  finishWith(env, ctes, outerCtes);

  const several = rowKeys !== undefined && singleKey(rowKeys) === undefined;
  const result: BlockResult = {
    columns,
    keys,
    anchored: t.kind === 'sharded',
    occs: occsSince(env, first),
    // Inside WITH, rows for several shards cannot be split from the rest of the statement.
    reasons: several ? ['INSERT of rows for several shard keys'] : [],
    correlated: false,
  };
  return { result, target, rowKeys, rows: values?.length };
}

export function sameColumn(scope: Scope, v: Node, occ: number): boolean {
  if (!('ColumnRef' in v)) return false;
  const r = scope.resolve(v.ColumnRef.fields);
  return r !== null && !r.outer && r.occs.includes(occ);
}

/** The value assigned by a SET item, also inside `SET (a, b) = (1, 2)`; undefined for `= (SELECT ...)`. */
export function assignedValue(rt: ResTarget): Node | undefined {
  const v = rt.val;
  if (v === undefined || !('MultiAssignRef' in v)) return v;
  const src = v.MultiAssignRef.source;
  if (src === undefined || !('RowExpr' in src)) return undefined;
  return src.RowExpr.args?.[(v.MultiAssignRef.colno ?? 1) - 1];
}

function isPlainValues(s: SelectStmt): boolean {
  return (
    s.valuesLists !== undefined &&
    s.withClause === undefined &&
    (s.sortClause?.length ?? 0) === 0 &&
    s.limitCount === undefined &&
    s.limitOffset === undefined
  );
}

function rowsOf(s: SelectStmt): Node[][] {
  return (s.valuesLists ?? []).map((r) => ('List' in r ? (r.List.items ?? []) : []));
}

/** The key of INSERT ... SELECT when the SELECT gives it as a literal or parameter. */
function selectedKey(src: Node, keyIndex: number, keyType: Parameters<typeof keyExprOf>[1]): KeyExpr | undefined {
  if (!('SelectStmt' in src)) return undefined;
  const s = src.SelectStmt;
  if (s.op !== undefined && s.op !== 'SETOP_NONE') return undefined;
  const targets = s.targetList ?? [];
  for (let i = 0; i <= keyIndex && i < targets.length; i++) {
    const t = targets[i]!;
    const v = 'ResTarget' in t ? t.ResTarget.val : undefined;
    if (v !== undefined && 'ColumnRef' in v && (v.ColumnRef.fields ?? []).some((f) => 'A_Star' in f)) return undefined;
  }
  const t = targets[keyIndex];
  const v = t !== undefined && 'ResTarget' in t ? t.ResTarget.val : undefined;
  return v === undefined ? undefined : keyExprOf(v, keyType);
}

/** A top-level INSERT statement. */
export function insertStatement(schema: ShardingSchema, stmt: InsertStmt): { route: RouteSpec; readOnly: boolean; insertRows?: number } {
  const env: Env = { ctx: new StatementContext(), schema };
  const ctx = env.ctx;
  const a = insertBlock(env, stmt, null, null);
  if (ctx.refusal !== null) return { route: ctx.refusal, readOnly: false };
  if (a.target === undefined || a.rowKeys === undefined) return { route: ctx.decide(undefined, false), readOnly: ctx.readOnly };
  const target = ctx.occurrences[a.target]!;
  const route = ctx.decide(a.target, true);
  if (ctx.occurrences.length > 1) {
    // Other sharded tables (a sub-SELECT, a CTE) are fine only when everything is on one key value.
    const single = route.type === 'keys' ? singleKey(route.keys) : undefined;
    if (single === undefined) {
      if (route.type === 'refuse' && ctx.keyChanges.length > 0) return { route, readOnly: false };
      const other = ctx.occurrences.find((o) => o.id !== a.target)!;
      return {
        route: refusal(
          a.rows === undefined
            ? `INSERT ... SELECT from sharded table "${other.table}" is not supported yet`
            : `INSERT into sharded table "${target.table}" reading sharded table "${other.table}" is not supported unless both use one shard key value`,
          `give the same single "${target.key}" value throughout the statement`,
        ),
        readOnly: false,
      };
    }
  }
  if (route.type === 'refuse') return { route, readOnly: false };
  const out: { route: RouteSpec; readOnly: boolean; insertRows?: number } = {
    route: { type: 'keys', table: target.table, keys: a.rowKeys },
    readOnly: false,
  };
  if (a.rows !== undefined) out.insertRows = a.rows;
  return out;
}

/** The text of a string literal that is not a valid value of the key type (Postgres answers 22P02 for it). */
function invalidLiteral(item: Node): string | undefined {
  const n = stripCasts(item);
  return 'A_Const' in n && n.A_Const.sval !== undefined ? (n.A_Const.sval.sval ?? '') : undefined;
}
