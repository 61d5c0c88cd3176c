/**
 * The client's own prepared statements. In transaction pooling a client's statements must survive the
 * backend connection changing under it, so pgshard keeps them here and prepares them, under names of its
 * own, on whichever backend serves the client next. Statements are keyed by parameter types + text, so
 * clients that prepare the same statement share one server-side statement per backend.
 */
import type { Analysis } from '../sql/types.js';

export interface ClientStatement {
  /** types + text: the identity of the statement on a backend. */
  key: string;
  text: string;
  /** The Parse message's parameter type OIDs section, kept as bytes to rebuild Parse messages. */
  paramTypes: Buffer;
  analysis: Analysis;
}

export function statementKey(text: string, paramTypes: Buffer): string {
  return paramTypes.length <= 2 ? text : paramTypes.toString('hex') + '|' + text;
}

/** Builds a Parse message for a statement under a server-side name. */
export function buildParse(name: string, st: ClientStatement): Buffer {
  const nameLen = Buffer.byteLength(name);
  const textLen = Buffer.byteLength(st.text);
  const len = 4 + nameLen + 1 + textLen + 1 + st.paramTypes.length;
  const b = Buffer.allocUnsafe(1 + len);
  b[0] = 0x50;
  b.writeInt32BE(len, 1);
  let o = 5;
  o += b.write(name, o);
  b[o++] = 0;
  o += b.write(st.text, o);
  b[o++] = 0;
  st.paramTypes.copy(b, o);
  return b;
}

/**
 * Rewrites the statement name inside a Bind or Describe/Close('S') message. `nameStart`/`nameEnd` delimit
 * the old name (without its NUL) inside `buf`; everything else is copied as it is.
 */
export function replaceName(buf: Buffer, start: number, end: number, nameStart: number, nameEnd: number, newName: string): Buffer {
  const newLen = Buffer.byteLength(newName);
  const total = end - start - (nameEnd - nameStart) + newLen;
  const b = Buffer.allocUnsafe(total);
  let o = buf.copy(b, 0, start, nameStart);
  o += b.write(newName, o);
  buf.copy(b, o, nameEnd, end);
  b.writeInt32BE(total - 1, 1);
  return b;
}
