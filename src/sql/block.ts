import type { Node, ResTarget, WithClause } from 'libpg-query';
import type { StatementContext } from './context.js';
import type { ShardingSchema } from './schema.js';
import { namesOf } from './ast.js';
import { CteScope, Scope, type CteDefinition, type RelEntry } from './scope.js';
import { selectBlock } from './select.js';
import { insertBlock } from './insert.js';
import { deleteBlock, mergeBlock, updateBlock } from './update-delete.js';

/** What the analysis of one statement carries around. */
export interface Env {
  readonly ctx: StatementContext;
  readonly schema: ShardingSchema;
}

export interface OutputColumn {
  readonly name: string | null;
  /** The occurrence whose shard key this output column is, if it is one. */
  readonly occ: number | undefined;
}

/** A query block (SELECT, set operation, or a data-modifying statement with RETURNING) as its user sees it. */
export interface BlockResult {
  /** Output columns by position; null when a `*` leaves the positions unknown. */
  readonly columns: OutputColumn[] | null;
  /** Output columns that are shard keys, by name (known even under `*`). */
  readonly keys: ReadonlyMap<string, number>;
  /** Every result row comes from a sharded row (not from a table present on every shard). */
  readonly anchored: boolean;
  /** The sharded occurrences inside the block, nested ones included. */
  readonly occs: number[];
  /** Why the block's rows are not the plain union of what each shard returns (ORDER BY, LIMIT, ...). */
  readonly reasons: string[];
  /** Tied to an enclosing query's shard key, so evaluated for one key value at a time. */
  readonly correlated: boolean;
}

export const EMPTY_KEYS: ReadonlyMap<string, number> = new Map();

/** The mutable state of a block being analysed. */
export class BlockState {
  readonly firstOcc: number;
  /** A WHERE condition on a shard key makes its occurrence non-null in every result row. */
  anchoredByFilter = false;
  correlated = false;

  constructor(
    readonly env: Env,
    readonly scope: Scope,
  ) {
    this.firstOcc = env.ctx.occurrences.length;
  }
}

/** The occurrences recorded since `first` (a block's own and its nested ones). */
export function occsSince(env: Env, first: number): number[] {
  const out: number[] = [];
  for (let i = first; i < env.ctx.occurrences.length; i++) out.push(i);
  return out;
}

/** Analyses any query that can appear as a sub-SELECT, a CTE body or a FROM item. */
export function queryBlock(env: Env, node: Node | undefined, parent: Scope | null, ctes: CteScope | null): BlockResult {
  if (node === undefined) return emptyBlock();
  if ('SelectStmt' in node) return selectBlock(env, node.SelectStmt, parent, ctes);
  if ('InsertStmt' in node) return insertBlock(env, node.InsertStmt, parent, ctes).result;
  if ('UpdateStmt' in node) return updateBlock(env, node.UpdateStmt, parent, ctes).result;
  if ('DeleteStmt' in node) return deleteBlock(env, node.DeleteStmt, parent, ctes).result;
  if ('MergeStmt' in node) return mergeBlock(env, node.MergeStmt, parent, ctes).result;
  return emptyBlock();
}

export function emptyBlock(): BlockResult {
  return { columns: null, keys: EMPTY_KEYS, anchored: false, occs: [], reasons: [], correlated: false };
}

/**
 * A block as an enclosing query may use it. A block over sharded rows that is not partition-wise (a LIMIT,
 * an aggregate not grouped by the key, ...) gives different answers shard by shard; unless it is tied to one
 * key value, that is recorded, and its key columns are hidden so no equality can treat it as co-located.
 */
export function asNested(env: Env, r: BlockResult): BlockResult {
  if (r.occs.length === 0) return r;
  const reasons = r.reasons.filter((x) => x !== 'ORDER BY');
  if (reasons.length === 0 || r.correlated || env.ctx.sameSingleKey(r.occs)) return r;
  env.ctx.noteUnsafe(reasons.join(', '), r.occs[0]!);
  return {
    ...r,
    keys: EMPTY_KEYS,
    columns: r.columns === null ? null : r.columns.map((c) => ({ name: c.name, occ: undefined })),
  };
}

/** The shard-key map of a sharded table's occurrence. */
export function keyMap(key: string, occ: number): Map<string, number> {
  const m = new Map([[key, occ]]);
  const lower = key.toLowerCase();
  if (lower !== key) m.set(lower, occ);
  return m;
}

