/**
 * Aggregation across shards: the shards' partial rows (see src/sql/aggregate.ts) are merged by group key
 * into one state per group, then each group is finished the way Postgres finishes it — count and sums
 * exact (bigint with its overflow error, numeric at the largest input scale), avg as numeric division at
 * select_div_scale, the variance family from exact N, ΣX, ΣX² (numeric_stddev_internal), string_agg and
 * array_agg from the shards' sorted arrays, DISTINCT aggregates from the set of distinct values — before
 * HAVING, DISTINCT, ORDER BY and LIMIT apply. Memory: one state per group.
 *
 * Types are checked before the first row goes out (`typecheck`): a partial whose type cannot be merged
 * exactly (a float sum depends on the order of addition) is refused with 0A000, never approximated.
 */
import type { AggregatePlan, FinalExpr, GroupMergePlan } from '../../sql/types.js';
import { formatArray, ARRAY_ELEMENT, parseArray } from '../arrays.js';
import * as N from '../numeric.js';
import { type Field, type Row } from '../rows.js';
import { equalityKey, Oid, orderCodec, typeName, unsupported, type Codec, type ValueContext } from '../values.js';
import { Evaluator, fromRaw, oidOf, toRaw, type TV } from './evaluate.js';
import { compareKey } from './order-by.js';
import { dataRowOf } from '../../protocol/messages.js';

type State =
  | { k: 'count'; n: bigint }
  | { k: 'sum'; int: boolean; total: bigint; dec: N.Decimal; any: boolean }
  | { k: 'minmax'; raw: Buffer | null; key: unknown }
  | { k: 'bool'; v: boolean | null }
  | { k: 'avg'; sum: N.Decimal; any: boolean; n: bigint }
  | { k: 'var'; n: bigint; sum: N.Decimal; squares: N.Decimal }
  | { k: 'list'; items: { v: string | null; keys: unknown[] }[] }
  | { k: 'none' };

interface Group {
  row: (Buffer | null)[] | null;
  states: State[];
  distinct: Map<string, { raw: Buffer; pass: boolean[] }> | null;
}

interface Prepared {
  plan: AggregatePlan;
  /** Partial column types, checked. */
  sumOid?: number;
  codec?: Codec;
  keyCodecs?: Codec[];
  valuesOid?: number;
}

const copy = (b: Buffer | null): Buffer | null => (b === null ? null : Buffer.from(b));

function numericOf(oid: number, raw: Buffer): N.Decimal {
  const s = raw.toString('latin1');
  return oid === Oid.numeric ? N.parseNumeric(s) : N.dec(BigInt(s), 0);
}

export class GroupMerger {
  private readonly groups = new Map<string, Group>();
  private readonly keyFns: ((raw: Buffer) => string)[];
  private readonly aggs: Prepared[];
  private readonly distinctKey: ((raw: Buffer) => string) | null;
  private readonly distinctOid: number;

  constructor(
    private readonly plan: GroupMergePlan,
    private readonly fields: readonly Field[],
    private readonly visible: number,
    private readonly ctx: ValueContext,
  ) {
    this.keyFns = plan.keys.map((c) => equalityKey(this.type(c), ctx));
    this.distinctOid = plan.distinctOn !== undefined ? this.type(plan.distinctOn) : 0;
    this.distinctKey = plan.distinctOn !== undefined ? equalityKey(this.distinctOid, ctx) : null;
    this.aggs = plan.aggregates.map((a) => this.prepare(a));
  }

  private type(c: number): number {
    const f = this.fields[c];
    if (f === undefined) throw new RangeError(`column ${c} outside the shard row`);
    return f.typeOid;
  }

