/**
 * Exact decimal arithmetic with Postgres's `numeric` rules: the display scale (dscale) of every result,
 * rounding half away from zero, NaN and ±Infinity, the scale a division picks (select_div_scale), and the
 * square root the stddev aggregates take (sqrt_var). Values are scaled BigInts: `units × 10^-scale`.
 * Everything here follows src/backend/utils/adt/numeric.c of Postgres 18 so that a merged aggregate
 * prints exactly what one Postgres would print.
 */
import { PgError } from '../protocol/errors.js';

export type Special = 'NaN' | 'Infinity' | '-Infinity';

export interface Decimal {
  special: Special | null;
  units: bigint; // value × 10^scale (0 for specials)
  scale: number; // display scale, ≥ 0
}

const DEC_DIGITS = 4;
const NUMERIC_MIN_SIG_DIGITS = 16;
const NUMERIC_MAX_DISPLAY_SCALE = 1000;

export const ZERO: Decimal = { special: null, units: 0n, scale: 0 };
export const NAN: Decimal = { special: 'NaN', units: 0n, scale: 0 };

export function dec(units: bigint, scale = 0): Decimal {
  return { special: null, units, scale };
}

const pow10cache: bigint[] = [];
export function pow10(n: number): bigint {
  if (n < 64) return (pow10cache[n] ??= 10n ** BigInt(n));
  return 10n ** BigInt(n);
}

/** Parses numeric_out's text (no exponent; also accepts a leading '+' and exponents for literals). */
export function parseNumeric(s: string): Decimal {
  if (s === 'NaN' || s === 'Infinity' || s === '-Infinity') return { special: s, units: 0n, scale: 0 };
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s.trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new PgError('22P02', `invalid input syntax for type numeric: "${s}"`);
  const frac = m[3] ?? '';
  let units = BigInt((m[2] || '0') + frac);
  let scale = frac.length;
  const exp = m[4] !== undefined ? Number(m[4]) : 0;
  if (exp > 0) {
    if (exp >= scale) {
      units *= pow10(exp - scale);
      scale = 0;
    } else scale -= exp;
  } else if (exp < 0) scale -= exp;
  if (m[1] === '-') units = -units;
  return { special: null, units, scale };
}

export function formatNumeric(d: Decimal): string {
  if (d.special !== null) return d.special;
  const neg = d.units < 0n;
  let digits = (neg ? -d.units : d.units).toString();
  if (d.scale > 0) {
    digits = digits.padStart(d.scale + 1, '0');
    digits = digits.slice(0, digits.length - d.scale) + '.' + digits.slice(digits.length - d.scale);
  }
  return (neg ? '-' : '') + digits;
}

/** `d` at a larger scale (exact). */
export function rescale(d: Decimal, scale: number): bigint {
  return scale >= d.scale ? d.units * pow10(scale - d.scale) : d.units / pow10(d.scale - scale);
}

const RANK = { '-Infinity': 0, finite: 1, Infinity: 2, NaN: 3 } as const;

/** Postgres's cmp_numerics: -Infinity < finite < Infinity < NaN; NaN = NaN. Scale does not matter. */
export function compareDecimal(x: Decimal, y: Decimal): number {
  const rx = RANK[x.special ?? 'finite'];
  const ry = RANK[y.special ?? 'finite'];
  if (rx !== ry || x.special !== null) return rx - ry;
  const s = Math.max(x.scale, y.scale);
  const u = rescale(x, s);
  const v = rescale(y, s);
  return u < v ? -1 : u > v ? 1 : 0;
}

/** A key equal for equal values (1.50 and 1.5 are the same numeric). */
export function decimalKey(d: Decimal): string {
  if (d.special !== null) return d.special;
  if (d.units === 0n) return '0';
  let u = d.units;
  let s = d.scale;
  while (s > 0 && u % 10n === 0n) {
    u /= 10n;
    s--;
  }
  return `${u}e-${s}`;
}

export function sign(d: Decimal): number {
  if (d.special === 'NaN') return NaN;
  if (d.special === 'Infinity') return 1;
  if (d.special === '-Infinity') return -1;
  return d.units < 0n ? -1 : d.units > 0n ? 1 : 0;
}

export function add(x: Decimal, y: Decimal): Decimal {
  if (x.special !== null || y.special !== null) {
    if (x.special === 'NaN' || y.special === 'NaN') return NAN;
    if (x.special !== null && y.special !== null && x.special !== y.special) return NAN;
    return { special: (x.special ?? y.special)!, units: 0n, scale: 0 };
  }
  const s = Math.max(x.scale, y.scale);
  return dec(rescale(x, s) + rescale(y, s), s);
}

