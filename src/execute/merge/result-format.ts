/**
 * The client's result formats (the Bind's result-format codes) applied to a merged result: the shards
 * answer in text, which the merge reads; columns the client asked for in binary are re-encoded
 * (src/execute/binary.ts) and the RowDescription says so.
 */
import { PgError, SqlState } from '../../protocol/errors.js';
import { binaryEncoder, type BinaryContext, type BinaryEncoder } from '../binary.js';
import { buildRowDescription, Row, type Field } from '../rows.js';
import { dataRowOf } from '../../protocol/messages.js';

/** Format code per column from a Bind's result-format section (count, then codes), as Postgres reads it. */
export function resultFormats(section: Buffer, columns: number): number[] {
  const n = section.length >= 2 ? section.readInt16BE(0) : 0;
  const code = (i: number): number => section.readInt16BE(2 + i * 2);
  if (n === 0) return new Array<number>(columns).fill(0);
  if (n === 1) return new Array<number>(columns).fill(code(0));
  if (n !== columns) throw new PgError(SqlState.ProtocolViolation, `bind message has ${n} result formats but query has ${columns} columns`);
  return Array.from({ length: columns }, (_, i) => code(i));
}

export class ResultFormatter {
  private constructor(
    private readonly fields: Field[],
    private readonly encoders: (BinaryEncoder | null)[],
  ) {}

  /** A formatter for the client's columns, or null when every column is text (rows pass as they are). */
  static forClient(section: Buffer | null, fields: Field[], ctx: BinaryContext): ResultFormatter | null {
    if (section === null) return null;
    const formats = resultFormats(section, fields.length);
    if (formats.every((f) => f === 0)) return null;
    for (const f of formats) if (f !== 0 && f !== 1) throw new PgError(SqlState.ProtocolViolation, `unsupported format code: ${f}`);
    const encoders = fields.map((f, i) => (formats[i] === 1 ? binaryEncoder(f.typeOid, ctx) : null));
    return new ResultFormatter(fields.map((f, i) => ({ ...f, format: formats[i]! })), encoders);
  }

  rowDescription(): Buffer {
    return buildRowDescription(this.fields);
  }

  /** A DataRow of the client's columns in text → the same row in the client's formats. */
  row(msg: Buffer): Buffer {
    const r = new Row(msg, 0, msg.length);
    const values: (Buffer | null)[] = [];
    for (let i = 0; i < r.length; i++) {
      const v = r.field(i);
      const enc = this.encoders[i];
      values.push(v === null || !enc ? v : enc(v));
    }
    return dataRowOf(values);
  }
}

/** extra_float_digits from the client's SET statements (absent: the default, 1). */
export function exactFloats(vars: ReadonlyMap<string, string>): boolean {
  const set = vars.get('extra_float_digits');
  if (set === undefined) return true;
  const m = /(-?\d+)\s*'?\s*;?\s*$/.exec(set);
  return m !== null && Number(m[1]) >= 1;
}
