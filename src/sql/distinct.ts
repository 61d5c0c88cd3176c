import type { Node, SelectStmt } from 'libpg-query';
import type { RowMergePlan, SortKey } from './types.js';
import { intConst, Unsupported } from './rewrite.js';
import type { Outputs } from './order-by.js';
import { resolveItem } from './order-by.js';

/**
 * DISTINCT and DISTINCT ON across shards. Each shard removes its own duplicates; pgshard removes those
 * between shards:
 * - DISTINCT with ORDER BY: the shards' ORDER BY is extended with every other output column, so equal
 *   rows arrive next to each other in the merged order and one row of memory suffices;
 * - DISTINCT ON (…) with ORDER BY: its expressions lead the ORDER BY, so a group's first row in the
 *   merged order is the one Postgres keeps;
 * - without ORDER BY: a set of the rows (or DISTINCT ON keys) seen so far.
 */

export type DistinctKind = 'none' | 'all' | 'on';

export function distinctKind(stmt: SelectStmt): DistinctKind {
  const d = stmt.distinctClause;
  if (d === undefined || d.length === 0) return 'none';
  return d.length === 1 && Object.keys(d[0]!).length === 0 ? 'all' : 'on';
}

/**
 * The distinct step of a row merge. `order` are the resolved sort keys; `columnOf` gives (or adds as
 * hidden) the shard column of a DISTINCT ON expression.
 */
export function planDistinct(
  stmt: SelectStmt,
  shard: SelectStmt,
  outputs: Outputs,
  order: SortKey[],
  hiddenAdded: boolean,
  columnOf: (node: Node) => number,
): { distinct: NonNullable<RowMergePlan['distinct']>; extraOrder: SortKey[] } {
  const kind = distinctKind(stmt);
  if (kind === 'all') {
    if (hiddenAdded) throw new Unsupported('for SELECT DISTINCT, ORDER BY expressions must appear in select list');
    if (order.length > 0 && outputs.star < 0) {
      const used = new Set(order.map((k) => k.column));
      const extra: SortKey[] = [];
      for (let i = 0; i < outputs.targets.length; i++) {
        if (used.has(i)) continue;
        extra.push({ column: i, desc: false, nullsFirst: false });
        shard.sortClause = [...(shard.sortClause ?? []), { SortBy: { node: intConst(i + 1), sortby_dir: 'SORTBY_DEFAULT', sortby_nulls: 'SORTBY_NULLS_DEFAULT' } }];
      }
      return { distinct: { columns: null, adjacent: true, orderKeys: order.length }, extraOrder: extra };
    }
    return { distinct: { columns: null, adjacent: false }, extraOrder: [] };
  }
  // DISTINCT ON
  const exprs = stmt.distinctClause!;
  if (order.length > 0) {
    if (order.length < exprs.length) throw new Unsupported('SELECT DISTINCT ON expressions must match initial ORDER BY expressions');
    return { distinct: { columns: order.slice(0, exprs.length).map((k) => k.column), adjacent: true }, extraOrder: [] };
  }
  const columns = exprs.map((e) => {
    const r = resolveItem(e, outputs);
    if (r.kind === 'position') return r.index;
    if (r.kind === 'target') {
      const c = outputs.columnOf(r.index);
      if (c !== undefined) return c;
      return columnOf(outputs.targets[r.index]!.val!);
    }
    return columnOf(r.node);
  });
  return { distinct: { columns, adjacent: false }, extraOrder: [] };
}
