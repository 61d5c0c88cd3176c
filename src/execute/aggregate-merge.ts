/**
 * Merging the one-row results of an aggregate-only SELECT that ran on several shards, in text format,
 * exactly as one Postgres would have computed it over all rows. Only merges that are exact are done:
 * integer and numeric sums (numeric at any precision, by scaled BigInt arithmetic), counts, min/max of
 * integers, numeric, floats (Postgres's float output round-trips, NaN sorts above everything) and uuid.
 * Anything else (float sums, whose result depends on addition order; text under a collation; times in a
 * session time zone) is refused rather than answered approximately.
 */
import { PgError, SqlState } from '../protocol/errors.js';
import type { MergeAggregate } from '../sql/types.js';

export const Oid = { bool: 16, int8: 20, int2: 21, int4: 23, text: 25, float4: 700, float8: 701, numeric: 1700, uuid: 2950 } as const;

const INTEGER = new Set<number>([Oid.int2, Oid.int4, Oid.int8]);

function unsupported(what: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `cross-shard ${what} is not supported yet`, {
    hint: 'Add a condition on the shard key so the statement reaches one shard, or route it with /* pgshard: shard=ID */.',
  });
}

/** Combines per-shard values of one column (null = SQL NULL). */
export function mergeColumn(agg: MergeAggregate, typeOid: number, values: (string | null)[]): string | null {
  const present = values.filter((v): v is string => v !== null);
  switch (agg) {
    case 'count':
      return values.reduce((a, v) => a + BigInt(v ?? '0'), 0n).toString();
    case 'sum':
      if (present.length === 0) return null;
      if (INTEGER.has(typeOid)) return present.reduce((a, v) => a + BigInt(v), 0n).toString();
      if (typeOid === Oid.numeric) return sumNumeric(present);
      throw unsupported(`sum() of type oid ${typeOid}`);
    case 'min':
    case 'max': {
      if (present.length === 0) return null;
      const cmp = comparator(typeOid);
      if (!cmp) throw unsupported(`${agg}() of type oid ${typeOid}`);
      let best = present[0]!;
      for (const v of present.slice(1)) {
        const c = cmp(v, best);
        if (agg === 'min' ? c < 0 : c > 0) best = v;
      }
      return best;
    }
  }
}

function comparator(typeOid: number): ((a: string, b: string) => number) | null {
  if (INTEGER.has(typeOid)) return (a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);
  if (typeOid === Oid.numeric) return compareNumeric;
  if (typeOid === Oid.float4 || typeOid === Oid.float8) return compareFloat;
  if (typeOid === Oid.uuid) return (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  return null;
}

/** Postgres orders NaN above every other float, and equal to itself. */
function compareFloat(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  const xn = Number.isNaN(x);
  const yn = Number.isNaN(y);
  if (xn || yn) return xn && yn ? 0 : xn ? 1 : -1;
  return x < y ? -1 : x > y ? 1 : 0;
}

interface Decimal {
  special: 'NaN' | 'Infinity' | '-Infinity' | null;
  units: bigint; // value × 10^scale
  scale: number;
}

function parseNumeric(s: string): Decimal {
  if (s === 'NaN' || s === 'Infinity' || s === '-Infinity') return { special: s, units: 0n, scale: 0 };
  const neg = s.startsWith('-');
  const body = neg ? s.slice(1) : s;
  const dot = body.indexOf('.');
  const digits = dot < 0 ? body : body.slice(0, dot) + body.slice(dot + 1);
  const scale = dot < 0 ? 0 : body.length - dot - 1;
  const units = BigInt(digits);
  return { special: null, units: neg ? -units : units, scale };
}

function scaleTo(d: Decimal, scale: number): bigint {
  return d.units * 10n ** BigInt(scale - d.scale);
}

function formatNumeric(units: bigint, scale: number): string {
  const neg = units < 0n;
  let digits = (neg ? -units : units).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = digits.slice(0, digits.length - scale) + '.' + digits.slice(digits.length - scale);
  }
  return (neg ? '-' : '') + digits;
}

/** Exact numeric addition; the result's scale is the largest input scale, as Postgres's sum(numeric). */
export function sumNumeric(values: string[]): string {
  const ds = values.map(parseNumeric);
  if (ds.some((d) => d.special === 'NaN')) return 'NaN';
  const pos = ds.some((d) => d.special === 'Infinity');
  const neg = ds.some((d) => d.special === '-Infinity');
  if (pos && neg) return 'NaN';
  if (pos) return 'Infinity';
  if (neg) return '-Infinity';
  const scale = Math.max(...ds.map((d) => d.scale));
  return formatNumeric(
    ds.reduce((a, d) => a + scaleTo(d, scale), 0n),
    scale,
  );
}

const RANK = { '-Infinity': 0, null: 1, Infinity: 2, NaN: 3 } as const;

export function compareNumeric(a: string, b: string): number {
  const x = parseNumeric(a);
  const y = parseNumeric(b);
  const rx = RANK[x.special ?? 'null'];
  const ry = RANK[y.special ?? 'null'];
  if (rx !== ry || x.special !== null) return rx - ry;
  const scale = Math.max(x.scale, y.scale);
  const u = scaleTo(x, scale);
  const v = scaleTo(y, scale);
  return u < v ? -1 : u > v ? 1 : 0;
}

/** Column type OIDs of a RowDescription message (buf[start] is its type byte). */
export function rowDescriptionTypes(buf: Buffer, start: number): number[] {
  const n = buf.readInt16BE(start + 5);
  const types: number[] = [];
  let p = start + 7;
  for (let i = 0; i < n; i++) {
    p = buf.indexOf(0, p) + 1;
    types.push(buf.readInt32BE(p + 6));
    p += 18;
  }
  return types;
}

/** The text values of a DataRow message. */
export function dataRowValues(buf: Buffer, start: number): (string | null)[] {
  const n = buf.readInt16BE(start + 5);
  const out: (string | null)[] = [];
  let p = start + 7;
  for (let i = 0; i < n; i++) {
    const len = buf.readInt32BE(p);
    p += 4;
    if (len < 0) out.push(null);
    else {
      out.push(buf.toString('utf8', p, p + len));
      p += len;
    }
  }
  return out;
}
