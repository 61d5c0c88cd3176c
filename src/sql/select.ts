import type { SelectStmt } from 'libpg-query';
import type { KeyType } from '../config/schema.js';
import type { KeyExpr, RouteSpec } from './types.js';
import { forEachSubLink } from './ast.js';
import { asNested, BlockState, finishWith, occsSince, outputsOf, withScope, type BlockResult, type Env, type OutputColumn } from './block.js';
import { applyCondition, subLink, WHERE_MODE } from './conditions.js';
import { StatementContext, refusal } from './context.js';
import { fromItem } from './from.js';
import { dedupeKeys, keyId, singleKey } from './keys.js';
import type { ShardingSchema } from './schema.js';
import { CteScope, Scope } from './scope.js';
import { orderAndLimit, selectShape } from './shape.js';

/** A SELECT (plain, VALUES, or set operation) as a query block. */
export function selectBlock(env: Env, stmt: SelectStmt, parent: Scope | null, outerCtes: CteScope | null): BlockResult {
  const first = env.ctx.occurrences.length;
  const ctes = withScope(stmt.withClause, parent, outerCtes);
  const r = stmt.op !== undefined && stmt.op !== 'SETOP_NONE' ? setOperation(env, stmt, parent, ctes) : plainSelect(env, stmt, parent, ctes);
  finishWith(env, ctes, outerCtes);
  if ((stmt.lockingClause?.length ?? 0) > 0) env.ctx.readOnly = false;
  return { ...r, occs: occsSince(env, first) };
}

function plainSelect(env: Env, stmt: SelectStmt, parent: Scope | null, ctes: CteScope | null): BlockResult {
  const scope = new Scope(parent, ctes);
  const block = new BlockState(env, scope);
  let anchored = false;
  for (const item of stmt.fromClause ?? []) anchored = fromItem(block, item).anchored || anchored;
  applyCondition(block, stmt.whereClause, WHERE_MODE);
  const rest: unknown[] = [
    stmt.valuesLists, stmt.targetList, stmt.groupClause, stmt.havingClause, stmt.sortClause, stmt.windowClause,
    stmt.distinctClause, stmt.limitCount, stmt.limitOffset,
  ];
  forEachSubLink(rest, (s) => subLink(block, s, null));
  let columns: OutputColumn[] | null;
  let keys: ReadonlyMap<string, number>;
  if (stmt.valuesLists !== undefined) {
    const first = stmt.valuesLists[0];
    const n = first !== undefined && 'List' in first ? (first.List.items?.length ?? 0) : 0;
    columns = Array.from({ length: n }, (_, i) => ({ name: `column${i + 1}`, occ: undefined }));
    keys = new Map();
  } else {
    ({ columns, keys } = outputsOf(stmt.targetList, scope));
  }
  return {
    columns,
    keys,
    anchored: anchored || block.anchoredByFilter,
    occs: [],
    reasons: stmt.valuesLists !== undefined ? orderAndLimit(stmt) : selectShape(stmt, scope),
    correlated: block.correlated,
  };
}

const SETOP_NAMES: Record<string, string> = { SETOP_UNION: 'UNION', SETOP_INTERSECT: 'INTERSECT', SETOP_EXCEPT: 'EXCEPT' };

/**
 * UNION / INTERSECT / EXCEPT. When every branch has a shard key at the same output position, equal rows
 * have equal keys and so live on one shard: the set operation is partition-wise. Otherwise only UNION ALL
 * of branches each made of sharded rows is.
 */
function setOperation(env: Env, stmt: SelectStmt, parent: Scope | null, ctes: CteScope | null): BlockResult {
  const l = asNested(env, selectBlock(env, stmt.larg ?? {}, parent, ctes));
  const r = asNested(env, selectBlock(env, stmt.rarg ?? {}, parent, ctes));
  let columns: OutputColumn[] | null = null;
  let keyed = false;
  if (l.columns !== null && r.columns !== null && l.columns.length === r.columns.length) {
    columns = l.columns.map((c, i) => {
      const lo = c.occ;
      const ro = r.columns![i]!.occ;
      if (lo !== undefined && ro !== undefined && env.ctx.link(lo, ro)) {
        keyed = true;
        return c;
      }
      return { name: c.name, occ: undefined };
    });
  }
  const keys = new Map<string, number>();
  for (const c of columns ?? []) if (c.name !== null && c.occ !== undefined && !keys.has(c.name)) keys.set(c.name, c.occ);
  const op = SETOP_NAMES[stmt.op ?? ''] ?? 'UNION';
  const reasons: string[] = [];
  if (!keyed && !(op === 'UNION' && stmt.all === true)) reasons.push(stmt.all === true ? `${op} ALL` : op);
  reasons.push(...orderAndLimit(stmt));
  const anchored = op === 'UNION' ? l.anchored && r.anchored : op === 'INTERSECT' ? l.anchored || r.anchored : l.anchored;
  return { columns, keys, anchored, occs: [], reasons, correlated: l.correlated && r.correlated };
}

export interface QueryOutcome {
  route: RouteSpec;
  readOnly: boolean;
  notConcatenable: string | null;
  /** The key type of a keys/all route, for combining UNION branches. */
  keyType?: KeyType;
}

