/**
 * Binary result format for merged cross-shard results. A merge reads and computes values in text (the
 * shards are asked for text), so a client that asked for binary columns gets each value re-encoded from
 * its text exactly as Postgres's typsend function would have sent it. A type without an exact encoder
 * here is refused (0A000) before any row is sent, never approximated.
 */
import { parseArray, ARRAY_ELEMENT } from './arrays.js';
import { parseDateParts, parseIntervalParts, parseTimeParts, parseTimestampParts, parseTimestamptzParts } from './datetime.js';
import { parseNumeric, type Decimal } from './numeric.js';
import { decodeBytea, Oid, typeName, unsupported } from './values.js';

/** Text bytes of one value → its binary bytes. Throws PgError (22P02 / 0A000) on text it cannot read. */
export type BinaryEncoder = (text: Buffer) => Buffer;

/** What the encoders need to know about the shards' output settings. */
export interface BinaryContext {
  isoDates: boolean;
  postgresIntervals: boolean;
  /** extra_float_digits >= 1: floats print in their shortest exact form (Postgres 12+ default). */
  exactFloats: boolean;
}

const INT32_MAX = 0x7fffffff;
const INT32_MIN = -0x80000000;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
/** Days from 1970-01-01 to 2000-01-01 (Postgres's epoch for binary dates and timestamps). */
const PG_EPOCH_DAYS = 10957;
const PG_EPOCH_USECS = BigInt(PG_EPOCH_DAYS) * 86_400_000_000n;

function cannotRead(oid: number, s: string): Error {
  return unsupported(`pgshard cannot encode the ${typeName(oid)} value "${s.slice(0, 60)}" in binary format`, 'Ask for text result format for this column.');
}

const int16 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(2);
  b.writeInt16BE(v);
  return b;
};
const int32 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v);
  return b;
};
const int64 = (v: bigint): Buffer => {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(v);
  return b;
};

function integer(oid: number, bytes: 2 | 4 | 8): BinaryEncoder {
  return (raw) => {
    const s = raw.toString('latin1');
    if (!/^-?\d+$/.test(s)) throw cannotRead(oid, s);
    const v = BigInt(s);
    return bytes === 8 ? int64(v) : bytes === 4 ? (oid === Oid.oid ? uint32(Number(v)) : int32(Number(v))) : int16(Number(v));
  };
}

const uint32 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v);
  return b;
};

