import type { KeyType } from '../config/schema.js';
import { PgError, SqlState } from '../protocol/errors.js';
import { canonicalFromParam, canonicalFromText } from '../routing/canonical.js';
import { formatNumeric } from './numeric.js';

/**
 * The shard key of a binary COPY tuple: the key field holds the column type's binary send format, so
 * reading it needs the column's type (its base type, for a domain), not only the table's key_type. The
 * result is the canonical form the router hashes for that key_type, so a row reaches the same shard
 * whether it arrives as a binary COPY, a text COPY or an INSERT:
 *
 * | key_type        | column type            | read as                                                  |
 * |-----------------|------------------------|----------------------------------------------------------|
 * | `bigint`/`int`  | int2, int4, int8       | the big-endian integer                                   |
 * |                 | numeric                | numeric_recv's value, printed as numeric_out prints it   |
 * |                 | text, varchar          | the UTF-8 text, read as a text COPY field would be       |
 * | `uuid`          | uuid                   | the 16 bytes                                             |
 * |                 | text, varchar          | the UTF-8 text                                           |
 * | `text`          | text, varchar          | the UTF-8 bytes                                          |
 *
 * Any other column type (char(n), whose binary form carries its padding, floats, dates, …) cannot be
 * canonicalised exactly and is refused with 0A000 before any row is sent.
 */

export const TypeOid = {
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  bpchar: 1042,
  varchar: 1043,
  numeric: 1700,
  uuid: 2950,
} as const;

export type BinaryKeyReader = (field: Buffer) => Uint8Array;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A field shorter than its type's binary form: pq_getmsg* runs out of data. */
function insufficient(): PgError {
  return new PgError('08P01', 'insufficient data left in message');
}

/** A field longer than its type's binary form (CopyReadBinaryAttribute's check after the receive function). */
function trailingBytes(): PgError {
  return new PgError('22P03', 'incorrect binary data format');
}

function exactLength(field: Buffer, n: number): void {
  if (field.length < n) throw insufficient();
  if (field.length > n) throw trailingBytes();
}

function text(field: Buffer): string {
  try {
    return utf8.decode(field);
  } catch {
    let i = 0;
    while (i < field.length && field[i]! < 0x80) i++;
    throw new PgError('22021', `invalid byte sequence for encoding "UTF8": 0x${(field[i] ?? 0).toString(16).padStart(2, '0')}`);
  }
}

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;
const NUMERIC_DSCALE_MASK = 0x3fff;

function badNumeric(what: string): PgError {
  return new PgError('22P03', `invalid ${what} in external "numeric" value`);
}

/** numeric_recv followed by numeric_out: the text Postgres would store and print for this value. */
export function numericFromBinary(field: Buffer): string {
  if (field.length < 8) throw insufficient();
  const ndigits = field.readInt16BE(0);
  const weight = field.readInt16BE(2);
  const sign = field.readUInt16BE(4);
  const dscale = field.readUInt16BE(6);
  if (ndigits < 0) throw badNumeric('length');
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG && sign !== NUMERIC_NAN && sign !== NUMERIC_PINF && sign !== NUMERIC_NINF) throw badNumeric('sign');
  if ((dscale & NUMERIC_DSCALE_MASK) !== dscale) throw badNumeric('scale');
  if (field.length < 8 + 2 * ndigits) throw insufficient();
  let n = 0n;
  for (let i = 0; i < ndigits; i++) {
    const d = field.readInt16BE(8 + 2 * i);
    if (d < 0 || d >= 10000) throw badNumeric('digit');
    n = n * 10000n + BigInt(d);
  }
  if (field.length > 8 + 2 * ndigits) throw trailingBytes();
  if (sign === NUMERIC_NAN) return 'NaN';
  if (sign === NUMERIC_PINF) return 'Infinity';
  if (sign === NUMERIC_NINF) return '-Infinity';
  // value = n × 10000^(weight − ndigits + 1); at display scale dscale (digits beyond it truncated, as numeric_recv does).
  const shift = 4 * (weight - ndigits + 1) + dscale;
  let units = shift >= 0 ? n * 10n ** BigInt(shift) : n / 10n ** BigInt(-shift);
  if (sign === NUMERIC_NEG) units = -units;
  return formatNumeric({ special: null, units, scale: dscale });
}

/**
 * How to read the key of a binary COPY into `table`, whose key column `column` has type `typeOid`
 * (`typeName` for messages); a PgError (0A000) when the type cannot be read exactly.
 */
export function binaryKeyReader(keyType: KeyType, typeOid: number, typeName: string, table: string, column: string): BinaryKeyReader | PgError {
  const textual = typeOid === TypeOid.text || typeOid === TypeOid.varchar;
  switch (keyType) {
    case 'bigint':
    case 'int':
      if (typeOid === TypeOid.int2 || typeOid === TypeOid.int4 || typeOid === TypeOid.int8) {
        const size = typeOid === TypeOid.int2 ? 2 : typeOid === TypeOid.int4 ? 4 : 8;
        return (f) => {
          exactLength(f, size);
          return canonicalFromParam(keyType, f, 1);
        };
      }
      if (typeOid === TypeOid.numeric) return (f) => canonicalFromText(keyType, numericFromBinary(f));
      if (textual) return (f) => canonicalFromText(keyType, text(f));
      break;
    case 'uuid':
      if (typeOid === TypeOid.uuid)
        return (f) => {
          exactLength(f, 16);
          return canonicalFromParam('uuid', f, 1);
        };
      if (textual) return (f) => canonicalFromText('uuid', text(f));
      break;
    case 'text':
      if (textual)
        return (f) => {
          text(f); // textrecv verifies the encoding; so does the text COPY path
          return f;
        };
      break;
  }
  return new PgError(
    SqlState.FeatureNotSupported,
    `COPY FROM in binary format into sharded table "${table}" is not supported for its shard key column "${column}" of type ${typeName} (key_type ${keyType})`,
    { hint: 'Use COPY in text or CSV format for this table.' },
  );
}
