import type { A_Const, Node } from 'libpg-query';
import type { KeyType } from '../config/schema.js';
import type { KeyExpr } from './types.js';
import { isArrayCast, operatorName, stripCasts } from './ast.js';

/**
 * Shard-key values as written in a statement, in the canonical text the router hashes: integers as plain
 * decimal digits (exact beyond 2^53: digits are never turned into JS numbers), uuids lower-case with
 * hyphens, text as given. A value that cannot be read statically gives `undefined`, which callers treat
 * as "no restriction" (every shard): never a wrong shard.
 */

/** The KeyExpr of a scalar expression compared with a key of type `keyType`, if it is a literal or a parameter. */
export function keyExprOf(node: Node, keyType: KeyType): KeyExpr | undefined {
  const n = stripCasts(node);
  if ('ParamRef' in n) {
    const num = n.ParamRef.number ?? 0;
    return num >= 1 ? { kind: 'param', index: num - 1 } : undefined;
  }
  if ('A_Const' in n) return constKey(n.A_Const, keyType, false);
  // Unary minus or plus in front of a literal the parser did not fold (`-'42'`, `+5`).
  if ('A_Expr' in n && n.A_Expr.kind === 'AEXPR_OP' && n.A_Expr.lexpr === undefined && n.A_Expr.rexpr !== undefined) {
    const op = operatorName(n.A_Expr.name);
    const inner = stripCasts(n.A_Expr.rexpr);
    if ((op === '-' || op === '+') && 'A_Const' in inner && isIntegerType(keyType)) return constKey(inner.A_Const, keyType, op === '-');
  }
  return undefined;
}

/**
 * The keys of `key = ANY(x)`: `$1` (an array parameter), `ARRAY[...]`, or an array literal `'{1,2}'`.
 * An empty array matches no row.
 */
export function anyKeys(node: Node, keyType: KeyType): KeyExpr[] | undefined {
  const n = stripCasts(node);
  if ('ParamRef' in n) {
    const num = n.ParamRef.number ?? 0;
    return num >= 1 ? [{ kind: 'param-array', index: num - 1 }] : undefined;
  }
  if ('A_ArrayExpr' in n) return listKeys(n.A_ArrayExpr.elements ?? [], keyType);
  if ('A_Const' in n && n.A_Const.sval !== undefined && (isArrayCast(node) || !('TypeCast' in node))) {
    const elements = parseArrayLiteral(n.A_Const.sval.sval ?? '');
    if (elements === undefined) return undefined;
    const out: KeyExpr[] = [];
    for (const e of elements) {
      if (e === null) {
        out.push({ kind: 'null' });
        continue;
      }
      const v = canonicalKey(e, keyType);
      if (v === undefined) return undefined;
      out.push({ kind: 'const', value: v });
    }
    return nonEmpty(out);
  }
  return undefined;
}

/** The keys of `key IN (a, b, ...)`: all must be literals or parameters. */
export function listKeys(items: Node[], keyType: KeyType): KeyExpr[] | undefined {
  const out: KeyExpr[] = [];
  for (const item of items) {
    const k = keyExprOf(item, keyType);
    if (k === undefined) return undefined;
    out.push(k);
  }
  return nonEmpty(out);
}

function nonEmpty(keys: KeyExpr[]): KeyExpr[] {
  return keys.length === 0 ? [{ kind: 'null' }] : keys;
}

function constKey(c: A_Const, keyType: KeyType, negate: boolean): KeyExpr | undefined {
  if (c.isnull === true) return negate ? undefined : { kind: 'null' };
  let text: string;
  if (c.ival !== undefined) text = String(c.ival.ival ?? 0);
  else if (c.fval !== undefined) text = c.fval.fval ?? '';
  else if (c.sval !== undefined) text = c.sval.sval ?? '';
  else return undefined; // boolean and bit-string constants are not key values
  if (negate) text = text.startsWith('-') ? text.slice(1) : '-' + text;
  const value = canonicalKey(text, keyType);
  return value === undefined ? undefined : { kind: 'const', value };
}

function isIntegerType(t: KeyType): boolean {
  return t === 'bigint' || t === 'int';
}

const PG_SPACE = ' \t\n\r\v\f';

/**
 * The canonical text of a key value given as text (a literal, or later a bind parameter in text format),
 * as Postgres's input function for the key type would read it; `undefined` if it would not.
 */
export function canonicalKey(text: string, keyType: KeyType): string | undefined {
  switch (keyType) {
    case 'bigint':
    case 'int':
      return canonicalInteger(text);
    case 'uuid':
      return canonicalUuid(text);
    case 'text':
      return text;
  }
}

/**
 * Integer input as Postgres 16+ reads it (int8in / int4in): surrounding white space, a sign, decimal digits
 * or 0x/0o/0b prefixes, underscores between digits. The result is plain decimal without leading zeros.
 */
