/**
 * Comparing and hashing column values as the shards print them (text format), exactly as Postgres
 * compares them: one codec per type OID. A codec turns a value's bytes into a key once, then compares
 * keys; an equality key is a string equal for values Postgres considers equal (1.5 = 1.50, -0 = 0,
 * NaN = NaN, '1 day' = '24:00:00', 'a ' = 'a' for char(n)).
 *
 * What is exact depends on the shards (see ValueContext): text orders by bytes only under a "C"-like
 * collation; dates and times are read in DateStyle ISO; intervals in IntervalStyle postgres. A type
 * pgshard cannot compare exactly gets no codec, and the merge is refused (0A000), never approximated.
 */
import { PgError, SqlState } from '../protocol/errors.js';
import { compareDecimal, decimalKey, parseNumeric, type Decimal } from './numeric.js';
import { parseDate, parseInterval, parseTime, parseTimestamp, parseTimestamptz, parseTimetz } from './datetime.js';
import { ARRAY_ELEMENT, parseArray } from './arrays.js';

export const Oid = {
  bool: 16, bytea: 17, char: 18, name: 19, int8: 20, int2: 21, int4: 23, text: 25, oid: 26, json: 114,
  float4: 700, float8: 701, bpchar: 1042, varchar: 1043, date: 1082, time: 1083, timestamp: 1114,
  timestamptz: 1184, interval: 1186, timetz: 1266, numeric: 1700, uuid: 2950, jsonb: 3802,
} as const;

const TYPE_NAMES: Record<number, string> = {
  16: 'boolean', 17: 'bytea', 18: '"char"', 19: 'name', 20: 'bigint', 21: 'smallint', 23: 'integer', 25: 'text', 26: 'oid',
  114: 'json', 700: 'real', 701: 'double precision', 790: 'money', 1042: 'character', 1043: 'character varying', 1082: 'date',
  1083: 'time', 1114: 'timestamp', 1184: 'timestamptz', 1186: 'interval', 1266: 'timetz', 1700: 'numeric', 2950: 'uuid', 3802: 'jsonb',
};

export function typeName(oid: number): string {
  return TYPE_NAMES[oid] ?? (ARRAY_ELEMENT.has(oid) ? `${typeName(ARRAY_ELEMENT.get(oid)!)}[]` : `type oid ${oid}`);
}

export const INTEGER_TYPES: ReadonlySet<number> = new Set([Oid.int2, Oid.int4, Oid.int8]);

/** What the shards' settings allow (learned per statement from the shards; see scatter.ts). */
export interface ValueContext {
  /** Text sorts by its bytes: the shards' collation is C/POSIX/builtin and the client encoding is the server's. */
  textByteOrder: boolean;
  /** Why text does not sort by bytes (for the refusal message). */
  textOrderWhy?: string;
  /** Every collation in use is deterministic, so text equality is byte equality. */
  textEquality: boolean;
  /** DateStyle is ISO (dates and times print as YYYY-MM-DD HH:MM:SS). */
  isoDates: boolean;
  /** IntervalStyle is postgres. */
  postgresIntervals: boolean;
}

export const EXACT_CONTEXT: ValueContext = { textByteOrder: true, textEquality: true, isoDates: true, postgresIntervals: true };

export interface Codec {
  readonly oid: number;
  /** The comparable key of a value's text bytes. */
  key(raw: Buffer): unknown;
  compare(a: unknown, b: unknown): number;
}

export function unsupported(message: string, hint?: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, message, {
    hint: hint ?? 'Add a condition on the shard key so the statement reaches one shard, or route it with /* pgshard: shard=ID */.',
  });
}