  private prepare(a: AggregatePlan): Prepared {
    const sumType = (c: number, fn: string, accepted: readonly number[]): number => {
      const oid = this.type(c);
      if (!accepted.includes(oid)) {
        const float = oid === Oid.float4 || oid === Oid.float8;
        throw unsupported(
          `cross-shard ${fn}() of ${typeName(oid)} values is not supported${float ? ' (a floating-point sum depends on the order of addition, so it cannot be merged exactly)' : ''}`,
          float ? 'Cast the argument to numeric, or add a shard key condition.' : undefined,
        );
      }
      return oid;
    };
    const SUMS = [Oid.int8, Oid.numeric];
    const ARGS = [Oid.int2, Oid.int4, Oid.int8, Oid.numeric];
    switch (a.fn) {
      case 'count':
        return { plan: a };
      case 'sum':
        return { plan: a, sumOid: sumType(a.column, 'sum', SUMS) };
      case 'min':
      case 'max':
        return { plan: a, codec: orderCodec(this.type(a.column), a.byteOrder ? { ...this.ctx, textByteOrder: true } : this.ctx) };
      case 'bool_and':
      case 'bool_or':
        return { plan: a };
      case 'avg':
      case 'var_samp':
      case 'var_pop':
      case 'stddev_samp':
      case 'stddev_pop':
        sumType(a.type, a.fn, ARGS);
        return { plan: a, sumOid: Oid.numeric };
      case 'string_agg':
      case 'array_agg': {
        const valuesOid = this.type(a.values);
        const elem = ARRAY_ELEMENT.get(valuesOid);
        if (elem === undefined) throw unsupported(`cross-shard ${a.fn}() of ${typeName(valuesOid)} values is not supported`);
        if (a.fn === 'string_agg' && elem !== Oid.text && elem !== Oid.varchar) throw unsupported(`cross-shard string_agg() of ${typeName(elem)} values is not supported`);
        const keyCodecs = a.keys.map((k) => {
          const e = ARRAY_ELEMENT.get(this.type(k.column));
          if (e === undefined) throw unsupported(`cross-shard ${a.fn}(… ORDER BY) on ${typeName(this.type(k.column))} is not supported`);
          return orderCodec(e, k.byteOrder ? { ...this.ctx, textByteOrder: true } : this.ctx);
        });
        return { plan: a, valuesOid, keyCodecs };
      }
      case 'count_distinct':
        return { plan: a };
      case 'sum_distinct':
      case 'avg_distinct':
        if (![Oid.int2, Oid.int4, Oid.int8, Oid.numeric].includes(this.distinctOid as 20))
          throw unsupported(`cross-shard ${a.fn.replace('_distinct', '')}(DISTINCT) of ${typeName(this.distinctOid)} values is not supported`);
        return { plan: a };
    }
  }

  private initial(p: Prepared): State {
    switch (p.plan.fn) {
      case 'count':
        return { k: 'count', n: 0n };
      case 'sum':
        return { k: 'sum', int: p.sumOid === Oid.int8, total: 0n, dec: N.ZERO, any: false };
      case 'min':
      case 'max':
        return { k: 'minmax', raw: null, key: null };
      case 'bool_and':
      case 'bool_or':
        return { k: 'bool', v: null };
      case 'avg':
        return { k: 'avg', sum: N.ZERO, any: false, n: 0n };
      case 'var_samp':
      case 'var_pop':
      case 'stddev_samp':
      case 'stddev_pop':
        return { k: 'var', n: 0n, sum: N.ZERO, squares: N.ZERO };
      case 'string_agg':
      case 'array_agg':
        return { k: 'list', items: [] };
      default:
        return { k: 'none' };
    }
  }

  private groupKey(row: Row): string {
    let k = '';
    for (let i = 0; i < this.plan.keys.length; i++) {
      const f = row.field(this.plan.keys[i]!);
      if (f === null) k += '\u0000N';
      else {
        const v = this.keyFns[i]!(f);
        k += `\u0000${v.length}:${v}`;
      }
    }
    return k;
  }

  private newGroup(row: Row | null): Group {
    const g: Group = {
      row: row === null ? null : Array.from({ length: row.length }, (_, i) => copy(row.field(i))),
      states: this.aggs.map((p) => this.initial(p)),
      distinct: this.distinctKey !== null ? new Map() : null,
    };
    return g;
  }

  get size(): number {
    return this.groups.size;
  }

  add(row: Row): void {
    const key = this.groupKey(row);
    let g = this.groups.get(key);
    if (g === undefined) {
      g = this.newGroup(row);
      this.groups.set(key, g);
    }
    this.aggs.forEach((p, i) => this.combine(p, g.states[i]!, row));
    if (g.distinct !== null) {
      const x = row.field(this.plan.distinctOn!);
      if (x !== null) {
        const k = this.distinctKey!(x);
        let e = g.distinct.get(k);
        if (e === undefined) {
          e = { raw: Buffer.from(x), pass: this.aggs.map(() => false) };
          g.distinct.set(k, e);
        }
        this.aggs.forEach((p, i) => {
          const a = p.plan;
          if (a.fn !== 'count_distinct' && a.fn !== 'sum_distinct' && a.fn !== 'avg_distinct') return;
          const ok = a.filter === undefined ? true : row.field(a.filter)?.[0] === 0x74;
          if (ok) e!.pass[i] = true;
        });
      }
    }
  }