export function canonicalInteger(text: string): string | undefined {
  let start = 0;
  let end = text.length;
  while (start < end && PG_SPACE.includes(text[start]!)) start++;
  while (end > start && PG_SPACE.includes(text[end - 1]!)) end--;
  let body = text.slice(start, end);
  let negative = false;
  if (body.startsWith('-') || body.startsWith('+')) {
    negative = body[0] === '-';
    body = body.slice(1);
  }
  let radix = 10;
  if (body.length > 2 && body[0] === '0') {
    const p = body[1]!.toLowerCase();
    if (p === 'x') radix = 16;
    else if (p === 'o') radix = 8;
    else if (p === 'b') radix = 2;
    if (radix !== 10) body = body.slice(2);
  }
  if (!digitsWithUnderscores(body, radix)) return undefined;
  const digits = body.split('_').join('');
  let value: bigint;
  if (radix === 10) {
    const trimmed = digits.replace(/^0+(?=\d)/, '');
    return negative && trimmed !== '0' ? '-' + trimmed : trimmed;
  }
  value = BigInt((radix === 16 ? '0x' : radix === 8 ? '0o' : '0b') + digits);
  if (negative) value = -value;
  return value.toString();
}

function digitsWithUnderscores(s: string, radix: number): boolean {
  if (s.length === 0) return false;
  let prevDigit = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '_') {
      if (!prevDigit) return false;
      prevDigit = false;
      continue;
    }
    const d = parseInt(c, 16);
    if (Number.isNaN(d) || d >= radix) return false;
    prevDigit = true;
  }
  return prevDigit;
}

/** A uuid as Postgres prints it (lower case, 8-4-4-4-12), from any form uuid_in accepts. */
export function canonicalUuid(text: string): string | undefined {
  let s = text.trim();
  if (s.startsWith('{')) {
    if (!s.endsWith('}')) return undefined;
    s = s.slice(1, -1);
  }
  let hex = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '-') {
      // uuid_in accepts a hyphen after any group of four digits
      if (hex.length === 0 || hex.length % 4 !== 0 || s[i + 1] === '-' || i === s.length - 1) return undefined;
      continue;
    }
    if (Number.isNaN(parseInt(c, 16))) return undefined;
    hex += c.toLowerCase();
  }
  if (hex.length !== 32) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The elements of a one-dimensional array literal such as `{1,2,"a b",NULL}`; null for NULL elements;
 * `undefined` for anything else (nested arrays, dimension decorations): the caller then routes everywhere.
 */
export function parseArrayLiteral(text: string): (string | null)[] | undefined {
  const s = text.trim();
  if (!s.startsWith('{') || !s.endsWith('}')) return undefined;
  const out: (string | null)[] = [];
  let i = 1;
  const end = s.length - 1;
  const skipSpace = (): void => {
    while (i < end && PG_SPACE.includes(s[i]!)) i++;
  };
  skipSpace();
  if (i === end) return out;
  for (;;) {
    skipSpace();
    if (i >= end) return undefined;
    if (s[i] === '{') return undefined;
    if (s[i] === '"') {
      let v = '';
      i++;
      while (i < end && s[i] !== '"') {
        if (s[i] === '\\') i++;
        if (i >= end) return undefined;
        v += s[i];
        i++;
      }
      if (i >= end) return undefined;
      i++; // closing quote
      out.push(v);
      skipSpace();
    } else {
      let v = '';
      while (i < end && s[i] !== ',') {
        if (s[i] === '"' || s[i] === '{' || s[i] === '}') return undefined;
        if (s[i] === '\\') i++;
        if (i >= end) return undefined;
        v += s[i];
        i++;
      }
      v = v.trim();
      if (v.length === 0) return undefined;
      out.push(v.toUpperCase() === 'NULL' ? null : v);
    }
    if (i === end) return out;
    if (s[i] !== ',') return undefined;
    i++;
  }
}

/** A stable identity of a KeyExpr, for de-duplication and comparison. */
export function keyId(k: KeyExpr): string {
  switch (k.kind) {
    case 'const':
      return 'c:' + k.value;
    case 'null':
      return 'n';
    case 'param':
      return 'p:' + k.index;
    case 'param-array':
      return 'a:' + k.index;
  }
}

export function dedupeKeys(keys: KeyExpr[]): KeyExpr[] {
  if (keys.length < 2) return keys;
  const seen = new Set<string>();
  const out: KeyExpr[] = [];
  for (const k of keys) {
    const id = keyId(k);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(k);
  }
  return out;
}

/** One key value exactly (one shard at most), as opposed to a list or an array parameter. */
export function singleKey(keys: KeyExpr[] | undefined): KeyExpr | undefined {
  if (keys === undefined) return undefined;
  const d = dedupeKeys(keys);
  return d.length === 1 && d[0]!.kind !== 'param-array' ? d[0] : undefined;
}