const cmpBig = (a: unknown, b: unknown): number => ((a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0);
const cmpNum = (a: unknown, b: unknown): number => ((a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0);
const cmpStr = (a: unknown, b: unknown): number => ((a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0);
const cmpBuf = (a: unknown, b: unknown): number => Buffer.compare(a as Buffer, b as Buffer);

/** Postgres orders NaN above every other float and equal to itself; -0 = 0. */
export function compareFloat(x: number, y: number): number {
  const xn = Number.isNaN(x);
  const yn = Number.isNaN(y);
  if (xn || yn) return xn && yn ? 0 : xn ? 1 : -1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** char(n) compares without its trailing spaces (bpchar's bcTruelen). */
function trimTrailingSpaces(raw: Buffer): Buffer {
  let n = raw.length;
  while (n > 0 && raw[n - 1] === 0x20) n--;
  return raw.subarray(0, n);
}

/** bytea in either output format (hex `\x…` or escape) as its bytes. */
export function decodeBytea(raw: Buffer): Buffer {
  if (raw.length >= 2 && raw[0] === 0x5c && raw[1] === 0x78) return Buffer.from(raw.toString('latin1', 2), 'hex');
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== 0x5c) out.push(c);
    else if (raw[i + 1] === 0x5c) {
      out.push(0x5c);
      i++;
    } else {
      out.push(parseInt(raw.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    }
  }
  return Buffer.from(out);
}

function parsed<T>(what: string, parse: (s: string) => T | null): (raw: Buffer) => T {
  return (raw) => {
    const s = raw.toString('utf8');
    const v = parse(s);
    if (v === null) throw unsupported(`pgshard cannot read the ${what} value "${s}" to merge rows across shards`, 'Use DateStyle ISO and IntervalStyle postgres for cross-shard ORDER BY, GROUP BY and DISTINCT on date/time columns.');
    return v;
  };
}

function dateStyleRefusal(oid: number): PgError {
  return unsupported(`cross-shard merge on a ${typeName(oid)} column needs DateStyle ISO`, 'SET DateStyle = ISO (the default) for cross-shard ORDER BY, GROUP BY, DISTINCT and min/max on date/time columns.');
}

/** The ordering codec of a type, or a 0A000 error saying why the merge cannot be exact. */
export function orderCodec(oid: number, ctx: ValueContext): Codec {
  switch (oid) {
    case Oid.int2:
    case Oid.int4:
    case Oid.oid:
      return { oid, key: (r) => Number(r.toString('latin1')), compare: cmpNum };
    case Oid.int8:
      return { oid, key: (r) => BigInt(r.toString('latin1')), compare: cmpBig };
    case Oid.numeric:
      return { oid, key: (r) => parseNumeric(r.toString('latin1')), compare: (a, b) => compareDecimal(a as Decimal, b as Decimal) };
    case Oid.float4:
    case Oid.float8:
      return { oid, key: (r) => Number(r.toString('latin1')), compare: (a, b) => compareFloat(a as number, b as number) };
    case Oid.bool:
      return { oid, key: (r) => (r[0] === 0x74 ? 1 : 0), compare: cmpNum };
    case Oid.uuid:
      return { oid, key: (r) => r.toString('latin1'), compare: cmpStr };
    case Oid.bytea:
      return { oid, key: decodeBytea, compare: cmpBuf };
    case Oid.name:
    case Oid.char:
      return { oid, key: (r) => r, compare: cmpBuf }; // name and "char" always use the C collation
    case Oid.text:
    case Oid.varchar:
    case Oid.bpchar:
      if (!ctx.textByteOrder)
        throw unsupported(`cross-shard ORDER BY, min/max or sorted aggregates on ${typeName(oid)} values need the "C" collation on the shards${ctx.textOrderWhy ? ` (${ctx.textOrderWhy})` : ''}`, 'Create the shard databases with LC_COLLATE "C" (or the builtin C provider), or add COLLATE "C" to the sort expression.');
      return { oid, key: oid === Oid.bpchar ? trimTrailingSpaces : (r) => r, compare: cmpBuf };
    case Oid.date:
      if (!ctx.isoDates) throw dateStyleRefusal(oid);
      return { oid, key: parsed('date', parseDate), compare: cmpBig };
    case Oid.timestamp:
      if (!ctx.isoDates) throw dateStyleRefusal(oid);
      return { oid, key: parsed('timestamp', parseTimestamp), compare: cmpBig };
    case Oid.timestamptz:
      if (!ctx.isoDates) throw dateStyleRefusal(oid);
      return { oid, key: parsed('timestamptz', parseTimestamptz), compare: cmpBig };
    case Oid.time:
      if (!ctx.isoDates) throw dateStyleRefusal(oid);
      return { oid, key: parsed('time', parseTime), compare: cmpBig };
    case Oid.timetz:
      if (!ctx.isoDates) throw dateStyleRefusal(oid);
      return {
        oid,
        key: parsed('timetz', parseTimetz),
        compare: (a, b) => {
          const [x, zx] = a as [bigint, number];
          const [y, zy] = b as [bigint, number];
          return x < y ? -1 : x > y ? 1 : zx - zy;
        },
      };
    case Oid.interval:
      if (!ctx.postgresIntervals) throw unsupported('cross-shard merge on interval values needs IntervalStyle postgres', 'SET IntervalStyle = postgres (the default).');
      return { oid, key: parsed('interval', parseInterval), compare: cmpBig };
    default: {
      const elem = ARRAY_ELEMENT.get(oid);
      if (elem !== undefined) return arrayCodec(oid, orderCodec(elem, ctx));
      throw unsupported(`cross-shard ordering of ${typeName(oid)} values is not supported`);
    }
  }
}

/** One-dimensional arrays as array_cmp orders them: element by element (NULL after any value), then shorter first. */
function arrayCodec(oid: number, elem: Codec): Codec {
  return {
    oid,
    key: (r) => {
      const els = parseArray(r.toString('utf8'));
      if (els === null) throw unsupported(`pgshard cannot read the ${typeName(oid)} value to merge rows across shards`);
      return els.map((e) => (e === null ? null : elem.key(Buffer.from(e, 'utf8'))));
    },
    compare: (a, b) => {
      const x = a as unknown[];
      const y = b as unknown[];
      const n = Math.min(x.length, y.length);
      for (let i = 0; i < n; i++) {
        const u = x[i];
        const v = y[i];
        if (u === null || v === null) {
          if (u === v) continue;
          return u === null ? 1 : -1;
        }
        const c = elem.compare(u, v);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    },
  };
}

/** A function giving equal strings exactly for values Postgres considers equal; or a 0A000 error. */
export function equalityKey(oid: number, ctx: ValueContext): (raw: Buffer) => string {
  switch (oid) {
    case Oid.int2:
    case Oid.int4:
    case Oid.int8:
    case Oid.oid:
    case Oid.bool:
    case Oid.uuid:
    case Oid.name:
    case Oid.char:
    case Oid.jsonb:
      return (r) => r.toString('latin1');
    case Oid.date:
    case Oid.timestamp:
    case Oid.timestamptz: // one instant prints one way in one session time zone
    case Oid.time:
    case Oid.timetz: // equal only with the same zone, as printed
      return (r) => r.toString('latin1');
    case Oid.numeric:
      return (r) => decimalKey(parseNumeric(r.toString('latin1')));
    case Oid.float4:
    case Oid.float8:
      return (r) => {
        const v = Number(r.toString('latin1'));
        return Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '0' : String(v);
      };
    case Oid.bytea:
      return (r) => decodeBytea(r).toString('latin1');
    case Oid.text:
    case Oid.varchar:
    case Oid.bpchar:
      if (!ctx.textEquality) throw unsupported(`cross-shard GROUP BY or DISTINCT on ${typeName(oid)} values under a nondeterministic collation is not supported`);
      return oid === Oid.bpchar ? (r) => trimTrailingSpaces(r).toString('latin1') : (r) => r.toString('latin1');
    case Oid.interval: {
      if (!ctx.postgresIntervals) throw unsupported('cross-shard GROUP BY or DISTINCT on interval values needs IntervalStyle postgres');
      const p = parsed('interval', parseInterval);
      return (r) => p(r).toString();
    }
    default: {
      const elem = ARRAY_ELEMENT.get(oid);
      if (elem !== undefined) {
        const k = equalityKey(elem, ctx);
        return (r) => {
          const els = parseArray(r.toString('utf8'));
          if (els === null) throw unsupported(`pgshard cannot read the ${typeName(oid)} value to merge rows across shards`);
          return JSON.stringify(els.map((e) => (e === null ? null : k(Buffer.from(e, 'utf8')))));
        };
      }
      throw unsupported(`cross-shard GROUP BY or DISTINCT on ${typeName(oid)} values is not supported`);
    }
  }
}
