/**
 * Builders for the backend messages pgshard writes itself (its own errors, authentication, answers to
 * statements it handles locally), and small decoders for the few messages it must read.
 */
import type { TxStatus } from './codes.js';

function msg(type: number, bodyLen: number): Buffer {
  const b = Buffer.allocUnsafe(1 + 4 + bodyLen);
  b[0] = type;
  b.writeInt32BE(4 + bodyLen, 1);
  return b;
}

function cstrings(type: number, parts: string[]): Buffer {
  const bufs = parts.map((p) => Buffer.from(p + '\0', 'utf8'));
  const len = bufs.reduce((a, b) => a + b.length, 0);
  const out = msg(type, len);
  let o = 5;
  for (const b of bufs) o += b.copy(out, o);
  return out;
}

const RFQ: Record<TxStatus, Buffer> = {
  I: Buffer.from([0x5a, 0, 0, 0, 5, 0x49]),
  T: Buffer.from([0x5a, 0, 0, 0, 5, 0x54]),
  E: Buffer.from([0x5a, 0, 0, 0, 5, 0x45]),
};
export const readyForQuery = (s: TxStatus): Buffer => RFQ[s];
export const parseComplete = Buffer.from([0x31, 0, 0, 0, 4]);
export const bindComplete = Buffer.from([0x32, 0, 0, 0, 4]);
export const closeComplete = Buffer.from([0x33, 0, 0, 0, 4]);
export const noData = Buffer.from([0x6e, 0, 0, 0, 4]);
export const emptyQueryResponse = Buffer.from([0x49, 0, 0, 0, 4]);
export const authenticationOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
export const authenticationCleartext = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]);

export function authenticationMD5(salt: Buffer): Buffer {
  const b = msg(0x52, 8);
  b.writeInt32BE(5, 5);
  salt.copy(b, 9, 0, 4);
  return b;
}

export function authenticationSASL(mechanisms: string[]): Buffer {
  const names = Buffer.from(mechanisms.map((m) => m + '\0').join('') + '\0', 'utf8');
  const b = msg(0x52, 4 + names.length);
  b.writeInt32BE(10, 5);
  names.copy(b, 9);
  return b;
}

function saslData(code: number, data: string): Buffer {
  const d = Buffer.from(data, 'utf8');
  const b = msg(0x52, 4 + d.length);
  b.writeInt32BE(code, 5);
  d.copy(b, 9);
  return b;
}
export const authenticationSASLContinue = (data: string): Buffer => saslData(11, data);
export const authenticationSASLFinal = (data: string): Buffer => saslData(12, data);

export function parameterStatus(name: string, value: string): Buffer {
  return cstrings(0x53, [name, value]);
}

export function backendKeyData(pid: number, secret: number): Buffer {
  const b = msg(0x4b, 8);
  b.writeInt32BE(pid, 5);
  b.writeInt32BE(secret, 9);
  return b;
}

export function commandComplete(tag: string): Buffer {
  return cstrings(0x43, [tag]);
}

export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function noticeLike(type: number, f: ErrorFields): Buffer {
  const parts: Buffer[] = [];
  const field = (code: string, v: string | undefined) => {
    if (v !== undefined) parts.push(Buffer.from(code + v + '\0', 'utf8'));
  };
  field('S', f.severity);
  field('V', f.severity);
  field('C', f.code);
  field('M', f.message);
  field('D', f.detail);
  field('H', f.hint);
  parts.push(Buffer.from([0]));
  const len = parts.reduce((a, b) => a + b.length, 0);
  const out = msg(type, len);
  let o = 5;
  for (const p of parts) o += p.copy(out, o);
  return out;
}
export const errorResponse = (f: ErrorFields): Buffer => noticeLike(0x45, f);
export const noticeResponse = (f: ErrorFields): Buffer => noticeLike(0x4e, f);

/** A RowDescription of text columns (for answers pgshard computes itself, such as SHOW in the console). */
export function rowDescription(cols: { name: string; typeOid?: number; typeLen?: number }[]): Buffer {
  const names = cols.map((c) => Buffer.from(c.name + '\0', 'utf8'));
  const len = 2 + names.reduce((a, n) => a + n.length + 18, 0);
  const b = msg(0x54, len);
  b.writeInt16BE(cols.length, 5);
  let o = 7;
  cols.forEach((c, i) => {
    o += names[i]!.copy(b, o);
    b.writeInt32BE(0, o); // table oid
    b.writeInt16BE(0, o + 4); // column number
    b.writeInt32BE(c.typeOid ?? 25, o + 6);
    b.writeInt16BE(c.typeLen ?? -1, o + 10);
    b.writeInt32BE(-1, o + 12); // typmod
    b.writeInt16BE(0, o + 16); // text format
    o += 18;
  });
  return b;
}

export function dataRow(values: (string | null)[]): Buffer {
  return dataRowOf(values.map((v) => (v === null ? null : Buffer.from(v, 'utf8'))));
}

/** A DataRow from field bytes (null: SQL NULL). */
export function dataRowOf(values: readonly (Buffer | null)[]): Buffer {
  const len = 2 + values.reduce((a, v) => a + 4 + (v ? v.length : 0), 0);
  const b = msg(0x44, len);
  b.writeInt16BE(values.length, 5);
  writeValues(b, 7, values);
  return b;
}

/** Writes length-prefixed values (-1 for NULL) as DataRow and Bind carry them; returns the offset after them. */
export function writeValues(out: Buffer, offset: number, values: readonly (Buffer | null)[]): number {
  let o = offset;
  for (const v of values) {
    if (v === null) {
      out.writeInt32BE(-1, o);
      o += 4;
    } else {
      out.writeInt32BE(v.length, o);
      o += 4 + v.copy(out, o + 4);
    }
  }
  return o;
}

/** Reads a NUL-terminated string at `pos`; returns it and the position after the NUL. */
export function readCString(buf: Buffer, pos: number, end = buf.length): [string, number] {
  const z = buf.indexOf(0, pos);
  if (z < 0 || z >= end) throw new RangeError('unterminated string in message');
  return [buf.toString('utf8', pos, z), z + 1];
}

/** The fields of an ErrorResponse/NoticeResponse message (buf[start] is its type byte). */
export function decodeErrorFields(buf: Buffer, start: number, end: number): Record<string, string> {
  const out: Record<string, string> = {};
  let p = start + 5;
  while (p < end && buf[p] !== 0) {
    const code = String.fromCharCode(buf[p]!);
    const [v, next] = readCString(buf, p + 1, end);
    out[code] = v;
    p = next;
  }
  return out;
}

/** The tag of a CommandComplete message. */
export function decodeCommandTag(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start + 5, end - 1);
}

/** A frontend Query message (for statements pgshard itself sends to a backend). */
export function queryMessage(text: string): Buffer {
  const len = 4 + Buffer.byteLength(text) + 1;
  const b = Buffer.allocUnsafe(1 + len);
  b[0] = 0x51;
  b.writeInt32BE(len, 1);
  b.write(text, 5);
  b[len] = 0;
  return b;
}
