/**
 * Expressions pgshard computes after merging aggregates (sum(a)/count(*), round(avg(x), 2), HAVING
 * count(*) > 1, ORDER BY …): Postgres's semantics for the integer and numeric types — operator result
 * types (int2 < int4 < int8 < numeric), overflow and division-by-zero errors with their SQLSTATEs,
 * integer division truncating, numeric scales (numeric.ts) — three-valued logic and NULLs. Anything
 * else (floats, whose printed results pgshard does not reproduce; other functions) is refused.
 *
 * Values are typed (TV); `t: 'raw'` carries a value of another type as its text, usable only where it
 * needs no arithmetic (output, comparison through its codec, coalesce).
 */
import { PgError } from '../../protocol/errors.js';
import type { FinalExpr } from '../../sql/types.js';
import * as N from '../numeric.js';
import { orderCodec, Oid, typeName, unsupported, type ValueContext } from '../values.js';

export type TV =
  | { t: 'int'; bits: 16 | 32 | 64; v: bigint | null }
  | { t: 'numeric'; v: N.Decimal | null }
  | { t: 'bool'; v: boolean | null }
  | { t: 'text'; oid: number; v: Buffer | null }
  | { t: 'unknown'; v: string | null }
  | { t: 'raw'; oid: number; v: Buffer | null };

const BITS_OID = { 16: Oid.int2, 32: Oid.int4, 64: Oid.int8 } as const;

export function oidOf(x: TV): number {
  switch (x.t) {
    case 'int':
      return BITS_OID[x.bits];
    case 'numeric':
      return Oid.numeric;
    case 'bool':
      return Oid.bool;
    case 'text':
    case 'raw':
      return x.oid;
    case 'unknown':
      return Oid.text;
  }
}

export function fromRaw(oid: number, raw: Buffer | null): TV {
  const s = raw === null ? null : raw.toString('utf8');
  switch (oid) {
    case Oid.int2:
      return { t: 'int', bits: 16, v: s === null ? null : BigInt(s) };
    case Oid.int4:
      return { t: 'int', bits: 32, v: s === null ? null : BigInt(s) };
    case Oid.int8:
      return { t: 'int', bits: 64, v: s === null ? null : BigInt(s) };
    case Oid.numeric:
      return { t: 'numeric', v: s === null ? null : N.parseNumeric(s) };
    case Oid.bool:
      return { t: 'bool', v: s === null ? null : s === 't' };
    case Oid.text:
    case Oid.varchar:
      return { t: 'text', oid, v: raw };
    default:
      return { t: 'raw', oid, v: raw };
  }
}

export function toRaw(x: TV): Buffer | null {
  if (x.v === null) return null;
  switch (x.t) {
    case 'int':
      return Buffer.from(x.v.toString(), 'latin1');
    case 'numeric':
      return Buffer.from(N.formatNumeric(x.v), 'latin1');
    case 'bool':
      return Buffer.from(x.v ? 't' : 'f', 'latin1');
    case 'unknown':
      return Buffer.from(x.v, 'utf8');
    default:
      return x.v;
  }
}

const isNum = (x: TV): x is Extract<TV, { t: 'int' | 'numeric' }> => x.t === 'int' || x.t === 'numeric';

function toDecimal(x: Extract<TV, { t: 'int' | 'numeric' }>): N.Decimal | null {
  if (x.v === null) return null;
  return x.t === 'int' ? N.dec(x.v as bigint, 0) : (x.v as N.Decimal);
}

function parseBool(s: string): boolean {
  const v = s.trim().toLowerCase();
  if (v.length > 0 && ('true'.startsWith(v) || 'yes'.startsWith(v) || v === 'on' || v === '1')) return true;
  if (v.length > 0 && ('false'.startsWith(v) || 'no'.startsWith(v) || v === 'off' || v === 'of' || v === '0')) return false;
  throw new PgError('22P02', `invalid input syntax for type boolean: "${s}"`);
}

