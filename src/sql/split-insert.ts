import { parseSync } from 'libpg-query';
import type { InsertStmt, Node, SelectStmt } from 'libpg-query';
import { deparseSync } from 'pgsql-deparser';
import { PgError, SqlState } from '../protocol/errors.js';
import { sameTree } from './rewrite.js';

/**
 * A multi-row `INSERT ... VALUES (...), (...)` whose rows belong to different shards becomes one INSERT
 * per shard holding only that shard's rows; everything else (WITH, the column list, OVERRIDING, ON
 * CONFLICT, RETURNING) is kept as it is.
 *
 * The statement is parsed with Postgres's own parser, its VALUES list filtered, and written back with
 * pgsql-deparser. The deparser gets some forms wrong (quoted mixed-case CTE names lose their quotes, FETCH
 * ... WITH TIES becomes LIMIT: see the research notes), so every shard's text is parsed again and must give
 * exactly the intended tree, source positions aside. Otherwise the statement is refused (0A000), never
 * sent in a changed meaning. The libpg-query module must be loaded first (`initParser()`).
 *
 * Bind parameters: each shard's text keeps only the parameters its rows (and the shared parts) use.
 * Postgres cannot infer the type of a parameter the text does not mention ("could not determine data type
 * of parameter $3"), so with `renumberParams` the parameters are renumbered $1..$k per shard and the
 * caller rebuilds each shard's Bind (and Parse parameter types) from `params`.
 */

/** One shard's INSERT when parameters are renumbered. */
export interface ShardInsert {
  sql: string;
  /** For each new `$k` (k = index + 1), the 0-based index of the client's parameter it stands for. */
  params: number[];
}

export interface SplitInsertOptions {
  renumberParams?: boolean;
}

/** Source positions: not part of a statement's meaning. */
const HINT = 'Send the rows of each shard in an INSERT of their own, or load them with COPY.';

function cannotSplit(reason: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `this INSERT cannot be split safely into one INSERT per shard: ${reason}`, { hint: HINT });
}

/**
 * Splits `sql` (one INSERT ... VALUES) by `rowShards`, the shard of each VALUES row in order. Shards come
 * out in the order of their first row. When every row belongs to one shard, the client's text is returned
 * unchanged. Throws a PgError (0A000) when the statement cannot be split exactly.
 */
export function splitInsert(sql: string, rowShards: readonly string[], opts?: { renumberParams?: false }): Map<string, string>;
export function splitInsert(sql: string, rowShards: readonly string[], opts: { renumberParams: true }): Map<string, ShardInsert>;
export function splitInsert(sql: string, rowShards: readonly string[], opts?: SplitInsertOptions): Map<string, string> | Map<string, ShardInsert>;
export function splitInsert(sql: string, rowShards: readonly string[], opts: SplitInsertOptions = {}): Map<string, string> | Map<string, ShardInsert> {
  const renumber = opts.renumberParams === true;
  const { insert, values } = parseInsert(sql);
  const rows = values.valuesLists ?? [];
  if (rowShards.length !== rows.length) throw new RangeError(`splitInsert: ${rowShards.length} shard ids for ${rows.length} VALUES rows`);

  const byShard = new Map<string, number[]>();
  rowShards.forEach((shard, i) => {
    const list = byShard.get(shard);
    if (list === undefined) byShard.set(shard, [i]);
    else list.push(i);
  });

  if (byShard.size <= 1) {
    // Nothing to split: the client's own text, every parameter as it is.
    const out = new Map<string, string | ShardInsert>();
    const shard = rowShards[0];
    if (shard !== undefined) out.set(shard, renumber ? { sql, params: Array.from({ length: maxParam(insert) }, (_, i) => i) } : sql);
    return out as Map<string, string> | Map<string, ShardInsert>;
  }

  // Parameters of the parts every shard keeps, and of each row.
  const sharedParams = renumber ? paramsOf({ ...insert, selectStmt: { SelectStmt: { ...values, valuesLists: [] } } }) : [];
  const rowParams = renumber ? rows.map((r) => paramsOf(r)) : [];

  const out = new Map<string, string | ShardInsert>();
  for (const [shard, indexes] of byShard) {
    const filtered: Node = {
      InsertStmt: { ...insert, selectStmt: { SelectStmt: { ...values, valuesLists: indexes.map((i) => rows[i]!) } } },
    };
    if (!renumber) {
      out.set(shard, writeChecked(filtered));
      continue;
    }
    const used = new Set(sharedParams);
    for (const i of indexes) for (const p of rowParams[i]!) used.add(p);
    const old = [...used].sort((a, b) => a - b); // old $n numbers, in order: old[k-1] becomes $k
    const renumbered = old.every((n, k) => n === k + 1) ? filtered : renumberParams(filtered, new Map(old.map((n, k) => [n, k + 1])));
    out.set(shard, { sql: writeChecked(renumbered), params: old.map((n) => n - 1) });
  }
  return out as Map<string, string> | Map<string, ShardInsert>;
}

