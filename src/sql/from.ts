import type { JoinExpr, Node, RangeVar } from 'libpg-query';
import { forEachSubLink, namesOf, stringOf } from './ast.js';
import { asNested, cteResult, EMPTY_KEYS, keyMap, queryBlock, renamedKeys, type BlockState } from './block.js';
import { applyCondition, fullJoinMode, INNER_JOIN_MODE, outerJoinMode, subLink, type ConditionMode } from './conditions.js';
import type { ShardingSchema, TableRef } from './schema.js';

/** What a FROM item brings into its block. */
export interface FromResult {
  /** Every row of the item comes from a sharded row. */
  readonly anchored: boolean;
  /** The occurrences whose shard keys are visible through the item (for telling join sides apart). */
  readonly exposed: ReadonlySet<number>;
}

const NOTHING: FromResult = { anchored: false, exposed: new Set() };

export function fromItem(block: BlockState, node: Node): FromResult {
  if ('RangeVar' in node) return relation(block, node.RangeVar);
  if ('JoinExpr' in node) return join(block, node.JoinExpr);
  if ('RangeSubselect' in node) {
    const rs = node.RangeSubselect;
    const parent = rs.lateral === true ? block.scope : block.scope.parent;
    const r = asNested(block.env, queryBlock(block.env, rs.subquery, parent, block.scope.ctes));
    const keys = renamedKeys(r, namesOf(rs.alias?.colnames) ?? []);
    block.scope.add({ name: rs.alias?.aliasname ?? null, keys });
    return { anchored: r.anchored, exposed: new Set(keys.values()) };
  }
  if ('RangeTableSample' in node) {
    const rel = node.RangeTableSample.relation;
    if (rel !== undefined && 'RangeVar' in rel) return relation(block, rel.RangeVar);
    return NOTHING;
  }
  // Functions, XMLTABLE, JSON_TABLE: rows computed on the spot, the same on every shard.
  forEachSubLink(node, (s) => subLink(block, s, null));
  const alias = aliasOf(node);
  block.scope.add({ name: alias, keys: EMPTY_KEYS });
  return NOTHING;
}

function aliasOf(node: Node): string | null {
  if ('RangeFunction' in node) {
    const rf = node.RangeFunction;
    if (rf.alias?.aliasname !== undefined) return rf.alias.aliasname;
    // An unaliased function is named after the function.
    const first = rf.functions?.[0];
    const call = first !== undefined && 'List' in first ? first.List.items?.[0] : undefined;
    const names = call !== undefined && 'FuncCall' in call ? namesOf(call.FuncCall.funcname) : undefined;
    return names?.[names.length - 1] ?? null;
  }
  if ('RangeTableFunc' in node) return node.RangeTableFunc.alias?.aliasname ?? null;
  if ('JsonTable' in node) return node.JsonTable.alias?.aliasname ?? null;
  return null;
}

/** A table or CTE named in FROM (also the target of UPDATE/DELETE/INSERT, via `resolveTable`). */
function relation(block: BlockState, rv: RangeVar): FromResult {
  const name = rv.relname ?? '';
  const alias = rv.alias?.aliasname;
  const renamed = (rv.alias?.colnames?.length ?? 0) > 0;
  const cte = rv.schemaname === undefined ? block.scope.ctes?.lookup(name) : undefined;
  if (cte !== undefined) {
    const r = cteResult(block.env, cte);
    if (r === null) {
      block.scope.add({ name: alias ?? name, keys: EMPTY_KEYS });
      return NOTHING;
    }
    const keys = renamedKeys(r, namesOf(rv.alias?.colnames) ?? []);
    block.scope.add({ name: alias ?? name, keys });
    return { anchored: r.anchored, exposed: new Set(keys.values()) };
  }
  const t = resolveTable(block, rv, false);
  if (t.kind !== 'sharded') {
    block.scope.add({ name: alias ?? name, keys: EMPTY_KEYS });
    return NOTHING;
  }
  const occ = t.occ;
  // `users AS u(a, b)` renames columns by position, which pgshard does not know.
  block.scope.add({ name: alias ?? name, keys: renamed ? EMPTY_KEYS : keyMap(t.key, occ) });
  return { anchored: true, exposed: new Set([occ]) };
}

