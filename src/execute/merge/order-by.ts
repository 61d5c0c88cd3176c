/**
 * The order of a cross-shard ORDER BY: compares rows on the plan's sort keys with each column type's
 * Postgres comparison (src/execute/values.ts), NULLS FIRST/LAST and DESC as written. Keys are decoded
 * once per row. The k-way merge itself (one head row per shard, the smallest goes first) lives in
 * scatter.ts, which owns the shards' streams.
 */
import type { SortKey } from '../../sql/types.js';
import type { Field, Row } from '../rows.js';
import { orderCodec, type Codec, type ValueContext } from '../values.js';

export interface ResolvedKey {
  column: number;
  codec: Codec;
  desc: boolean;
  nullsFirst: boolean;
}

/** Shard-row column of a plan column (negative: from the end). */
export function absoluteColumn(c: number, width: number): number {
  return c < 0 ? width + c : c;
}

export function resolveKeys(keys: readonly SortKey[], fields: readonly Field[], ctx: ValueContext): ResolvedKey[] {
  return keys.map((k) => {
    const column = absoluteColumn(k.column, fields.length);
    const f = fields[column];
    if (f === undefined) throw new RangeError(`sort column ${k.column} is outside the row (${fields.length} columns)`);
    const codec = orderCodec(f.typeOid, k.byteOrder ? { ...ctx, textByteOrder: true } : ctx);
    return { column, codec, desc: k.desc, nullsFirst: k.nullsFirst };
  });
}

/** Compares two decoded values of one key (null = SQL NULL). */
export function compareKey(k: { codec: Codec; desc: boolean; nullsFirst: boolean }, a: unknown, b: unknown): number {
  if (a === null || b === null) {
    if (a === b) return 0;
    return a === null ? (k.nullsFirst ? -1 : 1) : k.nullsFirst ? 1 : -1;
  }
  const c = k.codec.compare(a, b);
  return k.desc ? -c : c;
}

export class RowOrder {
  constructor(readonly keys: ResolvedKey[]) {}

  keysOf(row: Row): unknown[] {
    let ks = row.sortKeys;
    if (ks === undefined) {
      ks = this.keys.map((k) => {
        const f = row.field(k.column);
        return f === null ? null : k.codec.key(f);
      });
      row.sortKeys = ks;
    }
    return ks;
  }

  /** Compares on the first `n` keys (all by default). */
  compare(a: Row, b: Row, n = this.keys.length): number {
    const ka = this.keysOf(a);
    const kb = this.keysOf(b);
    for (let i = 0; i < n; i++) {
      const c = compareKey(this.keys[i]!, ka[i], kb[i]);
      if (c !== 0) return c;
    }
    return 0;
  }
}
