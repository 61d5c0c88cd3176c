import type { KeyType } from '../config/schema.js';
import { PgError } from '../protocol/errors.js';

/**
 * Canonical key forms
 * ===================
 *
 * A shard key is hashed as the bytes of its *canonical form*, so that every way a client can write the
 * same value reaches the same shard. The canonical form depends only on the table's `key_type`:
 *
 * | key_type       | canonical form (hashed as these bytes)                                           |
 * |----------------|----------------------------------------------------------------------------------|
 * | `bigint`/`int` | the integer in decimal, UTF-8: no `+`, no leading zeros, `-` for negatives, `0`  |
 * |                | for zero. `42`, `'42'`, `'0042'`, `' +42 '`, `'4_2'`, `'0x2A'`, a text bind      |
 * |                | parameter `42`, and a binary bind parameter holding 42 as a big-endian int2,     |
 * |                | int4 or int8 (told apart by its length: 2, 4 or 8 bytes) all give the bytes `42`. |
 * | `uuid`         | 36 characters, lower-case hex with dashes: `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`.|
 * |                | Input is read as Postgres reads a uuid: upper case, `{…}` braces and missing or   |
 * |                | partial dashes (a dash after any group of four digits) are accepted. A binary   |
 * |                | bind parameter is the 16 raw bytes.                                              |
 * | `text`         | the value's UTF-8 bytes exactly as given (text and binary parameters alike).     |
 *
 * Integers are read exactly as Postgres's int4in/int8in read them (surrounding whitespace, a sign,
 * `_` digit separators, `0x`/`0o`/`0b` prefixes); text is normalised as digits and binary int8 through
 * BigInt beyond 2^53, never rounded through a JS number, so 9007199254740993, 2^63-1 and -2^63 keep every
 * digit. A value Postgres would reject is
 * rejected here with the error Postgres would give: SQLSTATE 22P02 `invalid input syntax for type
 * bigint: "abc"`, or 22003 `value "…" is out of range for type integer` beyond the key type's range
 * (`int` is int4, `bigint` is int8). A binary parameter of the wrong length is 22P03.
 *
 * Binary parameters are decoded as the key column's own type (which is what Postgres infers for
 * `key = $1` when the client does not declare the parameter's type).
 */

/**
 * A shard-key value that cannot be read as the key type. A PgError, so it reaches the client as the
 * ErrorResponse Postgres itself would have sent; `sqlstate` is its `code`.
 */
export class KeyValueError extends PgError {
  override readonly name = 'KeyValueError';
  constructor(sqlstate: string, message: string, detail?: string, hint?: string) {
    super(sqlstate, message, { detail, hint });
  }

  get sqlstate(): string {
    return this.code;
  }
}

/** Postgres's name for the key type, as used in its error messages. */
export function pgTypeName(type: KeyType): string {
  return type === 'int' ? 'integer' : type;
}

/** The canonical bytes of a key written as text (a SQL literal's value, a CLI argument, an array element). */
export function canonicalFromText(type: KeyType, text: string): Uint8Array {
  switch (type) {
    case 'bigint':
    case 'int':
      return integerFromText(type, asciiBytes(text), text);
    case 'uuid':
      return uuidFromText(asciiBytes(text), text);
    case 'text':
      return utf8.encode(text);
  }
}

/**
 * The canonical bytes of a Bind parameter value. `format` is the parameter's format code (0 text,
 * 1 binary). The result may be `value` itself (text keys, integers already in canonical form): hash it
 * before the Bind buffer is reused.
 */
export function canonicalFromParam(type: KeyType, value: Uint8Array, format: 0 | 1): Uint8Array {
  if (format === 0) {
    switch (type) {
      case 'bigint':
      case 'int':
        return integerFromText(type, value, value);
      case 'uuid':
        return uuidFromText(value, value);
      case 'text':
        return value;
    }
  }
  switch (type) {
    case 'bigint':
    case 'int':
      return integerFromBinary(type, value);
    case 'uuid':
      if (value.length !== 16) throw binaryFormatError('uuid', value.length, '16');
      return uuidFromBinary(value);
    case 'text':
      return value;
  }
}

/** The canonical form as a string (every canonical form is valid UTF-8 when its input was). */
export function canonicalToString(canonical: Uint8Array): string {
  return utf8Decoder.decode(canonical);
}

// ---------------------------------------------------------------------------------------------------------
// integers

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