function parseInt(s: string, bits: 16 | 32 | 64): bigint {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new PgError('22P02', `invalid input syntax for type ${bits === 16 ? 'smallint' : bits === 32 ? 'integer' : 'bigint'}: "${s}"`);
  return N.checkIntRange(BigInt(t), bits);
}

/** An untyped literal (or NULL) read as a value of `like`'s type. */
function resolveUnknown(x: TV, like: TV): TV {
  if (x.t !== 'unknown') return x;
  const s = x.v;
  switch (like.t) {
    case 'int':
      return { t: 'int', bits: like.bits, v: s === null ? null : parseInt(s, like.bits) };
    case 'numeric':
      return { t: 'numeric', v: s === null ? null : N.parseNumeric(s) };
    case 'bool':
      return { t: 'bool', v: s === null ? null : parseBool(s) };
    case 'text':
      return { t: 'text', oid: like.oid, v: s === null ? null : Buffer.from(s, 'utf8') };
    case 'raw':
      if (s === null) return { t: 'raw', oid: like.oid, v: null };
      throw unsupported(`a literal of type ${typeName(like.oid)} in an expression over aggregates is not supported across shards`);
    case 'unknown':
      return { t: 'text', oid: Oid.text, v: s === null ? null : Buffer.from(s, 'utf8') };
  }
}

const RANK: Record<string, number> = { '16': 1, '32': 2, '64': 3, numeric: 4 };
const rank = (x: TV): number => (x.t === 'int' ? RANK[String(x.bits)]! : x.t === 'numeric' ? 4 : 0);

/** select_common_type over the types pgshard computes with. */
function commonType(xs: TV[]): TV {
  const known = xs.filter((x) => x.t !== 'unknown');
  if (known.length === 0) return { t: 'text', oid: Oid.text, v: null };
  if (known.every(isNum)) return known.reduce((a, b) => (rank(b) > rank(a) ? b : a));
  const first = known[0]!;
  if (known.every((x) => x.t === first.t && oidOf(x) === oidOf(first))) return first;
  if (known.every((x) => x.t === 'text')) return { t: 'text', oid: Oid.text, v: null };
  throw unsupported(`mixing ${known.map((x) => typeName(oidOf(x))).join(' and ')} in an expression over aggregates is not supported across shards`);
}

/** `x` converted to the common type `to` (numeric widening, unknown literals). */
function convert(x: TV, to: TV): TV {
  if (x.t === 'unknown') return resolveUnknown(x, to);
  if (to.t === 'numeric' && x.t === 'int') return { t: 'numeric', v: toDecimal(x) };
  if (to.t === 'int' && x.t === 'int') return { t: 'int', bits: to.bits, v: x.v };
  if (to.t === 'text' && x.t === 'text') return { t: 'text', oid: to.oid, v: x.v };
  return x;
}

function intArith(op: string, a: bigint, b: bigint, bits: 16 | 32 | 64): bigint {
  switch (op) {
    case '+':
      return N.checkIntRange(a + b, bits);
    case '-':
      return N.checkIntRange(a - b, bits);
    case '*':
      return N.checkIntRange(a * b, bits);
    case '/':
      if (b === 0n) throw N.divisionByZero();
      return N.checkIntRange(a / b, bits);
    case '%':
      if (b === 0n) throw N.divisionByZero();
      return a % b;
  }
  throw new Error(`operator ${op}`);
}

function decArith(op: string, a: N.Decimal, b: N.Decimal): N.Decimal {
  switch (op) {
    case '+':
      return N.add(a, b);
    case '-':
      return N.sub(a, b);
    case '*':
      return N.mul(a, b);
    case '/':
      return N.div(a, b);
    case '%':
      return N.mod(a, b);
  }
  throw new Error(`operator ${op}`);
}

export class Evaluator {
  constructor(
    private readonly ctx: ValueContext,
    /** The final value of aggregate i of the current group. */
    private readonly agg: (i: number) => TV,
    /** The value of a shard column of the current group (group keys and other group-level values). */
    private readonly column: (c: number) => TV,
  ) {}