/** `splitInsert(sql, rowShards, { renumberParams: true })`. */
export function splitInsertParams(sql: string, rowShards: readonly string[]): Map<string, ShardInsert> {
  return splitInsert(sql, rowShards, { renumberParams: true });
}

function parseInsert(sql: string): { insert: InsertStmt; values: SelectStmt } {
  let stmts;
  try {
    stmts = parseSync(sql).stmts ?? [];
  } catch (e) {
    throw cannotSplit(`it does not parse (${(e as Error).message})`);
  }
  const node = stmts.length === 1 ? stmts[0]!.stmt : undefined;
  if (node === undefined || !('InsertStmt' in node)) throw cannotSplit('it is not a single INSERT statement');
  const insert = node.InsertStmt;
  const src = insert.selectStmt;
  const values = src !== undefined && 'SelectStmt' in src ? src.SelectStmt : undefined;
  if (values === undefined || values.valuesLists === undefined) throw cannotSplit('its rows do not come from a VALUES list');
  // A VALUES list with ORDER BY, LIMIT or OFFSET (legal, if odd) is not a plain list of rows.
  for (const [k, v] of Object.entries(values)) {
    if (k === 'valuesLists' || k === 'withClause') continue;
    if ((k === 'op' && v === 'SETOP_NONE') || (k === 'limitOption' && v === 'LIMIT_OPTION_DEFAULT')) continue;
    throw cannotSplit('its VALUES list has ORDER BY, LIMIT or OFFSET');
  }
  for (const w of [insert.withClause, values.withClause]) {
    for (const cte of w?.ctes ?? []) {
      const q = 'CommonTableExpr' in cte ? cte.CommonTableExpr.ctequery : undefined;
      if (q !== undefined && ('InsertStmt' in q || 'UpdateStmt' in q || 'DeleteStmt' in q || 'MergeStmt' in q))
        throw cannotSplit('its WITH clause changes data, and would do so once per shard');
    }
  }
  return { insert, values };
}

/** Writes a statement with pgsql-deparser and checks that Postgres's parser reads the text back as the same tree. */
function writeChecked(stmt: Node): string {
  let sql: string;
  try {
    sql = deparseSync(stmt, { pretty: false });
  } catch (e) {
    throw cannotSplit(`pgshard could not write it back as SQL (${(e as Error).message})`);
  }
  let again: Node | undefined;
  try {
    const stmts = parseSync(sql).stmts ?? [];
    again = stmts.length === 1 ? stmts[0]!.stmt : undefined;
  } catch {
    again = undefined;
  }
  if (again === undefined || !sameTree(again, stmt))
    throw cannotSplit('its text for the shards would not mean the same (pgshard\'s SQL writer mishandles one of its forms, such as a quoted mixed-case CTE name or FETCH ... WITH TIES)');
  return sql;
}


/** Visits every ParamRef of a tree. */
function forEachParam(node: unknown, visit: (p: { number?: number }) => void): void {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const x of node) forEachParam(x, visit);
    return;
  }
  const o = node as Record<string, unknown>;
  for (const k in o) {
    const v = o[k];
    if (v === null || typeof v !== 'object') continue;
    if (k === 'ParamRef') visit(v as { number?: number });
    else forEachParam(v, visit);
  }
}

/** The distinct $n numbers of a tree. */
function paramsOf(node: unknown): number[] {
  const seen = new Set<number>();
  forEachParam(node, (p) => seen.add(p.number ?? 0));
  return [...seen];
}

function maxParam(node: unknown): number {
  let max = 0;
  forEachParam(node, (p) => (max = Math.max(max, p.number ?? 0)));
  return max;
}

/** The tree with $n renumbered by `map`: the paths to parameters are copied, the rest is shared. */
function renumberParams<T>(node: T, map: Map<number, number>): T {
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) {
    let out: unknown[] | undefined;
    node.forEach((x: unknown, i) => {
      const y = renumberParams(x, map);
      if (y !== x) (out ??= [...node])[i] = y;
    });
    return (out ?? node) as T;
  }
  const o = node as Record<string, unknown>;
  let out: Record<string, unknown> | undefined;
  for (const k in o) {
    const v = o[k];
    if (v === null || typeof v !== 'object') continue;
    const w = k === 'ParamRef' ? { ...(v as object), number: map.get((v as { number?: number }).number ?? 0)! } : renumberParams(v, map);
    if (w !== v) (out ??= { ...o })[k] = w;
  }
  return (out ?? o) as T;
}