/** A top-level SELECT statement. */
export function selectStatement(schema: ShardingSchema, stmt: SelectStmt): QueryOutcome {
  const leaves = stmt.withClause === undefined ? unionLeaves(stmt) : undefined;
  if (leaves !== undefined) return unionStatement(schema, stmt, leaves);
  const env: Env = { ctx: new StatementContext(), schema };
  const r = selectBlock(env, stmt, null, null);
  const route = env.ctx.decide(undefined, r.anchored);
  return {
    route,
    readOnly: env.ctx.readOnly,
    notConcatenable: r.reasons.length > 0 ? r.reasons.join(', ') : null,
    keyType: keyTypeOf(env, route),
  };
}

export function keyTypeOf(env: Env, route: RouteSpec): KeyType | undefined {
  if (route.type !== 'keys' && route.type !== 'all') return undefined;
  return env.ctx.occurrences.find((o) => o.table === route.table)?.keyType;
}

/**
 * The branches of a top-level UNION [ALL] tree. Such branches need not be co-located with each other:
 * each shard's part of each branch is a part of the result (UNION then removes duplicates in the merge).
 */
function unionLeaves(stmt: SelectStmt): SelectStmt[] | undefined {
  if (stmt.op !== 'SETOP_UNION') return undefined;
  const out: SelectStmt[] = [];
  const all = stmt.all === true;
  const walk = (s: SelectStmt, root: boolean): void => {
    const plainNode =
      s.op === 'SETOP_UNION' &&
      (root ||
        ((s.all === true) === all && (s.withClause === undefined && (s.sortClause?.length ?? 0) === 0 && s.limitCount === undefined && s.limitOffset === undefined && (s.lockingClause?.length ?? 0) === 0)));
    if (plainNode) {
      walk(s.larg ?? {}, false);
      walk(s.rarg ?? {}, false);
    } else {
      out.push(s);
    }
  };
  walk(stmt, true);
  return out;
}

function unionStatement(schema: ShardingSchema, stmt: SelectStmt, leaves: SelectStmt[]): QueryOutcome {
  const parts = leaves.map((leaf) => selectStatement(schema, leaf));
  const reasons: string[] = [];
  // Branches of UNION ALL are just concatenated; UNION removes duplicates in the merge, also those of
  // branches every shard answers alike (reference tables, no table).
  const distinct = stmt.all !== true;
  if (distinct) reasons.push('UNION');
  reasons.push(...orderAndLimit(stmt));
  const readOnly = parts.every((p) => p.readOnly) && (stmt.lockingClause?.length ?? 0) === 0;
  const notConcatenable = reasons.length > 0 ? reasons.join(', ') : null;
  const refused = parts.find((p) => p.route.type === 'refuse');
  if (refused !== undefined) return { route: refused.route, readOnly, notConcatenable };

  const sharded = parts.filter((p) => p.route.type === 'keys' || p.route.type === 'all');
  if (sharded.length === 0) {
    const tables: string[] = [];
    for (const p of parts) if (p.route.type === 'reference') for (const t of p.route.tables) if (!tables.includes(t)) tables.push(t);
    const route: RouteSpec = tables.length === 0 && readOnly ? { type: 'none' } : { type: 'reference', tables, write: !readOnly };
    return { route, readOnly, notConcatenable };
  }
  const first = sharded[0]!.route as Extract<RouteSpec, { type: 'keys' | 'all' }>;
  // All on one key value: one shard answers the whole statement.
  const singles = sharded.map((p) => (p.route.type === 'keys' ? singleKey(p.route.keys) : undefined));
  const one = singles[0];
  if (one !== undefined && singles.every((k) => k !== undefined && keyId(k) === keyId(one)) && sharded.every((p) => p.keyType === sharded[0]!.keyType))
    return { route: { type: 'keys', table: first.table, keys: [one] }, readOnly, notConcatenable, keyType: sharded[0]!.keyType };
  const branchReason = sharded.find((p) => p.notConcatenable !== null);
  if (branchReason !== undefined) {
    return {
      route: refusal(
        `${branchReason.notConcatenable} in a UNION branch over sharded table "${(branchReason.route as { table: string }).table}" across several shards is not supported`,
        'restrict that branch to one shard key value, or move the clause outside the UNION',
      ),
      readOnly,
      notConcatenable,
    };
  }
  if (sharded.length < parts.length && !distinct) {
    return {
      route: refusal(
        `a UNION of rows of sharded table "${first.table}" with rows present on every shard is not supported across shards`,
        'restrict the sharded branches to one shard key value',
      ),
      readOnly,
      notConcatenable,
    };
  }
  const sameType = sharded.every((p) => p.keyType === sharded[0]!.keyType);
  if (sameType && sharded.every((p) => p.route.type === 'keys')) {
    const keys: KeyExpr[] = dedupeKeys(sharded.flatMap((p) => (p.route as { keys: KeyExpr[] }).keys));
    return { route: { type: 'keys', table: first.table, keys }, readOnly, notConcatenable, keyType: sharded[0]!.keyType };
  }
  return { route: { type: 'all', table: first.table }, readOnly, notConcatenable, keyType: sharded[0]!.keyType };
}