  private combine(p: Prepared, s: State, row: Row): void {
    const a = p.plan;
    switch (s.k) {
      case 'count': {
        const f = row.field((a as { column: number }).column);
        if (f !== null) s.n += BigInt(f.toString('latin1'));
        return;
      }
      case 'sum': {
        const f = row.field((a as { column: number }).column);
        if (f === null) return;
        s.any = true;
        if (s.int) s.total += BigInt(f.toString('latin1'));
        else s.dec = N.add(s.dec, N.parseNumeric(f.toString('latin1')));
        return;
      }
      case 'minmax': {
        const f = row.field((a as { column: number }).column);
        if (f === null) return;
        const key = p.codec!.key(f);
        if (s.raw === null || (a.fn === 'min' ? p.codec!.compare(key, s.key) < 0 : p.codec!.compare(key, s.key) > 0)) {
          s.raw = Buffer.from(f);
          s.key = key;
        }
        return;
      }
      case 'bool': {
        const f = row.field((a as { column: number }).column);
        if (f === null) return;
        const v = f[0] === 0x74;
        s.v = s.v === null ? v : a.fn === 'bool_and' ? s.v && v : s.v || v;
        return;
      }
      case 'avg': {
        const pa = a as Extract<AggregatePlan, { fn: 'avg' }>;
        const n = row.field(pa.count);
        if (n !== null) s.n += BigInt(n.toString('latin1'));
        const f = row.field(pa.sum);
        if (f !== null) {
          s.any = true;
          s.sum = N.add(s.sum, numericOf(p.sumOid!, f));
        }
        return;
      }
      case 'var': {
        const pv = a as Extract<AggregatePlan, { count: number; squares: number }>;
        const n = row.field(pv.count);
        if (n !== null) s.n += BigInt(n.toString('latin1'));
        const f = row.field(pv.sum);
        if (f !== null) s.sum = N.add(s.sum, numericOf(p.sumOid!, f));
        const q = row.field(pv.squares);
        if (q !== null) s.squares = N.add(s.squares, N.parseNumeric(q.toString('latin1')));
        return;
      }
      case 'list': {
        const pl = a as Extract<AggregatePlan, { values: number }>;
        const vf = row.field(pl.values);
        if (vf === null) return;
        const values = parseArray(vf.toString('utf8'));
        if (values === null) throw unsupported(`pgshard cannot read the ${typeName(p.valuesOid!)} value a shard returned`);
        const keyLists = pl.keys.map((k, i) => {
          const kf = row.field(k.column);
          const els = kf === null ? null : parseArray(kf.toString('utf8'));
          if (els === null || els.length !== values.length) throw unsupported('pgshard cannot read the sort keys of an ordered aggregate');
          return els.map((e) => (e === null ? null : p.keyCodecs![i]!.key(Buffer.from(e, 'utf8'))));
        });
        values.forEach((v, j) => s.items.push({ v, keys: keyLists.map((l) => l[j]) }));
        return;
      }
      case 'none':
        return;
    }
  }

