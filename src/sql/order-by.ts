import type { Node, ResTarget, SortBy } from 'libpg-query';
import { namesOf, operatorName } from './ast.js';
import { outputName } from './rewrite-names.js';
import { sameTree, Unsupported, walk } from './rewrite.js';

/**
 * ORDER BY across shards: which column of a shard row each sort item compares, following Postgres's
 * resolution rules (parse_clause.c, findTargetlistEntrySQL92/SQL99): an integer is an output position; a
 * bare name is an output column name if one has it; anything else is an expression, matched to an equal
 * output expression or else added as a hidden column (appended, stripped before the client sees a row).
 */

/** The client's output columns, as far as analysis knows them. */
export class Outputs {
  /** Index of the first `*` in the target list, or -1: positions after a `*` are unknown until run time. */
  readonly star: number;

  constructor(readonly targets: ResTarget[]) {
    this.star = targets.findIndex((t) => t.val !== undefined && 'ColumnRef' in t.val && (t.val.ColumnRef.fields ?? []).some((f) => 'A_Star' in f));
  }

  /** The shard-row column of target i, when it can be known before run time. */
  columnOf(i: number): number | undefined {
    return this.star < 0 || i < this.star ? i : undefined;
  }

  /** Targets whose output name is `name`; undefined when a target's name cannot be worked out. */
  named(name: string): number[] | undefined {
    const out: number[] = [];
    for (let i = 0; i < this.targets.length; i++) {
      if (i === this.star) continue;
      const n = outputName(this.targets[i]!);
      if (n === undefined) return undefined;
      if (n === name) out.push(i);
    }
    return out;
  }

  /** A target whose expression is the same tree as `node`. */
  equalTo(node: Node): number | undefined {
    const i = this.targets.findIndex((t) => t.val !== undefined && sameTree(t.val, node));
    return i >= 0 ? i : undefined;
  }
}

export type Resolved = { kind: 'target'; index: number } | { kind: 'position'; index: number } | { kind: 'expr'; node: Node };

/** What an ORDER BY (or DISTINCT ON) item refers to. */
export function resolveItem(node: Node, outputs: Outputs): Resolved {
  if ('A_Const' in node) {
    const c = node.A_Const;
    if (c.ival === undefined) throw new Unsupported('a non-integer constant in ORDER BY is not supported across shards');
    const p = c.ival.ival ?? 0;
    if (p < 1) throw new Unsupported(`ORDER BY position ${p} is not in the select list`);
    if (outputs.star < 0 && p > outputs.targets.length) throw new Unsupported(`ORDER BY position ${p} is not in the select list`);
    return { kind: 'position', index: p - 1 };
  }
  if ('ColumnRef' in node) {
    const names = namesOf(node.ColumnRef.fields);
    if (names?.length === 1) {
      const hits = outputs.named(names[0]!);
      if (hits === undefined) throw new Unsupported(`pgshard cannot tell which output column "${names[0]}" names in ORDER BY across shards`, 'Give the select-list expressions aliases.');
      if (hits.length > 0) {
        const first = hits[0]!;
        if (hits.some((h) => !sameTree(outputs.targets[h]!.val, outputs.targets[first]!.val))) throw new Unsupported(`ORDER BY "${names[0]}" is ambiguous`);
        return { kind: 'target', index: first };
      }
    }
  }
  const eq = outputs.equalTo(node);
  if (eq !== undefined) return { kind: 'target', index: eq };
  return { kind: 'expr', node };
}

export interface SortItem {
  resolved: Resolved;
  desc: boolean;
  nullsFirst: boolean;
  byteOrder: boolean;
}

/** Direction, NULLS placement and collation of a SortBy. */
export function sortItem(s: SortBy, outputs: Outputs): SortItem {
  let desc: boolean;
  switch (s.sortby_dir ?? 'SORTBY_DEFAULT') {
    case 'SORTBY_DEFAULT':
    case 'SORTBY_ASC':
      desc = false;
      break;
    case 'SORTBY_DESC':
      desc = true;
      break;
    case 'SORTBY_USING': {
      const op = operatorName(s.useOp);
      if (op === '<') desc = false;
      else if (op === '>') desc = true;
      else throw new Unsupported(`ORDER BY … USING ${op ?? '?'} is not supported across shards`);
      break;
    }
    default:
      throw new Unsupported('this ORDER BY direction is not supported across shards');
  }
  const nulls = s.sortby_nulls ?? 'SORTBY_NULLS_DEFAULT';
  const nullsFirst = nulls === 'SORTBY_NULLS_FIRST' ? true : nulls === 'SORTBY_NULLS_LAST' ? false : desc;
  if (s.node === undefined) throw new Unsupported('empty ORDER BY item');
  const resolved = resolveItem(s.node, outputs);
  const known = resolved.kind === 'target' || (resolved.kind === 'position' && outputs.star < 0) ? outputs.targets[resolved.index] : undefined;
  const expr = resolved.kind === 'expr' ? resolved.node : known?.val;
  const byteOrder = expr !== undefined ? collationOf(expr) : false;
  return { resolved, desc, nullsFirst, byteOrder };
}

/**
 * True when the expression carries COLLATE "C" / "POSIX" (bytes order whatever the database default);
 * false when it carries no COLLATE; any other collation cannot be reproduced by pgshard.
 */
export function collationOf(expr: Node | undefined): boolean {
  walk(expr, (n) => {
    if ('CollateClause' in n) {
      const names = namesOf(n.CollateClause.collname) ?? [];
      const name = names[names.length - 1];
      if (!((names.length === 1 || names[0] === 'pg_catalog') && (name === 'C' || name === 'POSIX' || name === 'ucs_basic')))
        throw new Unsupported(`ORDER BY under collation "${names.join('.')}" is not supported across shards`, 'Sort with COLLATE "C", or under the database collation when it is "C".');
    }
  });
  // Only a COLLATE on the whole expression surely gives it that collation: one inside (a CASE condition,
  // a comparison's operand) may leave the result under the database's collation.
  return expr !== undefined && 'CollateClause' in expr;
}
