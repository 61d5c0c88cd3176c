import type { Node } from 'libpg-query';
import { stringOf } from './ast.js';

/**
 * Name resolution for column references, as far as routing needs it: which sharded occurrence's shard key
 * (if any) a column reference means. Columns other than shard keys are unknown to pgshard and resolve to
 * nothing, which only ever costs precision (a wider route), never correctness.
 */

/** A FROM item visible by name in a query block. */
export interface RelEntry {
  /** The name qualified references use: the alias, else the table or CTE name; null for an unnamed sub-SELECT. */
  readonly name: string | null;
  /** Shard-key columns visible through this item → occurrence. */
  readonly keys: ReadonlyMap<string, number>;
}

export interface Resolved {
  /** Usually one occurrence; two for a column merged by JOIN ... USING / NATURAL JOIN. */
  readonly occs: readonly number[];
  /** True when the column belongs to an enclosing query (a correlated reference). */
  readonly outer: boolean;
  /** A column merged by USING / NATURAL JOIN (after an outer join, it may come from either side). */
  readonly merged?: boolean;
}

export interface CteDefinition {
  readonly name: string;
  readonly query: Node;
  readonly columnNames: string[];
  readonly recursive: boolean;
  /** Where the CTE body resolves names: the scope around the WITH, and the CTEs visible to it. */
  readonly scope: Scope | null;
  readonly ctes: CteScope;
  state: 'new' | 'busy' | 'done';
}

export class CteScope {
  readonly defs = new Map<string, CteDefinition>();
  constructor(readonly parent: CteScope | null) {}

  lookup(name: string): CteDefinition | undefined {
    for (let s: CteScope | null = this; s !== null; s = s.parent) {
      const d = s.defs.get(name);
      if (d !== undefined) return d;
    }
    return undefined;
  }
}

export class Scope {
  readonly entries: RelEntry[] = [];
  /** Column names merged by USING / NATURAL joins → the occurrences on both sides. */
  readonly merged = new Map<string, number[]>();

  constructor(
    readonly parent: Scope | null,
    readonly ctes: CteScope | null,
  ) {}

  add(entry: RelEntry): void {
    this.entries.push(entry);
  }

  /** Resolves `ColumnRef.fields` to shard-key occurrences, or null when it is not (known to be) a shard key. */
  resolve(fields: Node[] | undefined): Resolved | null {
    if (fields === undefined || fields.length === 0) return null;
    const names: string[] = [];
    for (const f of fields) {
      const s = stringOf(f);
      if (s === undefined) return null; // `*` or a subscript
      names.push(s);
    }
    const column = names[names.length - 1]!;
    if (names.length === 1) return this.resolveUnqualified(column);
    const relation = names[names.length - 2]!;
    let outer = false;
    for (let s: Scope | null = this; s !== null; s = s.parent, outer = true) {
      const entry = s.entries.find((e) => e.name === relation);
      if (entry === undefined) continue;
      const occ = entry.keys.get(column);
      return occ === undefined ? null : { occs: [occ], outer };
    }
    return null;
  }

  /**
   * An unqualified column is a shard key when exactly one item of this block has a shard key of that name:
   * that item certainly has the column, so any other item having it too would make Postgres reject the
   * statement as ambiguous. Names not found in this block are left unresolved: they could be an unknown
   * column of this block as well as an outer reference.
   */
  private resolveUnqualified(column: string): Resolved | null {
    const merged = this.merged.get(column);
    if (merged !== undefined) return { occs: merged, outer: false, merged: true };
    let found: number | undefined;
    for (const e of this.entries) {
      const occ = e.keys.get(column);
      if (occ === undefined) continue;
      if (found !== undefined) return null;
      found = occ;
    }
    return found === undefined ? null : { occs: [found], outer: false };
  }
}