  eval(e: FinalExpr): TV {
    if ('agg' in e) return this.agg(e.agg);
    if ('column' in e) return this.column(e.column);
    if ('const' in e) return constant(e.const, e.type);
    if ('cast' in e) return cast(this.eval(e.arg), e.cast, e.typmod);
    if ('op' in e) return this.operator(e.op, e.args);
    return this.call(e.fn, e.args);
  }

  /** Compares two values of one type as Postgres's btree operators do (NULLs not handled here). */
  compare(a: TV, b: TV, byteOrder = false): number {
    if (isNum(a) && isNum(b)) {
      if (a.t === 'int' && b.t === 'int') return (a.v as bigint) < (b.v as bigint) ? -1 : (a.v as bigint) > (b.v as bigint) ? 1 : 0;
      return N.compareDecimal(toDecimal(a)!, toDecimal(b)!);
    }
    if (a.t === 'bool' && b.t === 'bool') return Number(a.v) - Number(b.v);
    const oid = oidOf(a);
    if (oid !== oidOf(b) && !(a.t === 'text' && b.t === 'text')) throw unsupported(`comparing ${typeName(oid)} with ${typeName(oidOf(b))} across shards is not supported`);
    const codec = orderCodec(a.t === 'text' ? Oid.text : oid, byteOrder ? { ...this.ctx, textByteOrder: true } : this.ctx);
    return codec.compare(codec.key(toRaw(a)!), codec.key(toRaw(b)!));
  }

  private equal(a: TV, b: TV): boolean {
    if (a.t === 'text' && b.t === 'text') {
      if (!this.ctx.textEquality) throw unsupported('text equality under a nondeterministic collation is not supported across shards');
      return Buffer.compare(a.v!, b.v!) === 0;
    }
    return this.compare(a, b) === 0;
  }

  private operator(op: string, args: FinalExpr[]): TV {
    if (op === 'and' || op === 'or') {
      let sawNull = false;
      for (const a of args) {
        const v = asBool(this.eval(a)).v;
        if (v === null) sawNull = true;
        else if (v === (op === 'or')) return { t: 'bool', v };
      }
      return { t: 'bool', v: sawNull ? null : op === 'and' };
    }
    if (op === 'not') {
      const v = asBool(this.eval(args[0]!)).v;
      return { t: 'bool', v: v === null ? null : !v };
    }
    if (op === 'isnull' || op === 'isnotnull') return { t: 'bool', v: (this.eval(args[0]!).v === null) === (op === 'isnull') };
    if (op === 'neg') {
      const x = this.eval(args[0]!);
      if (x.t === 'int') return { ...x, v: x.v === null ? null : N.checkIntRange(-x.v, x.bits) };
      if (x.t === 'numeric') return { t: 'numeric', v: x.v === null ? null : N.negate(x.v) };
      throw unsupported(`unary minus on ${typeName(oidOf(x))} across shards is not supported`);
    }
    const l0 = this.eval(args[0]!);
    const r0 = this.eval(args[1]!);
    const l = resolveUnknown(l0, r0);
    const r = resolveUnknown(r0, l);
    if (op === '+' || op === '-' || op === '*' || op === '/' || op === '%') {
      if (!isNum(l) || !isNum(r)) throw unsupported(`operator ${op} on ${typeName(oidOf(l))} and ${typeName(oidOf(r))} over aggregates is not supported across shards`);
      if (l.t === 'int' && r.t === 'int') {
        const bits = l.bits >= r.bits ? l.bits : r.bits;
        return { t: 'int', bits, v: l.v === null || r.v === null ? null : intArith(op, l.v, r.v, bits) };
      }
      const a = toDecimal(l);
      const b = toDecimal(r);
      return { t: 'numeric', v: a === null || b === null ? null : decArith(op, a, b) };
    }
    // comparison
    if (l.v === null || r.v === null) {
      this.checkComparable(l, r);
      return { t: 'bool', v: null };
    }
    if (op === '=' || op === '<>') {
      const eq = this.equal(l, r);
      return { t: 'bool', v: op === '=' ? eq : !eq };
    }
    const c = this.compare(l, r);
    return { t: 'bool', v: op === '<' ? c < 0 : op === '>' ? c > 0 : op === '<=' ? c <= 0 : c >= 0 };
  }