function floatText(s: string): number | null {
  if (s === 'NaN') return NaN;
  if (s === 'Infinity') return Infinity;
  if (s === '-Infinity') return -Infinity;
  if (!/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return null;
  return Number(s);
}

/** The exact value of a decimal string as a fraction num/den (den a power of ten or one). */
function decimalFraction(s: string): { num: bigint; den: bigint } {
  const m = /^(-?)(\d*)\.?(\d*)(?:e([+-]?\d+))?$/i.exec(s)!;
  let num = BigInt((m[2] || '0') + m[3]);
  let exp = (m[4] !== undefined ? Number(m[4]) : 0) - m[3]!.length;
  if (m[1] === '-') num = -num;
  let den = 1n;
  if (exp >= 0) num *= 10n ** BigInt(exp);
  else den = 10n ** BigInt(-exp);
  return { num, den };
}

/** A finite double as an exact fraction. */
function doubleFraction(x: number): { num: bigint; den: bigint } {
  const b = Buffer.allocUnsafe(8);
  b.writeDoubleBE(x);
  const bits = b.readBigUInt64BE();
  const sign = bits >> 63n ? -1n : 1n;
  const e = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let exp: number;
  if (e === 0) exp = -1074;
  else {
    mant |= 1n << 52n;
    exp = e - 1075;
  }
  return exp >= 0 ? { num: sign * (mant << BigInt(exp)), den: 1n } : { num: sign * mant, den: 1n << BigInt(-exp) };
}

function cmpFraction(a: { num: bigint; den: bigint }, b: { num: bigint; den: bigint }): number {
  const l = a.num * b.den;
  const r = b.num * a.den;
  return l < r ? -1 : l > r ? 1 : 0;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function float32Step(f: number, up: boolean): number {
  f32[0] = f;
  if (f === 0) u32[0] = up ? 1 : 0x80000001;
  else if (f > 0 === up) u32[0]! += 1;
  else u32[0]! -= 1;
  return f32[0]!;
}

/**
 * float4in: the float4 nearest the decimal (ties to even). Rounding through a double first can miss by
 * one step when the decimal lies just beside a midpoint of two float4s, so the candidate is checked
 * against the exact midpoints around it.
 */
export function float4FromText(s: string): number {
  const x = Number(s);
  let f = Math.fround(x);
  if (!Number.isFinite(f) || f === 0) return f;
  const exact = decimalFraction(s);
  for (let i = 0; i < 4; i++) {
    const lo = float32Step(f, false);
    const hi = float32Step(f, true);
    const below = cmpFraction(exact, doubleFraction((lo + f) / 2));
    const above = cmpFraction(exact, doubleFraction((f + hi) / 2));
    f32[0] = f;
    const even = (u32[0]! & 1) === 0;
    if (below < 0 || (below === 0 && !even)) f = lo;
    else if (above > 0 || (above === 0 && !even)) f = hi;
    else break;
  }
  return f;
}

function float(oid: number, bytes: 4 | 8): BinaryEncoder {
  return (raw) => {
    const s = raw.toString('latin1');
    const v = floatText(s);
    if (v === null) throw cannotRead(oid, s);
    const b = Buffer.allocUnsafe(bytes);
    if (bytes === 8) b.writeDoubleBE(v);
    else b.writeFloatBE(Number.isFinite(v) ? float4FromText(s) : v);
    return b;
  };
}

const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

/** numeric_send: base-10000 digits without leading or trailing zero digits, weight, sign, display scale. */
export function numericBinary(d: Decimal): Buffer {
  const header = (ndigits: number, weight: number, sign: number, dscale: number): Buffer => {
    const b = Buffer.allocUnsafe(8 + ndigits * 2);
    b.writeInt16BE(ndigits, 0);
    b.writeInt16BE(weight, 2);
    b.writeUInt16BE(sign, 4);
    b.writeInt16BE(dscale, 6);
    return b;
  };
  // A special value's "display scale" is what numeric_send reads out of its header bits: 32 for ±Infinity, 0 for NaN.
  if (d.special !== null) return d.special === 'NaN' ? header(0, 0, NUMERIC_NAN, 0) : header(0, 0, d.special === 'Infinity' ? NUMERIC_PINF : NUMERIC_NINF, 32);
  const neg = d.units < 0n;
  const digits = (neg ? -d.units : d.units).toString().padStart(d.scale + 1, '0');
  let intPart = digits.slice(0, digits.length - d.scale);
  let frac = digits.slice(digits.length - d.scale);
  intPart = intPart.padStart(Math.ceil(intPart.length / 4) * 4, '0');
  frac = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  const groups: number[] = [];
  for (let i = 0; i < intPart.length; i += 4) groups.push(Number(intPart.slice(i, i + 4)));
  for (let i = 0; i < frac.length; i += 4) groups.push(Number(frac.slice(i, i + 4)));
  let weight = intPart.length / 4 - 1;
  let first = 0;
  while (first < groups.length && groups[first] === 0) {
    first++;
    weight--;
  }
  let last = groups.length;
  while (last > first && groups[last - 1] === 0) last--;
  const kept = groups.slice(first, last);
  if (kept.length === 0) return header(0, 0, 0, d.scale);
  const b = header(kept.length, weight, neg ? NUMERIC_NEG : 0, d.scale);
  kept.forEach((g, i) => b.writeInt16BE(g, 8 + i * 2));
  return b;
}

function dateTime(oid: number, ctx: BinaryContext): BinaryEncoder {
  if (!ctx.isoDates) throw unsupported(`binary ${typeName(oid)} results of a cross-shard merge need DateStyle ISO`, 'SET DateStyle = ISO (the default), or ask for text results.');
  return (raw) => {
    const s = raw.toString('latin1');
    let v: bigint | null;
    switch (oid) {
      case Oid.date: {
        const d = parseDateParts(s);
        if (d === null) throw cannotRead(oid, s);
        return int32(d === 'infinity' ? INT32_MAX : d === '-infinity' ? INT32_MIN : Number(d) - PG_EPOCH_DAYS);
      }
      case Oid.time:
        v = parseTimeParts(s);
        if (v === null) throw cannotRead(oid, s);
        return int64(v);
      case Oid.timestamp:
      case Oid.timestamptz: {
        const t = oid === Oid.timestamp ? parseTimestampParts(s) : parseTimestamptzParts(s);
        if (t === null) throw cannotRead(oid, s);
        return int64(t === 'infinity' ? INT64_MAX : t === '-infinity' ? INT64_MIN : t - PG_EPOCH_USECS);
      }
      default:
        throw cannotRead(oid, s);
    }
  };
}

function interval(ctx: BinaryContext): BinaryEncoder {
  if (!ctx.postgresIntervals) throw unsupported('binary interval results of a cross-shard merge need IntervalStyle postgres', 'SET IntervalStyle = postgres (the default), or ask for text results.');
  return (raw) => {
    const s = raw.toString('latin1');
    const p = parseIntervalParts(s);
    if (p === null) throw cannotRead(Oid.interval, s);
    const b = Buffer.allocUnsafe(16);
    if (p === 'infinity' || p === '-infinity') {
      const pos = p === 'infinity';
      b.writeBigInt64BE(pos ? INT64_MAX : INT64_MIN, 0);
      b.writeInt32BE(pos ? INT32_MAX : INT32_MIN, 8);
      b.writeInt32BE(pos ? INT32_MAX : INT32_MIN, 12);
      return b;
    }
    b.writeBigInt64BE(p.micros, 0);
    b.writeInt32BE(p.days, 8);
    b.writeInt32BE(p.months, 12);
    return b;
  };
}

function arrayOf(oid: number, element: number, enc: BinaryEncoder): BinaryEncoder {
  return (raw) => {
    const s = raw.toString('utf8');
    const items = parseArray(s);
    if (items === null) throw cannotRead(oid, s);
    if (items.length === 0) return Buffer.concat([int32(0), int32(0), uint32(element)]);
    const parts: Buffer[] = [int32(1), int32(items.some((x) => x === null) ? 1 : 0), uint32(element), int32(items.length), int32(1)];
    for (const it of items) {
      if (it === null) parts.push(int32(-1));
      else {
        const v = enc(Buffer.from(it, 'utf8'));
        parts.push(int32(v.length), v);
      }
    }
    return Buffer.concat(parts);
  };
}

const asIs: BinaryEncoder = (raw) => raw;

/** The binary encoder of a result column's type, or a 0A000 error naming the type. */
export function binaryEncoder(oid: number, ctx: BinaryContext): BinaryEncoder {
  switch (oid) {
    case Oid.bool:
      return (raw) => {
        const s = raw.toString('latin1');
        if (s !== 't' && s !== 'f') throw cannotRead(oid, s);
        return Buffer.from([s === 't' ? 1 : 0]);
      };
    case Oid.int2:
      return integer(oid, 2);
    case Oid.int4:
    case Oid.oid:
      return integer(oid, 4);
    case Oid.int8:
      return integer(oid, 8);
    case Oid.float4:
    case Oid.float8:
      if (!ctx.exactFloats) throw unsupported(`binary ${typeName(oid)} results of a cross-shard merge need extra_float_digits of at least 1 (the default)`, 'RESET extra_float_digits, or ask for text results.');
      return float(oid, oid === Oid.float4 ? 4 : 8);
    case Oid.numeric:
      return (raw) => {
        const s = raw.toString('latin1');
        if (!/^(-?\d+(\.\d+)?|NaN|-?Infinity)$/.test(s)) throw cannotRead(oid, s);
        return numericBinary(parseNumeric(s));
      };
    // text-like types are sent as their characters in the client encoding, exactly as printed
    case Oid.text:
    case Oid.varchar:
    case Oid.bpchar:
    case Oid.name:
    case Oid.json:
    case 705: // unknown
      return asIs;
    case Oid.char:
      // charout prints the byte itself, an octal escape for bytes past ASCII, nothing for \0
      return (raw) => (raw.length === 0 ? Buffer.from([0]) : raw.length === 4 && raw[0] === 0x5c ? Buffer.from([parseInt(raw.toString('latin1', 1), 8)]) : raw);
    case Oid.jsonb:
      return (raw) => Buffer.concat([Buffer.from([1]), raw]);
    case Oid.bytea:
      return (raw) => decodeBytea(raw);
    case Oid.uuid:
      return (raw) => {
        const s = raw.toString('latin1');
        if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(s)) throw cannotRead(oid, s);
        return Buffer.from(s.replace(/-/g, ''), 'hex');
      };
    case Oid.date:
    case Oid.time:
    case Oid.timestamp:
    case Oid.timestamptz:
      return dateTime(oid, ctx);
    case Oid.interval:
      return interval(ctx);
    default: {
      const element = ARRAY_ELEMENT.get(oid);
      if (element !== undefined && element !== Oid.jsonb && element !== 18) return arrayOf(oid, element, binaryEncoder(element, ctx));
      throw unsupported(`binary results of type ${typeName(oid)} are not supported for a statement merged across shards`, 'Ask for text result format for this column, or cast it to a type pgshard encodes (integers, floats, numeric, bool, text, bytea, uuid, date/time types, interval, their arrays).');
    }
  }
}
