import type { KeyType } from '../config/schema.js';
import type { KeyExpr } from '../sql/types.js';
import { canonicalFromParam, canonicalFromText, KeyValueError } from './canonical.js';
import type { HashRing } from './ring.js';

/**
 * Evaluating one statement's shard-key expressions against the Bind values: which shards own the keys.
 */

/** A Bind message's parameters: values (null = SQL NULL) and the format code of each one (0 text, 1 binary). */
export interface BindParams {
  values: (Buffer | null)[];
  formats: (0 | 1)[];
}

/**
 * The shards owning the keys, or `'all'` when they cannot be known: a key is a parameter and there are no
 * values yet (Describe before Bind), or an array parameter is in a binary element type that is not the
 * key's. A NULL key (constant, parameter or array element) matches no row and adds no shard, so the set
 * can be empty. Throws KeyValueError for a value Postgres would reject as the key type.
 */
export function shardsForKeys(
  ring: HashRing,
  keyType: KeyType,
  keys: readonly KeyExpr[],
  params: BindParams | null,
): Set<string> | 'all' {
  const out = new Set<string>();
  const everyShard = ring.shardIds.length;
  for (const key of keys) {
    if (out.size === everyShard) break; // nothing left to learn; the backends check the remaining values
    switch (key.kind) {
      case 'const':
        out.add(ring.shardFor(canonicalFromText(keyType, key.value)));
        break;
      case 'null':
        break;
      case 'param':
      case 'param-array': {
        if (params === null) return 'all';
        if (key.index >= params.values.length)
          throw new KeyValueError(
            '08P01',
            `bind message supplies ${params.values.length} parameters, but the shard key refers to $${key.index + 1}`,
          );
        const value = params.values[key.index];
        if (value === null || value === undefined) break;
        const format = params.formats[key.index] ?? 0;
        try {
          if (key.kind === 'param') {
            out.add(ring.shardFor(canonicalFromParam(keyType, value, format)));
          } else if (format === 0) {
            for (const el of textArrayElements(value.toString('utf8'))) if (el !== null) out.add(ring.shardFor(canonicalFromText(keyType, el)));
          } else if (!addBinaryArray(ring, keyType, value, out)) {
            return 'all';
          }
        } catch (e) {
          if (e instanceof KeyValueError && e.sqlstate === '22P03')
            throw new KeyValueError('22P03', `incorrect binary data format in bind parameter ${key.index + 1}`, e.detail);
          throw e;
        }
        break;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// text-format arrays: {1,2,3}, {"a b",NULL,"x\"y"}, [0:1]={1,2}, {{1,2},{3,4}}

function malformed(s: string, detail: string): KeyValueError {
  return new KeyValueError('22P02', `malformed array literal: "${s}"`, detail);
}

/** array_in's whitespace (scanner_isspace). */
function isArraySpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
}

/**
 * The elements of a text-format array literal, flattened over all dimensions, with NULL elements as null.
 * Follows array_in: optional `[lo:hi]…=` dimension decoration, braces, `,` delimiters, double-quoted
 * elements with backslash escapes, unquoted elements trimmed of unescaped surrounding whitespace, and an
 * unquoted unescaped `NULL` (any case) as the null element.
 */
export function textArrayElements(s: string): (string | null)[] {
  const n = s.length;
  let p = 0;
  while (isArraySpace(s[p])) p++;
  if (s[p] === '[') {
    const eq = s.indexOf('=', p);
    if (eq < 0) throw malformed(s, 'Array dimensions must be followed by "=".');
    p = eq + 1;
    while (isArraySpace(s[p])) p++;
  }
  if (s[p] !== '{') throw malformed(s, 'Array value must start with "{" or dimension information.');
  p++;
  const out: (string | null)[] = [];
  let depth = 1;
  // After "{" an element, a nested "{" or (for an empty level) "}" may come; after "," an element or "{";
  // after an element or a "}", a "," or "}".
  let state: 'open' | 'comma' | 'done' = 'open';
  while (depth > 0) {
    const c = s[p];
    if (c === undefined) throw malformed(s, 'Unexpected end of input.');
    if (isArraySpace(c)) {
      p++;
      continue;
    }
    if (c === '{') {
      if (state === 'done') throw malformed(s, 'Unexpected "{" character.');
      depth++;
      p++;
      state = 'open';
    } else if (c === '}') {
      if (state === 'comma') throw malformed(s, 'Unexpected "}" character.');
      depth--;
      p++;
      state = 'done';
    } else if (c === ',') {
      if (state !== 'done') throw malformed(s, 'Unexpected "," character.');
      p++;
      state = 'comma';
    } else {
      if (state === 'done') throw malformed(s, 'Unexpected array element.');
      let text = '';
      if (c === '"') {
        p++;
        for (;;) {
          const d = s[p++];
          if (d === undefined) throw malformed(s, 'Unexpected end of input.');
          if (d === '"') break;
          if (d === '\\') {
            const e = s[p++];
            if (e === undefined) throw malformed(s, 'Unexpected end of input.');
            text += e;
          } else text += d;
        }
        out.push(text);
      } else {
        let escaped = false;
        let keep = 0; // length of text up to its last escaped or non-space character
        for (;;) {
          const d = s[p];
          if (d === undefined || d === ',' || d === '}' || d === '{') break;
          if (d === '"') throw malformed(s, 'Unexpected """ character.');
          p++;
          if (d === '\\') {
            const e = s[p++];
            if (e === undefined) throw malformed(s, 'Unexpected end of input.');
            text += e;
            escaped = true;
            keep = text.length;
          } else {
            text += d;
            if (!isArraySpace(d)) keep = text.length;
          }
        }
        if (s[p] === '{') throw malformed(s, 'Unexpected "{" character.');
        text = text.slice(0, keep);
        out.push(!escaped && text.length === 4 && text.toUpperCase() === 'NULL' ? null : text);
      }
      state = 'done';
    }
  }
  while (isArraySpace(s[p])) p++;
  if (p !== n) throw malformed(s, 'Junk after closing right brace.');
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// binary-format arrays (array_send): int32 ndim, int32 has-null flag, uint32 element type oid,
// ndim × (int32 length, int32 lower bound), then per element an int32 byte length (-1 = NULL) and the bytes.

const OID_INT8 = 20;
const OID_INT2 = 21;
const OID_INT4 = 23;
const OID_TEXT = 25;
const OID_VARCHAR = 1043;
const OID_UUID = 2950;

function acceptsElement(keyType: KeyType, oid: number): boolean {
  switch (keyType) {
    case 'bigint':
    case 'int':
      return oid === OID_INT8 || oid === OID_INT4 || oid === OID_INT2;
    case 'text':
      return oid === OID_TEXT || oid === OID_VARCHAR;
    case 'uuid':
      return oid === OID_UUID;
  }
}

function badArray(detail: string): KeyValueError {
  return new KeyValueError('22P03', 'incorrect binary data format in bind parameter', detail);
}

/** Adds the owners of a binary array's elements; false when the element type is not the key's. */
function addBinaryArray(ring: HashRing, keyType: KeyType, b: Buffer, out: Set<string>): boolean {
  if (b.length < 12) throw badArray('an array value is at least 12 bytes');
  const ndim = b.readInt32BE(0);
  const oid = b.readUInt32BE(8);
  if (ndim < 0 || ndim > 6) throw badArray(`invalid number of dimensions: ${ndim}`);
  if (!acceptsElement(keyType, oid)) return false;
  let p = 12;
  if (b.length < p + 8 * ndim) throw badArray('the array dimensions are cut short');
  let count = ndim === 0 ? 0 : 1;
  for (let d = 0; d < ndim; d++, p += 8) {
    const len = b.readInt32BE(p);
    if (len < 0) throw badArray(`invalid array dimension: ${len}`);
    count *= len;
  }
  const expected = oid === OID_INT8 ? 8 : oid === OID_INT4 ? 4 : oid === OID_INT2 ? 2 : oid === OID_UUID ? 16 : -1;
  for (let i = 0; i < count; i++) {
    if (p + 4 > b.length) throw badArray('the array has fewer elements than its dimensions say');
    const len = b.readInt32BE(p);
    p += 4;
    if (len === -1) continue;
    if (len < 0 || p + len > b.length) throw badArray(`invalid array element length: ${len}`);
    if (expected !== -1 && len !== expected) throw badArray(`element of type ${oid} is ${len} bytes, expected ${expected}`);
    out.add(ring.shardFor(canonicalFromParam(keyType, b.subarray(p, p + len), 1)));
    p += len;
  }
  if (p !== b.length) throw badArray('the array has bytes after its last element');
  return true;
}