/** Output columns of a target list (SELECT list or RETURNING). */
export function outputsOf(targets: Node[] | undefined, scope: Scope): { columns: OutputColumn[] | null; keys: Map<string, number> } {
  const keys = new Map<string, number>();
  let columns: OutputColumn[] | null = [];
  for (const t of targets ?? []) {
    if (!('ResTarget' in t)) continue;
    const rt: ResTarget = t.ResTarget;
    const val = rt.val;
    if (val !== undefined && 'ColumnRef' in val) {
      const fields = val.ColumnRef.fields ?? [];
      const last = fields[fields.length - 1];
      if (last !== undefined && 'A_Star' in last) {
        columns = null;
        const qual = namesOf(fields.slice(0, -1));
        for (const e of starEntries(scope, qual)) for (const [k, o] of e.keys) if (!keys.has(k)) keys.set(k, o);
        continue;
      }
      const r = scope.resolve(fields);
      const occ = r !== null && !r.outer ? r.occs[0] : undefined;
      const names = namesOf(fields);
      const name = rt.name ?? (names !== undefined ? names[names.length - 1]! : null);
      columns?.push({ name, occ });
      if (name !== null && occ !== undefined && !keys.has(name)) keys.set(name, occ);
      continue;
    }
    columns?.push({ name: rt.name ?? null, occ: undefined });
  }
  return { columns, keys };
}

function starEntries(scope: Scope, qual: string[] | undefined): RelEntry[] {
  if (qual === undefined || qual.length === 0) return scope.entries;
  const rel = qual[qual.length - 1];
  return scope.entries.filter((e) => e.name === rel);
}

/** Renames a block's output columns by an alias column list (`AS t(a, b)`, a CTE's column list). */
export function renamedKeys(r: BlockResult, aliases: string[]): ReadonlyMap<string, number> {
  if (aliases.length === 0) return r.keys;
  if (r.columns === null) return EMPTY_KEYS;
  const keys = new Map<string, number>();
  r.columns.forEach((c, i) => {
    const name = i < aliases.length ? aliases[i]! : c.name;
    if (name !== null && c.occ !== undefined && !keys.has(name)) keys.set(name, c.occ);
  });
  return keys;
}

/**
 * The CTE scope of a WITH clause. Without RECURSIVE, a CTE sees only the CTEs before it (a CTE named like a
 * table it reads, `WITH users AS (SELECT * FROM users)`, reads the table).
 */
export function withScope(w: WithClause | undefined, scope: Scope | null, outer: CteScope | null): CteScope | null {
  if (w === undefined || (w.ctes ?? []).length === 0) return outer;
  const recursive = w.recursive === true;
  let current: CteScope = new CteScope(outer);
  const all = current;
  for (const c of w.ctes ?? []) {
    if (!('CommonTableExpr' in c)) continue;
    const e = c.CommonTableExpr;
    if (e.ctequery === undefined || e.ctename === undefined) continue;
    const target = recursive ? all : current;
    const def: CteDefinition = {
      name: e.ctename,
      query: e.ctequery,
      columnNames: namesOf(e.aliascolnames) ?? [],
      recursive,
      scope,
      ctes: recursive ? all : current,
      state: 'new',
    };
    if (!recursive) {
      current = new CteScope(current);
      current.defs.set(def.name, def);
    } else {
      target.defs.set(def.name, def);
    }
  }
  return current;
}

/**
 * The result of a CTE at one of its references. Each reference is analysed afresh, with occurrences of its
 * own: two references to one CTE are two uses of its rows, and joining them needs co-location like joining
 * a table with itself. `null` while the CTE is being analysed (a recursive self-reference).
 */
export function cteResult(env: Env, def: CteDefinition): BlockResult | null {
  if (def.state === 'busy') {
    selfReferenced.add(def);
    return null;
  }
  def.state = 'busy';
  let r = queryBlock(env, def.query, def.scope, def.ctes);
  if (selfReferenced.has(def) && r.occs.length > 0) r = { ...r, reasons: [...r.reasons, 'WITH RECURSIVE'] };
  r = asNested(env, r);
  def.state = 'done';
  return { ...r, keys: renamedKeys(r, def.columnNames) };
}

const selfReferenced = new WeakSet<CteDefinition>();

/** Data-modifying CTEs run even when nothing refers to them. */
export function finishWith(env: Env, ctes: CteScope | null, outer: CteScope | null): void {
  for (let s = ctes; s !== null && s !== outer; s = s.parent) {
    for (const def of s.defs.values()) {
      if (def.state === 'new' && !('SelectStmt' in def.query)) cteResult(env, def);
    }
  }
}