  private checkComparable(l: TV, r: TV): void {
    if (isNum(l) && isNum(r)) return;
    if (l.t === r.t && oidOf(l) === oidOf(r)) return;
    if (l.t === 'text' && r.t === 'text') return;
    throw unsupported(`comparing ${typeName(oidOf(l))} with ${typeName(oidOf(r))} across shards is not supported`);
  }

  private call(fn: string, args: FinalExpr[]): TV {
    switch (fn) {
      case 'round':
      case 'trunc': {
        const x = this.eval(args[0]!);
        if (args.length === 1) {
          if (x.t !== 'numeric') throw unsupported(`${fn}() of ${typeName(oidOf(x))} (computed in double precision) across shards is not supported`);
          return { t: 'numeric', v: x.v === null ? null : fn === 'round' ? N.roundTo(x.v, 0) : N.truncTo(x.v, 0) };
        }
        const s = resolveUnknown(this.eval(args[1]!), { t: 'int', bits: 32, v: null });
        if (!isNum(x) || s.t !== 'int' || s.bits > 32) throw unsupported(`${fn}(${typeName(oidOf(x))}, ${typeName(oidOf(s))}) across shards is not supported`);
        const d = toDecimal(x);
        if (d === null || s.v === null) return { t: 'numeric', v: null };
        return { t: 'numeric', v: fn === 'round' ? N.roundTo(d, Number(s.v)) : N.truncTo(d, Number(s.v)) };
      }
      case 'abs': {
        const x = this.eval(args[0]!);
        if (x.t === 'int') return { ...x, v: x.v === null ? null : N.checkIntRange(x.v < 0n ? -x.v : x.v, x.bits) };
        if (x.t === 'numeric') return { t: 'numeric', v: x.v === null ? null : x.v.special === '-Infinity' ? N.negate(x.v) : x.v.special !== null ? x.v : N.dec(x.v.units < 0n ? -x.v.units : x.v.units, x.v.scale) };
        throw unsupported(`abs() of ${typeName(oidOf(x))} across shards is not supported`);
      }
      case 'ceil':
      case 'floor': {
        const x = this.eval(args[0]!);
        if (x.t !== 'numeric') throw unsupported(`${fn}() of ${typeName(oidOf(x))} (computed in double precision) across shards is not supported`);
        if (x.v === null || x.v.special !== null) return x;
        const t = N.truncTo(x.v, 0);
        const frac = N.compareDecimal(x.v, t);
        const up = fn === 'ceil' ? frac > 0 : false;
        const down = fn === 'floor' ? frac < 0 : false;
        return { t: 'numeric', v: N.dec(t.units + (up ? 1n : down ? -1n : 0n), 0) };
      }
      case 'coalesce': {
        const xs = args.map((a) => this.eval(a));
        const to = commonType(xs);
        for (const x of xs) if (x.v !== null) return convert(x, to);
        return { ...convert({ t: 'unknown', v: null }, to), v: null } as TV;
      }
      case 'greatest':
      case 'least': {
        const xs = args.map((a) => this.eval(a));
        const to = commonType(xs);
        let best: TV | null = null;
        for (const x0 of xs) {
          const x = convert(x0, to);
          if (x.v === null) continue;
          if (best === null || (fn === 'greatest' ? this.compare(x, best) > 0 : this.compare(x, best) < 0)) best = x;
        }
        return best ?? ({ ...convert({ t: 'unknown', v: null }, to), v: null } as TV);
      }
      case 'nullif': {
        const a0 = this.eval(args[0]!);
        const b0 = this.eval(args[1]!);
        const a = resolveUnknown(a0, b0);
        const b = resolveUnknown(b0, a);
        if (a.v === null || b.v === null) return a;
        return this.equal(isNum(a) && isNum(b) ? convert(a, commonType([a, b])) : a, isNum(a) && isNum(b) ? convert(b, commonType([a, b])) : b) ? ({ ...a, v: null } as TV) : a;
      }
      case 'case': {
        const results: TV[] = [];
        let chosen = -1;
        for (let i = 0; i + 1 < args.length; i += 2) {
          const c = asBool(this.eval(args[i]!)).v;
          const r = this.eval(args[i + 1]!);
          results.push(r);
          if (chosen < 0 && c === true) chosen = results.length - 1;
        }
        results.push(this.eval(args[args.length - 1]!));
        if (chosen < 0) chosen = results.length - 1;
        return convert(results[chosen]!, commonType(results));
      }
    }
    throw unsupported(`function ${fn}() over aggregates is not supported across shards`);
  }
}

