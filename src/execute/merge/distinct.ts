/**
 * Duplicate removal across shards (DISTINCT, DISTINCT ON, UNION). Adjacent: the merged order puts equal
 * rows next to each other, so only the last row's key is kept. Hashed: the keys of every row passed so
 * far (memory grows with the distinct rows, as Postgres's own HashAggregate). Keys use each type's
 * equality (src/execute/values.ts), not the printed text: 1.5 = 1.50, -0 = 0, NaN = NaN.
 */
import type { Field, Row } from '../rows.js';
import { absoluteColumn } from './order-by.js';
import { equalityKey, type ValueContext } from '../values.js';

export class Deduper {
  private readonly keyFns: ((raw: Buffer) => string)[];
  private readonly columns: number[];
  private last: string | null = null;
  private readonly seen = new Set<string>();

  constructor(
    columns: number[] | null,
    visible: number,
    fields: readonly Field[],
    ctx: ValueContext,
    private readonly adjacent: boolean,
  ) {
    this.columns = columns === null ? Array.from({ length: visible }, (_, i) => i) : columns.map((c) => absoluteColumn(c, fields.length));
    this.keyFns = this.columns.map((c) => equalityKey(fields[c]!.typeOid, ctx));
  }

  keyOf(row: Row): string {
    let k = '';
    for (let i = 0; i < this.columns.length; i++) {
      const f = row.field(this.columns[i]!);
      if (f === null) k += '\u0000N';
      else {
        const v = this.keyFns[i]!(f);
        k += `\u0000${v.length}:${v}`;
      }
    }
    return k;
  }

  /** True when the row is new (to be passed on). */
  admit(row: Row): boolean {
    const k = this.keyOf(row);
    if (this.adjacent) {
      if (k === this.last) return false;
      this.last = k;
      return true;
    }
    if (this.seen.has(k)) return false;
    this.seen.add(k);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