  private final(g: Group, i: number): TV {
    const p = this.aggs[i]!;
    const a = p.plan;
    const s = g.states[i]!;
    switch (a.fn) {
      case 'count':
        return { t: 'int', bits: 64, v: (s as { n: bigint }).n };
      case 'sum': {
        const st = s as Extract<State, { k: 'sum' }>;
        if (st.int) return { t: 'int', bits: 64, v: st.any ? N.checkIntRange(st.total, 64) : null };
        return { t: 'numeric', v: st.any ? st.dec : null };
      }
      case 'min':
      case 'max':
        return fromRaw(this.type(a.column), (s as { raw: Buffer | null }).raw);
      case 'bool_and':
      case 'bool_or':
        return { t: 'bool', v: (s as { v: boolean | null }).v };
      case 'avg': {
        const st = s as Extract<State, { k: 'avg' }>;
        if (st.n === 0n || !st.any) return { t: 'numeric', v: null };
        return { t: 'numeric', v: N.div(st.sum, N.dec(st.n, 0)) };
      }
      case 'var_samp':
      case 'var_pop':
      case 'stddev_samp':
      case 'stddev_pop': {
        const st = s as Extract<State, { k: 'var' }>;
        const sample = a.fn.endsWith('samp');
        if (st.n === 0n || (sample && st.n <= 1n)) return { t: 'numeric', v: null };
        if (st.sum.special !== null || st.squares.special !== null) return { t: 'numeric', v: N.NAN };
        return { t: 'numeric', v: N.varianceOf(st.n, st.sum, st.squares, sample, a.fn.startsWith('stddev')) };
      }
      case 'string_agg':
      case 'array_agg': {
        const items = this.sorted(p, (s as Extract<State, { k: 'list' }>).items);
        if (a.fn === 'array_agg') return { t: 'raw', oid: p.valuesOid!, v: items.length === 0 ? null : Buffer.from(formatArray(items.map((x) => x.v)), 'utf8') };
        const vs = items.filter((x) => x.v !== null).map((x) => x.v!);
        return { t: 'text', oid: Oid.text, v: vs.length === 0 ? null : Buffer.from(vs.join(a.delimiter), 'utf8') };
      }
      case 'count_distinct':
      case 'sum_distinct':
      case 'avg_distinct': {
        const vals = [...(g.distinct?.values() ?? [])].filter((e) => e.pass[i]);
        if (a.fn === 'count_distinct') return { t: 'int', bits: 64, v: BigInt(vals.length) };
        const oid = this.distinctOid;
        const intSum = a.fn === 'sum_distinct' && (oid === Oid.int2 || oid === Oid.int4);
        if (vals.length === 0) return intSum ? { t: 'int', bits: 64, v: null } : { t: 'numeric', v: null };
        let total = N.ZERO;
        for (const e of vals) total = N.add(total, numericOf(oid, e.raw));
        if (intSum) return { t: 'int', bits: 64, v: N.checkIntRange(total.units, 64) };
        if (a.fn === 'sum_distinct') return { t: 'numeric', v: total };
        return { t: 'numeric', v: N.div(total, N.dec(BigInt(vals.length), 0)) };
      }
    }
  }

  private sorted(p: Prepared, items: { v: string | null; keys: unknown[] }[]): { v: string | null; keys: unknown[] }[] {
    const keys = (p.plan as Extract<AggregatePlan, { values: number }>).keys;
    if (keys.length === 0) return items;
    const ks = keys.map((k, i) => ({ codec: p.keyCodecs![i]!, desc: k.desc, nullsFirst: k.nullsFirst }));
    return [...items].sort((x, y) => {
      for (let i = 0; i < ks.length; i++) {
        const c = compareKey(ks[i]!, x.keys[i], y.keys[i]);
        if (c !== 0) return c;
      }
      return 0;
    });
  }

  private evaluator(g: Group): Evaluator {
    const cache = new Map<number, TV>();
    return new Evaluator(
      this.ctx,
      (i) => {
        let v = cache.get(i);
        if (v === undefined) {
          v = this.final(g, i);
          cache.set(i, v);
        }
        return v;
      },
      (c) => fromRaw(this.type(c), g.row === null ? null : (g.row[c] ?? null)),
    );
  }

  /**
   * A group past HAVING, with its ORDER BY keys; `values` (the client's columns) computed only on demand.
   * Postgres evaluates HAVING and the sort keys for every group, but the select list only for the rows it
   * emits: under a LIMIT over sorted groups (GroupAggregate + Limit) the groups past the limit are never
   * projected, so an error there (a cast overflow, a division by zero) must not surface either.
   */
  private finishGroup(g: Group): { ev: Evaluator; values: (Buffer | null)[] | null; order: TV[] } | null {
    const ev = this.evaluator(g);
    if (this.plan.having !== undefined) {
      const h = ev.eval(this.plan.having);
      if (h.t !== 'bool' && h.t !== 'unknown') throw unsupported('HAVING must be a boolean condition');
      if (h.v !== true && !(h.t === 'unknown' && h.v !== null)) return null;
    }
    const order = this.plan.order.map((o) => ev.eval(o.expr));
    return { ev, values: null, order };
  }