export function negate(x: Decimal): Decimal {
  if (x.special === 'Infinity') return { ...x, special: '-Infinity' };
  if (x.special === '-Infinity') return { ...x, special: 'Infinity' };
  if (x.special === 'NaN') return x;
  return dec(-x.units, x.scale);
}

export function sub(x: Decimal, y: Decimal): Decimal {
  return add(x, negate(y));
}

export function mul(x: Decimal, y: Decimal): Decimal {
  if (x.special !== null || y.special !== null) {
    if (x.special === 'NaN' || y.special === 'NaN') return NAN;
    const s = sign(x) * sign(y);
    if (s === 0) return NAN; // Inf * 0
    return { special: s > 0 ? 'Infinity' : '-Infinity', units: 0n, scale: 0 };
  }
  return dec(x.units * y.units, x.scale + y.scale);
}

/** Rounds `units / div` half away from zero. */
function divRound(n: bigint, d: bigint): bigint {
  const neg = n < 0n !== d < 0n;
  const an = n < 0n ? -n : n;
  const ad = d < 0n ? -d : d;
  let q = an / ad;
  if ((an % ad) * 2n >= ad) q += 1n;
  return neg ? -q : q;
}

/** The weight (in base-10000 digits) and first base-10000 digit of a finite value, as numeric.c sees it. */
export function weightAndFirstDigit(d: Decimal): { weight: number; first: number } {
  if (d.units === 0n) return { weight: 0, first: 0 };
  const a = d.units < 0n ? -d.units : d.units;
  const p = a.toString().length - 1 - d.scale; // power of ten of the most significant digit
  const weight = Math.floor(p / DEC_DIGITS);
  const e = -d.scale - DEC_DIGITS * weight;
  const first = e >= 0 ? a * pow10(e) : a / pow10(-e);
  return { weight, first: Number(first) };
}

/** numeric.c's select_div_scale. */
export function selectDivScale(x: Decimal, y: Decimal): number {
  const a = weightAndFirstDigit(x);
  const b = weightAndFirstDigit(y);
  let qweight = a.weight - b.weight;
  if (a.first <= b.first) qweight--;
  let rscale = NUMERIC_MIN_SIG_DIGITS - qweight * DEC_DIGITS;
  rscale = Math.max(rscale, x.scale, y.scale, 0);
  return Math.min(rscale, NUMERIC_MAX_DISPLAY_SCALE);
}

export function divisionByZero(): PgError {
  return new PgError('22012', 'division by zero');
}

/** x / y rounded at `rscale` digits (half away from zero). */
export function divAt(x: Decimal, y: Decimal, rscale: number): Decimal {
  if (y.units === 0n) throw divisionByZero();
  return dec(divRound(x.units * pow10(y.scale + rscale), y.units * pow10(x.scale)), rscale);
}

/** numeric_div: the / operator on numeric. */
export function div(x: Decimal, y: Decimal): Decimal {
  if (x.special !== null || y.special !== null) {
    if (x.special === 'NaN' || y.special === 'NaN') return NAN;
    if (x.special !== null) {
      if (y.special !== null) return NAN;
      const s = sign(y);
      if (s === 0) throw divisionByZero();
      return { special: (x.special === 'Infinity') === s > 0 ? 'Infinity' : '-Infinity', units: 0n, scale: 0 };
    }
    return ZERO; // finite / ±Infinity
  }
  if (y.units === 0n) throw divisionByZero();
  return divAt(x, y, selectDivScale(x, y));
}

/** numeric_mod: remainder of truncated division; scale max of the inputs. */
export function mod(x: Decimal, y: Decimal): Decimal {
  if (x.special !== null || y.special !== null) {
    if (x.special === 'NaN' || y.special === 'NaN') return NAN;
    if (x.special !== null) {
      if (sign(y) === 0) throw divisionByZero();
      return NAN;
    }
    return x;
  }
  if (y.units === 0n) throw divisionByZero();
  const s = Math.max(x.scale, y.scale);
  const u = rescale(x, s);
  const v = rescale(y, s);
  return dec(u % v, s);
}

/** round_var: to `scale` digits (negative rounds left of the point), half away from zero; dscale max(scale, 0). */
export function roundTo(x: Decimal, scale: number): Decimal {
  if (x.special !== null) return x;
  if (scale >= x.scale) return dec(x.units * pow10(scale - x.scale), Math.max(scale, 0));
  const q = divRound(x.units, pow10(x.scale - scale));
  return scale >= 0 ? dec(q, scale) : dec(q * pow10(-scale), 0);
}