const INT8_MAX = '9223372036854775807';
const INT8_MIN_ABS = '9223372036854775808';
const INT4_MAX = '2147483647';
const INT4_MIN_ABS = '2147483648';

const C_0 = 48;
const C_9 = 57;
const C_MINUS = 45;
const C_PLUS = 43;
const C_UNDERSCORE = 95;

/** C isspace() in the C locale, as Postgres's integer input uses. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/**
 * A string's UTF-16 code units as bytes, for the integer and uuid readers: ASCII maps to itself and
 * anything else to 0xFF, which those readers reject like any other stray character.
 */
function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c < 0x80 ? c : 0xff;
  }
  return out;
}

/** The original input for an error message: the string, or the parameter's bytes read as UTF-8. */
function shown(original: string | Uint8Array): string {
  return typeof original === 'string' ? original : utf8Decoder.decode(original);
}

function syntaxError(type: KeyType, original: string | Uint8Array): KeyValueError {
  return new KeyValueError('22P02', `invalid input syntax for type ${pgTypeName(type)}: "${shown(original)}"`);
}

function rangeError(type: KeyType, original: string | Uint8Array): KeyValueError {
  return new KeyValueError('22003', `value "${shown(original)}" is out of range for type ${pgTypeName(type)}`);
}

function binaryFormatError(type: string, got: number, expected: string): KeyValueError {
  return new KeyValueError(
    '22P03',
    'incorrect binary data format in bind parameter',
    `a binary ${type} key value is ${expected} bytes, got ${got}`,
  );
}

/**
 * Reads an integer the way pg_strtoint32/64 do and returns its canonical decimal bytes. A small hand loop
 * over bytes, as this runs on every text-format Bind of an integer key: input that is already canonical
 * (the usual `12345`) is returned as is, without a copy.
 */
function integerFromText(type: 'bigint' | 'int', s: Uint8Array, original: string | Uint8Array): Uint8Array {
  const n = s.length;
  let p = 0;
  while (p < n && isSpace(s[p]!)) p++;
  const lead = p;
  let neg = false;
  if (p < n && s[p] === C_MINUS) {
    neg = true;
    p++;
  } else if (p < n && s[p] === C_PLUS) p++;

  if (p + 1 < n && s[p] === C_0) {
    const x = s[p + 1]! | 0x20;
    if (x === 0x78 /* x */) return integerWithRadix(type, s, p + 2, 16, neg, original);
    if (x === 0x6f /* o */) return integerWithRadix(type, s, p + 2, 8, neg, original);
    if (x === 0x62 /* b */) return integerWithRadix(type, s, p + 2, 2, neg, original);
  }

  const firstDigit = p;
  let significant = -1; // index of the first non-zero digit
  let len = 0; // number of significant digits
  let underscores = false;
  while (p < n) {
    const c = s[p]!;
    if (c >= C_0 && c <= C_9) {
      if (significant < 0 && c !== C_0) significant = p;
      if (significant >= 0) len++;
      p++;
    } else if (c === C_UNDERSCORE) {
      if (p === firstDigit) throw syntaxError(type, original);
      p++;
      if (!(p < n && s[p]! >= C_0 && s[p]! <= C_9)) throw syntaxError(type, original);
      underscores = true;
    } else break;
  }
  if (p === firstDigit) throw syntaxError(type, original);
  const digitsEnd = p;
  while (p < n && isSpace(s[p]!)) p++;
  if (p !== n) throw syntaxError(type, original);

  if (len === 0) return n === 1 ? s : Uint8Array.of(C_0);
  const limit = type === 'int' ? (neg ? INT4_MIN_ABS : INT4_MAX) : neg ? INT8_MIN_ABS : INT8_MAX;
  if (len >= limit.length) {
    if (len > limit.length) throw rangeError(type, original);
    for (let q = significant, i = 0; i < len; q++) {
      if (s[q] === C_UNDERSCORE) continue;
      const d = s[q]! - limit.charCodeAt(i++);
      if (d > 0) throw rangeError(type, original);
      if (d < 0) break;
    }
  }
  // Already canonical: no whitespace, no '+', no leading zeros, no separators.
  if (lead === 0 && significant === firstDigit && digitsEnd === n && !underscores && (neg || firstDigit === 0)) return s;
  const out = new Uint8Array(neg ? len + 1 : len);
  let o = 0;
  if (neg) out[o++] = C_MINUS;
  for (let q = significant; q < digitsEnd; q++) if (s[q] !== C_UNDERSCORE) out[o++] = s[q]!;
  return out;
}