  /** The client's values of a group (see finishGroup). */
  private project(g: Group, ev: Evaluator): (Buffer | null)[] {
    return this.plan.outputs.map((e, i) => {
      if ('column' in e) return g.row === null ? null : (g.row[e.column] ?? null);
      const v = ev.eval(e);
      const want = this.fields[i]!.typeOid;
      if (oidOf(v) !== want && !(v.t === 'unknown' && v.v === null))
        throw unsupported(`pgshard would compute column "${this.fields[i]!.name}" as ${typeName(oidOf(v))} where Postgres gives ${typeName(want)}; this expression is not supported across shards`);
      return toRaw(v);
    });
  }

  /** Whether ORDER BY needs anything but GROUP BY columns (Postgres then sorts the aggregated groups). */
  private sortsAfterGrouping(): boolean {
    return this.plan.order.some((o) => !('column' in o.expr) || !this.plan.keys.includes(o.expr.column));
  }

  /** Evaluates the computed columns Postgres does not postpone past a sort, for their errors only. */
  private computeUnpostponed(ev: Evaluator): void {
    for (const e of this.plan.outputs) if (!('column' in e) && !('agg' in e) && operatorCost(e) <= POSTPONE_COST) ev.eval(e);
  }

  /** Runs the finishing steps on an empty group, so that type problems surface before any row is sent. */
  typecheck(): void {
    const g = this.newGroup(null);
    const r = this.finishGroup(g);
    this.project(g, r?.ev ?? this.evaluator(g));
  }

  /** The client's rows (DataRow messages), after HAVING, DISTINCT, ORDER BY, OFFSET/LIMIT. */
  finish(): Buffer[] {
    if (this.groups.size === 0 && this.plan.keys.length === 0) this.groups.set('', this.newGroup(null));
    let rows: { g: Group; ev: Evaluator; values: (Buffer | null)[] | null; order: TV[] }[] = [];
    for (const g of this.groups.values()) {
      const r = this.finishGroup(g);
      if (r !== null) rows.push({ g, ...r });
    }
    const values = (r: (typeof rows)[number]): (Buffer | null)[] => (r.values ??= this.project(r.g, r.ev));
    if (this.plan.distinct) {
      const fns = this.fields.slice(0, this.visible).map((f) => equalityKey(f.typeOid, this.ctx));
      const seen = new Set<string>();
      rows = rows.filter((r) => {
        const k = values(r).map((v, i) => (v === null ? '\u0000N' : `\u0000${fns[i]!(v)}`)).join('\u0001');
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
    }
    if (this.plan.order.length > 0) {
      const ev = new Evaluator(this.ctx, () => ({ t: 'unknown', v: null }), () => ({ t: 'unknown', v: null }));
      const order = this.plan.order;
      rows.sort((x, y) => {
        for (let i = 0; i < order.length; i++) {
          const a = x.order[i]!;
          const b = y.order[i]!;
          const o = order[i]!;
          let c: number;
          if (a.v === null || b.v === null) c = a.v === b.v ? 0 : a.v === null ? (o.nullsFirst ? -1 : 1) : o.nullsFirst ? 1 : -1;
          else {
            c = ev.compare(a, b, o.byteOrder === true);
            if (o.desc) c = -c;
          }
          if (c !== 0) return c;
        }
        return 0;
      });
    }
    const lim = this.plan.limit;
    if (lim !== undefined) {
      if (lim.count !== 0) {
        rows.slice(0, lim.offset).forEach(values); // Postgres computes the rows OFFSET skips (not under LIMIT 0)
        // Sorted by anything but the GROUP BY columns, the groups are sorted after aggregating, and
        // Postgres computes every group's select list before the sort, except the columns costly enough
        // to be put off past it (make_sort_input_target); so their errors surface, even for dropped groups.
        if (this.sortsAfterGrouping()) for (const r of rows.slice(lim.offset)) this.computeUnpostponed(r.ev);
      }
      rows = rows.slice(lim.offset, lim.count === null ? undefined : lim.offset + lim.count);
    }
    return rows.map((r) => dataRowOf(values(r)));
  }
}

/**
 * Postgres puts off past a Sort + Limit the select-list expressions costing more than 10 operators
 * (make_sort_input_target: "more than 10X cpu_operator_cost"); a built-in operator, function or
 * conversion costs one.
 */
const POSTPONE_COST = 10;

function operatorCost(e: FinalExpr): number {
  if ('op' in e || 'fn' in e) return 1 + e.args.reduce((n, a) => n + operatorCost(a), 0);
  if ('cast' in e) return 1 + operatorCost(e.arg);
  return 0;
}