/** trunc_var: toward zero. */
export function truncTo(x: Decimal, scale: number): Decimal {
  if (x.special !== null) return x;
  if (scale >= x.scale) return dec(x.units * pow10(scale - x.scale), Math.max(scale, 0));
  const q = x.units / pow10(x.scale - scale);
  return scale >= 0 ? dec(q, scale) : dec(q * pow10(-scale), 0);
}

/** Integer square root (floor). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new RangeError('isqrt of a negative number');
  if (n < 2n) return n;
  // Newton's iteration from above (2^ceil(bits/2) ≥ sqrt(n)) decreases to floor(sqrt(n)).
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/**
 * sqrt_var(arg, rscale): the truncated square root to ceil((rscale+1)/4) base-10000 fractional digits,
 * then rounded to rscale. For a value with all its digits read (as in the stddev aggregates) that is
 * isqrt(arg × 10^8k) / 10^4k with k = floor((rscale + 4) / 4), rounded half away from zero.
 */
export function sqrtAt(x: Decimal, rscale: number): Decimal {
  if (x.special !== null) return x;
  if (x.units < 0n) throw new PgError('2201F', 'cannot take square root of a negative number');
  if (x.units === 0n) return dec(0n, Math.max(rscale, 0));
  if (rscale + 1 < 0) throw new PgError('0A000', 'pgshard: square root at a negative scale is not supported');
  const k = Math.floor((rscale + DEC_DIGITS) / DEC_DIGITS);
  const e = 8 * k - x.scale;
  const n = e >= 0 ? x.units * pow10(e) : x.units / pow10(-e);
  const s = isqrt(n); // sqrt(x) × 10^4k, truncated
  return roundTo(dec(s, 4 * k), rscale);
}

/** numeric → integer cast: rounds half away from zero, then checks the range. */
export function toInteger(x: Decimal, bits: 16 | 32 | 64): bigint {
  const name = bits === 16 ? 'smallint' : bits === 32 ? 'integer' : 'bigint';
  if (x.special === 'NaN') throw new PgError('0A000', `cannot convert NaN to ${name}`);
  if (x.special !== null) throw new PgError('0A000', `cannot convert infinity to ${name}`);
  const v = roundTo(x, 0).units;
  checkIntRange(v, bits);
  return v;
}

export function checkIntRange(v: bigint, bits: 16 | 32 | 64): bigint {
  const max = (1n << BigInt(bits - 1)) - 1n;
  if (v > max || v < -max - 1n) throw new PgError('22003', `${bits === 16 ? 'smallint' : bits === 32 ? 'integer' : 'bigint'} out of range`);
  return v;
}

/** apply_typmod for numeric(p, s): round to s digits, fail if it does not fit in p digits. */
export function applyTypmod(x: Decimal, precision: number, scale: number): Decimal {
  if (x.special === 'NaN') return x;
  if (x.special !== null)
    throw new PgError('22003', 'numeric field overflow', { detail: `A field with precision ${precision}, scale ${scale} cannot hold an infinite value.` });
  const r = roundTo(x, scale);
  const maxdigits = precision - scale;
  const a = r.units < 0n ? -r.units : r.units;
  if (a >= pow10(Math.max(maxdigits, 0) + r.scale) && a !== 0n) {
    throw new PgError('22003', 'numeric field overflow', {
      detail: `A field with precision ${precision}, scale ${scale} must round to an absolute value less than ${maxdigits ? `10^${maxdigits}` : '1'}.`,
    });
  }
  return r;
}

/**
 * numeric_stddev_internal for N finite inputs (no NaN/Infinity), sum and sum of squares exact:
 * variance = (N·ΣX² − (ΣX)²) / (N·(N−1)) (sample) or / N² (population), at select_div_scale, and the
 * square root of it for stddev. A numerator ≤ 0 gives 0 (scale 0).
 */
export function varianceOf(n: bigint, sumX: Decimal, sumX2: Decimal, sample: boolean, stddev: boolean): Decimal {
  const rscale = sumX.scale * 2;
  const sq = rescale(dec(sumX.units * sumX.units, sumX.scale * 2), rscale);
  const nx2 = rescale(dec(n * sumX2.units, sumX2.scale), rscale);
  const numerator = dec(nx2 - sq, rscale);
  if (numerator.units <= 0n) return ZERO;
  const denominator = dec(sample ? n * (n - 1n) : n * n, 0);
  const s = selectDivScale(numerator, denominator);
  const v = divAt(numerator, denominator, s);
  return stddev ? sqrtAt(v, s) : v;
}