/** The rare `0x…`/`0o…`/`0b…` forms; `p` is just past the prefix. */
function integerWithRadix(
  type: 'bigint' | 'int',
  s: Uint8Array,
  p: number,
  radix: 16 | 8 | 2,
  neg: boolean,
  original: string | Uint8Array,
): Uint8Array {
  const n = s.length;
  const isDigit = (q: number): boolean => {
    if (q >= n) return false;
    const c = s[q]!;
    return radix === 16 ? hexValue(c) >= 0 : c >= C_0 && c < C_0 + radix;
  };
  const firstDigit = p;
  let digits = '';
  for (;;) {
    if (isDigit(p)) {
      digits += String.fromCharCode(s[p]!);
      p++;
    } else if (p < n && s[p] === C_UNDERSCORE) {
      // Postgres allows `0x_1`: here an underscore only has to be followed by a digit.
      if (!isDigit(++p)) throw syntaxError(type, original);
    } else break;
  }
  if (p === firstDigit) throw syntaxError(type, original);
  while (p < n && isSpace(s[p]!)) p++;
  if (p !== n) throw syntaxError(type, original);
  const prefix = radix === 16 ? '0x' : radix === 8 ? '0o' : '0b';
  let v = BigInt(prefix + digits);
  if (neg) v = -v;
  const bits = type === 'int' ? 32 : 64;
  if (v !== BigInt.asIntN(bits, v)) throw rangeError(type, original);
  return ascii(v.toString());
}

function integerFromBinary(type: 'bigint' | 'int', b: Uint8Array): Uint8Array {
  switch (b.length) {
    case 2:
      return ascii(String(((b[0]! << 24) | (b[1]! << 16)) >> 16));
    case 4:
      return ascii(String((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!));
    case 8: {
      const hi = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!; // signed
      const lo = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
      if (type === 'int') {
        // In int4 range exactly when the high word is the sign extension of the low word.
        if (hi !== lo >> 31) throw new KeyValueError('22003', 'integer out of range');
        return ascii(String(lo | 0));
      }
      // |v| < 2^53: exact as a number; beyond, through BigInt.
      if (hi >= -0x200000 && hi < 0x200000) return ascii(String(hi * 0x100000000 + lo));
      return ascii(((BigInt(hi) << 32n) | BigInt(lo)).toString());
    }
    default:
      throw binaryFormatError('integer', b.length, '2, 4 or 8');
  }
}

function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// uuid

const HEX = '0123456789abcdef';

/** Hex digit value, or -1. */
function hexValue(c: number): number {
  if (c >= C_0 && c <= C_9) return c - C_0;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** As Postgres's string_to_uuid: optional braces, 32 hex digits, a dash allowed after every fourth digit. */
function uuidFromText(s: Uint8Array, original: string | Uint8Array): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(36);
  let p = 0;
  const braces = n > 0 && s[0] === 0x7b; /* { */
  if (braces) p++;
  let o = 0;
  for (let i = 0; i < 16; i++) {
    if (p + 1 >= n) throw syntaxError('uuid', original);
    const hi = hexValue(s[p]!);
    const lo = hexValue(s[p + 1]!);
    if (hi < 0 || lo < 0) throw syntaxError('uuid', original);
    out[o++] = HEX.charCodeAt(hi);
    out[o++] = HEX.charCodeAt(lo);
    if (i === 3 || i === 5 || i === 7 || i === 9) out[o++] = C_MINUS;
    p += 2;
    if (p < n && s[p] === C_MINUS && i % 2 === 1 && i < 15) p++;
  }
  if (braces) {
    if (p >= n || s[p] !== 0x7d /* } */) throw syntaxError('uuid', original);
    p++;
  }
  if (p !== n) throw syntaxError('uuid', original);
  return out;
}

function uuidFromBinary(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(36);
  let o = 0;
  for (let i = 0; i < 16; i++) {
    out[o++] = HEX.charCodeAt(b[i] >> 4);
    out[o++] = HEX.charCodeAt(b[i] & 15);
    if (i === 3 || i === 5 || i === 7 || i === 9) out[o++] = C_MINUS;
  }
  return out;
}