function asBool(x: TV): Extract<TV, { t: 'bool' }> {
  if (x.t === 'bool') return x;
  if (x.t === 'unknown') return { t: 'bool', v: x.v === null ? null : parseBool(x.v) };
  throw new PgError('42804', `argument of a boolean operation must be type boolean, not type ${typeName(oidOf(x))}`);
}

function constant(v: string | null, type: string): TV {
  switch (type) {
    case 'int4':
      return { t: 'int', bits: 32, v: v === null ? null : BigInt(v) };
    case 'int8':
      return { t: 'int', bits: 64, v: v === null ? null : BigInt(v) };
    case 'numeric':
      return { t: 'numeric', v: v === null ? null : N.parseNumeric(v) };
    case 'bool':
      return { t: 'bool', v: v === null ? null : v === 't' };
    case 'text':
      return { t: 'text', oid: Oid.text, v: v === null ? null : Buffer.from(v, 'utf8') };
    default:
      return { t: 'unknown', v };
  }
}

export function cast(x: TV, to: string, typmod?: number[]): TV {
  const s = x.v === null ? null : x.t === 'unknown' ? x.v : x.t === 'text' ? x.v!.toString('utf8') : null;
  switch (to) {
    case 'int2':
    case 'int4':
    case 'int8': {
      const bits = to === 'int2' ? 16 : to === 'int4' ? 32 : 64;
      if (x.v === null && (x.t === 'unknown' || isNum(x) || x.t === 'text' || x.t === 'bool')) return { t: 'int', bits, v: null };
      if (x.t === 'int') return { t: 'int', bits, v: N.checkIntRange(x.v!, bits) };
      if (x.t === 'numeric') return { t: 'int', bits, v: N.toInteger(x.v!, bits) };
      if (x.t === 'bool' && bits === 32) return { t: 'int', bits, v: x.v ? 1n : 0n };
      if (s !== null) return { t: 'int', bits, v: parseInt(s, bits) };
      break;
    }
    case 'numeric': {
      let d: N.Decimal | null;
      if (x.t === 'int' || x.t === 'numeric') d = toDecimal(x);
      else if (x.t === 'unknown' || x.t === 'text') d = s === null ? null : N.parseNumeric(s);
      else break;
      if (d !== null && typmod !== undefined && typmod.length > 0) d = N.applyTypmod(d, typmod[0]!, typmod[1] ?? 0);
      return { t: 'numeric', v: d };
    }
    case 'text':
    case 'varchar': {
      const oid = to === 'text' ? Oid.text : Oid.varchar;
      if (x.t === 'bool') return { t: 'text', oid, v: x.v === null ? null : Buffer.from(x.v ? 'true' : 'false') };
      if (x.t === 'raw' && x.oid === Oid.bpchar) break; // char(n) → text drops trailing spaces; not reproduced
      return { t: 'text', oid, v: toRaw(x) };
    }
    case 'bool':
      if (x.t === 'bool') return x;
      if (x.t === 'int' && x.bits === 32) return { t: 'bool', v: x.v === null ? null : x.v !== 0n };
      if (x.t === 'unknown' || x.t === 'text') return { t: 'bool', v: s === null ? null : parseBool(s) };
      break;
  }
  throw unsupported(`a cast from ${typeName(oidOf(x))} to ${to} over aggregates is not supported across shards`);
}
