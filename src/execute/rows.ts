/**
 * RowDescription and DataRow messages as pgshard reads and writes them while merging: fields are located
 * in the message bytes (no decoding of values pgshard does not look at), and rows lose pgshard's hidden
 * columns before they reach the client.
 */
import { Backend } from '../protocol/codes.js';

export interface Field {
  name: string;
  tableOid: number;
  column: number;
  typeOid: number;
  typeLen: number;
  typmod: number;
  format: number;
}

/** The fields of a RowDescription message (buf[start] is its type byte), with the byte end of each. */
export function readRowDescription(buf: Buffer, start: number): { fields: Field[]; ends: number[] } {
  const n = buf.readInt16BE(start + 5);
  const fields: Field[] = [];
  const ends: number[] = [];
  let p = start + 7;
  for (let i = 0; i < n; i++) {
    const z = buf.indexOf(0, p);
    const name = buf.toString('utf8', p, z);
    p = z + 1;
    fields.push({
      name,
      tableOid: buf.readUInt32BE(p),
      column: buf.readInt16BE(p + 4),
      typeOid: buf.readUInt32BE(p + 6),
      typeLen: buf.readInt16BE(p + 10),
      typmod: buf.readInt32BE(p + 12),
      format: buf.readInt16BE(p + 16),
    });
    p += 18;
    ends.push(p - start);
  }
  return { fields, ends };
}

/** Same columns as far as a client can tell from the data: names, types, type modifiers, formats (table OIDs may differ by shard). */
export function sameColumns(a: Field[], b: Field[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((f, i) => {
    const g = b[i]!;
    return f.name === g.name && f.typeOid === g.typeOid && f.typmod === g.typmod && f.format === g.format && f.typeLen === g.typeLen;
  });
}

/** A RowDescription with only the first `n` fields of `rd` (a whole message). */
export function truncateRowDescription(rd: Buffer, ends: number[], n: number): Buffer {
  if (n >= ends.length) return rd;
  const len = n === 0 ? 7 : ends[n - 1]!;
  const out = Buffer.allocUnsafe(len);
  rd.copy(out, 0, 0, len);
  out.writeInt32BE(len - 1, 1);
  out.writeInt16BE(n, 5);
  return out;
}

/** A RowDescription built from fields (for merges that compute their own columns). */
export function buildRowDescription(fields: Field[]): Buffer {
  const names = fields.map((f) => Buffer.from(f.name + '\0', 'utf8'));
  const len = 4 + 2 + names.reduce((a, n) => a + n.length + 18, 0);
  const out = Buffer.allocUnsafe(1 + len);
  out[0] = Backend.RowDescription;
  out.writeInt32BE(len, 1);
  out.writeInt16BE(fields.length, 5);
  let o = 7;
  fields.forEach((f, i) => {
    o += names[i]!.copy(out, o);
    out.writeUInt32BE(f.tableOid, o);
    out.writeInt16BE(f.column, o + 4);
    out.writeUInt32BE(f.typeOid, o + 6);
    out.writeInt16BE(f.typeLen, o + 10);
    out.writeInt32BE(f.typmod, o + 12);
    out.writeInt16BE(f.format, o + 16);
    o += 18;
  });
  return out;
}

/**
 * A DataRow held by pgshard: the message bytes (a view into the network chunk it arrived in) and the
 * offset of each field's length word, found once.
 */
export class Row {
  readonly offsets: Int32Array;
  /** Decoded sort keys, filled once by the merge that orders this row. */
  sortKeys: unknown[] | undefined;
  constructor(
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
  ) {
    const n = buf.readInt16BE(start + 5);
    this.offsets = new Int32Array(n);
    let p = start + 7;
    for (let i = 0; i < n; i++) {
      this.offsets[i] = p;
      const len = buf.readInt32BE(p);
      p += 4 + (len > 0 ? len : 0);
    }
  }

  get length(): number {
    return this.offsets.length;
  }

  /** The bytes of field i, or null for SQL NULL. */
  field(i: number): Buffer | null {
    const p = this.offsets[i]!;
    const len = this.buf.readInt32BE(p);
    return len < 0 ? null : this.buf.subarray(p + 4, p + 4 + len);
  }

  text(i: number): string | null {
    const f = this.field(i);
    return f === null ? null : f.toString('utf8');
  }

  /** The whole message, or a new DataRow with only the first `n` fields. */
  message(n: number): Buffer {
    if (n >= this.offsets.length) return this.buf.subarray(this.start, this.end);
    const cut = n === 0 ? this.start + 7 : this.offsets[n]!;
    const len = cut - this.start;
    const out = Buffer.allocUnsafe(len);
    this.buf.copy(out, 0, this.start, cut);
    out.writeInt32BE(len - 1, 1);
    out.writeInt16BE(n, 5);
    return out;
  }
}