export type ResolvedTable = Exclude<TableRef, { kind: 'sharded' }> | (Extract<TableRef, { kind: 'sharded' }> & { occ: number });

/** Looks a table up in the sharding schema and records it (a refusal for an unknown table). */
export function resolveTable(block: BlockState, rv: RangeVar, write: boolean): ResolvedTable {
  return recordTable(block.env.schema, block.env.ctx, rv.schemaname, rv.relname ?? '', write);
}

export function recordTable(
  schema: ShardingSchema,
  ctx: BlockState['env']['ctx'],
  schemaname: string | undefined,
  relname: string,
  write: boolean,
): ResolvedTable {
  const t = schema.resolve(schemaname, relname);
  switch (t.kind) {
    case 'sharded': {
      const occ = ctx.addOccurrence(t.name, t.key, t.keyType);
      if (write) ctx.noteShardedWrite(occ);
      return { ...t, occ };
    }
    case 'reference':
      ctx.noteReference(t.name, write);
      return t;
    case 'unknown':
      ctx.refuse(
        `table "${t.name}" is not listed under "tables" in the pgshard configuration (unknown_tables: refuse)`,
        `add "${t.name}" under tables, with a shard_key or as reference: true`,
      );
      return t;
    case 'catalog':
      if (write) ctx.readOnly = false;
      return t;
  }
}

function join(block: BlockState, j: JoinExpr): FromResult {
  const scope = block.scope;
  const leftStart = scope.entries.length;
  const l = j.larg !== undefined ? fromItem(block, j.larg) : NOTHING;
  const rightStart = scope.entries.length;
  const r = j.rarg !== undefined ? fromItem(block, j.rarg) : NOTHING;
  const leftEntries = scope.entries.slice(leftStart, rightStart);
  const rightEntries = scope.entries.slice(rightStart);
  const type = j.jointype ?? 'JOIN_INNER';

  let mode: ConditionMode;
  let anchored: boolean;
  switch (type) {
    case 'JOIN_LEFT':
      mode = outerJoinMode(r.exposed);
      anchored = l.anchored;
      break;
    case 'JOIN_RIGHT':
      mode = outerJoinMode(l.exposed);
      anchored = r.anchored;
      break;
    case 'JOIN_FULL':
      mode = fullJoinMode(l.exposed, r.exposed);
      anchored = l.anchored && r.anchored;
      break;
    default:
      mode = INNER_JOIN_MODE;
      anchored = l.anchored || r.anchored;
  }

  // USING (k) and NATURAL JOIN equate same-named columns; the merged column stands for both sides.
  const using = (j.usingClause ?? []).map((n) => stringOf(n)).filter((s): s is string => s !== undefined);
  if (j.isNatural === true) {
    for (const e of leftEntries) for (const k of e.keys.keys()) if (rightEntries.some((x) => x.keys.has(k)) && !using.includes(k)) using.push(k);
  }
  const ctx = block.env.ctx;
  for (const col of using) {
    const lo = leftEntries.flatMap((e) => (e.keys.has(col) ? [e.keys.get(col)!] : []));
    const ro = rightEntries.flatMap((e) => (e.keys.has(col) ? [e.keys.get(col)!] : []));
    for (const a of lo) {
      for (const b of ro) {
        if (!mode.links(a, b) || !ctx.link(a, b)) continue;
        if (mode.flows(a, b)) ctx.flow(a, b);
        if (mode.flows(b, a)) ctx.flow(b, a);
      }
    }
    if (lo.length + ro.length > 0) scope.merged.set(col, [...lo, ...ro]);
  }
  applyCondition(block, j.quals, mode);
  const exposed = new Set([...l.exposed, ...r.exposed]);
  return { anchored, exposed };
}
