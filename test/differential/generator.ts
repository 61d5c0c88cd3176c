/**
 * A seeded random query generator in the manner of Citus's query_generator: SELECTs over the
 * differential schema combining projections, filters, joins (co-located and with the reference table),
 * GROUP BY, HAVING, aggregates (with FILTER, DISTINCT, ORDER BY inside, expressions over them),
 * DISTINCT / DISTINCT ON, UNION, ORDER BY (by position, alias, expression, hidden key) and LIMIT/OFFSET.
 *
 * Each query says how its rows must be compared: `ordered` when its ORDER BY fixes the order of all
 * rows (the generator appends unique keys or every output column), else as multisets. A LIMIT is only
 * generated under a total order, where the answer is unique. A small share of queries uses constructs
 * pgshard refuses on purpose (float sums, window functions), so the refusal path is exercised too.
 */
import { Random } from './random.js';
import { COLUMNS, type Column, type Kind } from './schema.js';

export interface Generated {
  sql: string;
  ordered: boolean;
  /** Bind parameters ($1, $2: LIMIT/OFFSET values): the query goes through the extended protocol. */
  params?: number[];
}

interface Col {
  expr: string;
  kind: Kind;
  lowCard: boolean;
}

interface Source {
  from: string;
  cols: Col[];
  /** Expressions that together identify a row. */
  unique: string[];
  /** The row-identifying expression for ordered aggregates (string_agg … ORDER BY). */
  rowKey: string;
}

const cols = (alias: string, table: keyof typeof COLUMNS, only?: string[]): Col[] =>
  COLUMNS[table].filter((c: Column) => only === undefined || only.includes(c.name)).map((c) => ({ expr: `${alias}.${c.name}`, kind: c.kind, lowCard: c.lowCard === true }));

function sources(): Source[] {
  return [
    { from: 'items i', cols: cols('i', 'items'), unique: ['i.id'], rowKey: 'i.id' },
    { from: 'items i', cols: cols('i', 'items'), unique: ['i.id'], rowKey: 'i.id' },
    {
      from: 'items i JOIN details d ON d.item_id = i.id',
      cols: [...cols('i', 'items', ['id', 'grp', 'cat', 'qty', 'price', 'flag', 'ts', 'day']), ...cols('d', 'details', ['seq', 'amount', 'note', 'at'])],
      unique: ['i.id', 'd.seq'],
      rowKey: 'i.id * 10 + d.seq',
    },
    {
      from: 'items i LEFT JOIN kinds k ON k.grp = i.grp',
      cols: [...cols('i', 'items', ['id', 'grp', 'cat', 'qty', 'price', 'ratio', 'f8', 'u']), ...cols('k', 'kinds', ['label', 'weight'])],
      unique: ['i.id'],
      rowKey: 'i.id',
    },
    { from: 'details d', cols: cols('d', 'details'), unique: ['d.item_id', 'd.seq'], rowKey: 'd.item_id * 10 + d.seq' },
    { from: 'pairs p', cols: cols('p', 'pairs'), unique: ['p.a', 'p.b'], rowKey: "p.a::text || '/' || p.b" },
  ];
}

const SOURCES = sources();

const ORDERABLE: Kind[] = ['int', 'bigint', 'numeric', 'float', 'text', 'bool', 'ts', 'date', 'uuid', 'timestamp', 'interval', 'bytea'];

function literal(r: Random, k: Kind): string {
  switch (k) {
    case 'int':
      return String(r.int(-5, 500));
    case 'bigint':
      return String(BigInt(r.int(-4_000_000, 4_000_000)) * 1_000_000_000_000n);
    case 'numeric':
      return r.pick(['0', '1.5', '-10.25', '100', '999.999', '0.0000000001']);
    case 'float':
      return r.pick(['0', '1.5', "'NaN'", "'Infinity'", '-1000', '1e5']);
    case 'text':
      return r.pick(["'a'", "'apple'", "'Apple'", "'m'", "'zebra'", "''", "'é'", "'pizza'", "'late'"]);
    case 'bool':
      return r.pick(['true', 'false']);
    case 'ts':
      return r.pick(["'2010-06-01 00:00:00+00'", "'2024-01-01 12:00:00+05:30'", "'1999-12-31 23:59:59-08'"]);
    case 'date':
      return r.pick(["'2021-01-01'", "'2023-06-01'", "'2019-03-01'"]);
    case 'timestamp':
      return r.pick(["'2022-01-01 00:00:00'", "'2023-07-15 12:00:00'"]);
    case 'uuid':
      return "'80000000-0000-4000-a000-000000000000'";
    case 'interval':
      return r.pick(["'1 day'", "'30 days'", "'0'"]);
    case 'bytea':
      return r.pick(["'\\x61'", "'\\x'", "'\\x7f00'"]);
  }
}

function predicate(r: Random, src: Source): string {
  const c = r.pick(src.cols);
  const x = c.expr;
  switch (r.int(0, 9)) {
    case 0:
      return `${x} IS ${r.chance(0.5) ? '' : 'NOT '}NULL`;
    case 1:
      if (c.kind === 'int') return `${x} % 3 = ${r.int(0, 2)}`;
      return `${x} IS NOT NULL`;
    case 2:
      if (c.kind === 'text') return `${x} LIKE '${r.pick(['a', 'A', 'p', 'é', 'z'])}%'`;
      return `${x} <> ${literal(r, c.kind)}`;
    case 3:
      if (c.kind === 'bool') return r.chance(0.5) ? x : `NOT ${x}`;
      return `${x} >= ${literal(r, c.kind)}`;
    default:
      if (c.kind === 'bool') return `${x} = ${literal(r, c.kind)}`;
      return `${x} ${r.pick(['<', '>', '<=', '>=', '='])} ${literal(r, c.kind)}`;
  }
}

function where(r: Random, src: Source): string {
  const n = r.weighted([[4, 0], [4, 1], [2, 2]] as const);
  const parts = Array.from({ length: n }, () => predicate(r, src));
  if (src.from.startsWith('items i') && r.chance(0.08)) parts.push(`i.id IN (${Array.from({ length: r.int(2, 6) }, () => r.int(1, 300)).join(', ')})`);
  if (parts.length === 0) return '';
  return ' WHERE ' + (parts.length === 2 && r.chance(0.3) ? `(${parts[0]} OR ${parts[1]})` : parts.join(' AND '));
}

/** A scalar expression over one column (computed by each shard per row). */
function scalar(r: Random, c: Col): { expr: string; kind: Kind } {
  const x = c.expr;
  const n = r.int(0, 9);
  if (n < 6) return { expr: x, kind: c.kind };
  switch (c.kind) {
    case 'int':
      return r.pick([{ expr: `${x} + 1`, kind: 'int' }, { expr: `-${x}`, kind: 'int' }, { expr: `coalesce(${x}, -1)`, kind: 'int' }, { expr: `abs(${x})`, kind: 'int' }] as const);
    case 'numeric':
      return r.pick([{ expr: `${x} * 2`, kind: 'numeric' }, { expr: `round(${x}, 1)`, kind: 'numeric' }] as const);
    case 'text':
      return r.pick([{ expr: `lower(${x})`, kind: 'text' }, { expr: `${x} || '!'`, kind: 'text' }, { expr: `length(${x})`, kind: 'int' }] as const);
    case 'ts':
      return { expr: `${x} AT TIME ZONE 'UTC'`, kind: 'timestamp' };
    default:
      return { expr: x, kind: c.kind };
  }
}

const DIR = ['', ' ASC', ' DESC', ' NULLS FIRST', ' DESC NULLS LAST', ' ASC NULLS FIRST'];

interface Item {
  expr: string;
  alias?: string;
  kind: Kind;
}

function selectList(items: Item[]): string {
  return items.map((it) => (it.alias ? `${it.expr} AS ${it.alias}` : it.expr)).join(', ');
}

function limitClause(r: Random): string {
  const n = r.int(0, 9);
  if (n < 4) return '';
  if (n < 7) return ` LIMIT ${r.int(0, 25)}`;
  if (n < 9) return ` LIMIT ${r.int(1, 25)} OFFSET ${r.int(0, 40)}`;
  return ` OFFSET ${r.int(1, 60)}`;
}

/** Plain rows: projections, filters, ORDER BY (positions, aliases, expressions, hidden keys), LIMIT. */
function rowsQuery(r: Random): Generated {
  const src = r.pick(SOURCES);
  const items: Item[] = r.sample(src.cols, r.int(1, 4)).map((c, i) => {
    const s = scalar(r, c);
    return { ...s, alias: s.expr !== c.expr || r.chance(0.3) ? `c${i + 1}` : undefined };
  });
  const select = r.chance(0.1) && src.from === 'items i' ? 'i.*' : selectList(items);
  const order: string[] = [];
  const nKeys = r.weighted([[1, 0], [4, 1], [3, 2], [1, 3]] as const);
  for (let k = 0; k < nKeys; k++) {
    const m = r.int(0, 3);
    const it = r.pick(items);
    let key: string;
    if (select === 'i.*') key = r.pick(src.cols.filter((c) => ORDERABLE.includes(c.kind))).expr;
    else if (m === 0) key = String(items.indexOf(it) + 1);
    else if (m === 1 && it.alias) key = it.alias;
    else if (m === 2) key = it.expr;
    else key = scalar(r, r.pick(src.cols)).expr;
    order.push(key + r.pick(DIR));
  }
  const total = order.length > 0 && r.chance(0.85);
  if (total) order.push(...src.unique);
  const ordered = total;
  const sql = `SELECT ${select} FROM ${src.from}${where(r, src)}${order.length ? ' ORDER BY ' + order.join(', ') : ''}${ordered ? limitClause(r) : ''}`;
  return { sql, ordered };
}

/** An aggregate expression (sometimes with FILTER, DISTINCT, ORDER BY inside, or an expression around it). */
function aggregate(r: Random, src: Source): string {
  const pickKind = (ks: Kind[]): Col => {
    const cs = src.cols.filter((c) => ks.includes(c.kind));
    return cs.length > 0 ? r.pick(cs) : src.cols[0]!;
  };
  const numCol = (): Col => pickKind(['int', 'numeric', 'bigint']);
  const filter = (): string => (r.chance(0.15) ? ` FILTER (WHERE ${predicate(r, src)})` : '');
  const n = r.int(0, 99);
  if (n < 10) return `count(*)${filter()}`;
  if (n < 16) return `count(${r.pick(src.cols).expr})${filter()}`;
  if (n < 24) return `sum(${numCol().expr})${filter()}`;
  if (n < 32) return `avg(${numCol().expr})${filter()}`;
  if (n < 44) {
    const c = pickKind(ORDERABLE.filter((k) => k !== 'bool' && k !== 'uuid')); // Postgres 18 has no min(uuid)
    return `${r.pick(['min', 'max'])}(${c.expr})${filter()}`;
  }
  if (n < 48) {
    const c = pickKind(['bool']);
    return c.kind === 'bool' ? `${r.pick(['bool_and', 'bool_or', 'every'])}(${c.expr})${filter()}` : `count(*)`;
  }
  if (n < 56) return `${r.pick(['stddev', 'variance', 'stddev_pop', 'var_pop', 'stddev_samp', 'var_samp'])}(${numCol().expr})${filter()}`;
  if (n < 61) {
    const c = pickKind(['text']);
    if (c.kind !== 'text') return 'count(*)';
    return `string_agg(${c.expr}, '${r.pick([',', ' | ', ''])}' ORDER BY ${r.chance(0.5) ? `${c.expr}${r.pick(DIR)}, ` : ''}${src.rowKey}${r.pick(['', ' DESC'])})${filter()}`;
  }
  if (n < 65) {
    const c = r.pick(src.cols.filter((x) => x.kind !== 'float'));
    return `array_agg(${c.expr} ORDER BY ${src.rowKey}${r.pick(['', ' DESC'])})${filter()}`;
  }
  if (n < 72) {
    const c = r.chance(0.7) ? pickKind(['int', 'text', 'bool', 'date', 'uuid']) : numCol();
    const fn = ['int', 'numeric', 'bigint'].includes(c.kind) ? r.pick(['count', 'count', 'sum', 'avg']) : 'count';
    return `${fn}(DISTINCT ${c.expr})${filter()}`;
  }
  if (n < 90) {
    const c = numCol();
    const ints = src.cols.filter((x) => x.kind === 'int');
    const i = ints.length > 0 ? r.pick(ints).expr : 'NULL::int';
    return r.pick([
      `sum(${c.expr}) / count(*)`,
      `round(avg(${c.expr}), ${r.int(0, 4)})`,
      `coalesce(sum(${c.expr}), 0)`,
      `count(*) * 2 + 1`,
      `max(${i}) - min(${i})`,
      `sum(${c.expr})::numeric / nullif(count(${c.expr}), 0)`,
      `avg(${c.expr})::numeric(20,3)`,
      `count(*)::int`,
      `CASE WHEN count(*) > ${r.int(1, 30)} THEN 'many' ELSE 'few' END`,
      `sum(${i}) % 7`,
      `-sum(${i})`,
      `greatest(max(${i}), 0)`,
      `abs(min(${c.expr}))`,
      `trunc(avg(${c.expr}), 1)`,
      `count(*) FILTER (WHERE ${predicate(r, src)}) + count(${c.expr})`,
    ]);
  }
  if (n < 97) return `count(*)`;
  // Refused on purpose: floating-point sums and averages, ordered-set aggregates.
  const f = src.cols.find((x) => x.kind === 'float');
  return r.pick([f ? `sum(${f.expr})` : 'count(*)', f ? `avg(${f.expr})` : 'count(*)', `percentile_cont(0.5) WITHIN GROUP (ORDER BY ${numCol().expr})`]);
}

function having(r: Random, src: Source): string {
  if (!r.chance(0.3)) return '';
  const c = src.cols.find((x) => x.kind === 'int' || x.kind === 'numeric');
  return ` HAVING ${r.pick([`count(*) > ${r.int(0, 20)}`, c ? `sum(${c.expr}) > ${r.int(-100, 2000)}` : 'count(*) > 1', `count(*) >= ${r.int(1, 5)}`, c ? `max(${c.expr}) IS NOT NULL` : 'true', c ? `avg(${c.expr}) < ${r.int(0, 500)} OR count(*) = 1` : 'true'])}`;
}

/** Aggregates without GROUP BY. */
function aggregateQuery(r: Random): Generated {
  const src = r.pick(SOURCES);
  const aggs = Array.from({ length: r.int(1, 4) }, () => aggregate(r, src));
  const sql = `SELECT ${aggs.join(', ')} FROM ${src.from}${where(r, src)}${having(r, src)}`;
  return { sql, ordered: true };
}

/** GROUP BY with aggregates, HAVING, ORDER BY, LIMIT. */
function groupQuery(r: Random): Generated {
  const src = r.pick(SOURCES);
  const low = src.cols.filter((c) => c.lowCard);
  const keyCols = r.sample(low.length > 0 ? low : src.cols, r.int(1, 2));
  const keys: Item[] = keyCols.map((c, i) => {
    let expr = c.expr;
    let kind = c.kind;
    if (r.chance(0.2)) {
      if (c.kind === 'int') expr = `${c.expr} % 3`;
      else if (c.kind === 'text') expr = `lower(${c.expr})`;
      else if (c.kind === 'date') expr = `date_trunc('year', ${c.expr})`;
      if (c.kind === 'date' && expr !== c.expr) kind = 'ts';
    }
    return { expr, kind, alias: r.chance(0.3) ? `g${i + 1}` : undefined };
  });
  const aggs: Item[] = Array.from({ length: r.int(1, 3) }, (_, i) => ({ expr: aggregate(r, src), kind: 'numeric' as Kind, alias: r.chance(0.3) ? `a${i + 1}` : undefined }));
  // Sometimes a GROUP BY key is not selected (pgshard keeps it in a hidden column).
  const shown = keys.length > 1 && r.chance(0.2) ? keys.slice(1) : keys;
  const items = r.chance(0.5) ? [...shown, ...aggs] : [...aggs, ...shown];
  if (r.chance(0.1)) items.push({ expr: r.pick(["'k'", '42', 'NULL::int', 'true']), kind: 'text' });
  const groupBy = keys.map((k) => {
    const m = r.int(0, 2);
    if (!items.includes(k)) return k.expr;
    if (m === 0) return String(items.indexOf(k) + 1);
    if (m === 1 && k.alias) return k.alias;
    return k.expr;
  });
  const order: string[] = [];
  for (let n = r.weighted([[2, 0], [3, 1], [2, 2]] as const); n > 0; n--) {
    if (r.chance(0.15)) {
      order.push(aggregate(r, src) + r.pick(DIR)); // an aggregate that is not selected
      continue;
    }
    const it = r.pick(items);
    const m = r.int(0, 2);
    if (it.kind === 'text' && /^'|^\d|^NULL|^true/.test(it.expr) && m !== 0) continue; // a constant: only by position
    order.push((m === 0 ? String(items.indexOf(it) + 1) : m === 1 && it.alias ? it.alias : it.expr) + r.pick(DIR));
  }
  const total = r.chance(0.85);
  if (total) for (const k of keys) order.push(items.includes(k) ? String(items.indexOf(k) + 1) : k.expr);
  const distinct = r.chance(0.05) && shown === keys ? 'DISTINCT ' : '';
  const sql = `SELECT ${distinct}${selectList(items)} FROM ${src.from}${where(r, src)} GROUP BY ${groupBy.join(', ')}${having(r, src)}${order.length ? ' ORDER BY ' + order.join(', ') : ''}${total ? limitClause(r) : ''}`;
  return { sql, ordered: total };
}

/** DISTINCT and DISTINCT ON. */
function distinctQuery(r: Random): Generated {
  const src = r.pick(SOURCES);
  const low = src.cols.filter((c) => c.lowCard && ORDERABLE.includes(c.kind));
  const chosen = r.sample(low.length > 0 ? low : src.cols, r.int(1, 3));
  if (r.chance(0.6)) {
    const items = chosen.map((c) => scalar(r, c));
    const ordered = r.chance(0.7);
    const order = ordered ? ' ORDER BY ' + items.map((_, i) => `${i + 1}${r.pick(DIR)}`).join(', ') : '';
    return { sql: `SELECT DISTINCT ${items.map((x) => x.expr).join(', ')} FROM ${src.from}${where(r, src)}${order}${ordered ? limitClause(r) : ''}`, ordered };
  }
  const on = chosen[0]!;
  const ordered = r.chance(0.8);
  // Without ORDER BY, Postgres keeps an arbitrary row of each group: only the DISTINCT ON column is then determined.
  const rest = ordered ? r.sample(src.cols, r.int(1, 2)) : [];
  const order = ordered ? ` ORDER BY ${on.expr}${r.pick(DIR)}, ${r.chance(0.5) ? `${r.pick(rest).expr}${r.pick(DIR)}, ` : ''}${src.unique.join(', ')}` : '';
  return {
    sql: `SELECT DISTINCT ON (${on.expr}) ${[on, ...rest].map((c) => c.expr).join(', ')} FROM ${src.from}${where(r, src)}${order}${ordered ? limitClause(r) : ''}`,
    ordered: ordered,
  };
}

/** UNION [ALL] of two sharded tables. */
function unionQuery(r: Random): Generated {
  const items = SOURCES[0]!;
  const pairs = SOURCES[5]!;
  const all = r.chance(0.5) ? ' ALL' : '';
  const ordered = r.chance(0.8);
  const order = ordered ? ` ORDER BY ${r.chance(0.5) ? '2, 1' : '1 DESC, 2'}` : '';
  return {
    sql: `SELECT i.grp, i.cat FROM items i${where(r, items)} UNION${all} SELECT p.a, p.b FROM pairs p${where(r, pairs)}${order}${ordered ? limitClause(r) : ''}`,
    ordered,
  };
}

/** Constructs pgshard refuses on purpose. */
function refusedQuery(r: Random): Generated {
  return r.pick([
    { sql: 'SELECT i.id, row_number() OVER (ORDER BY i.qty) FROM items i ORDER BY 1', ordered: true },
    { sql: 'SELECT sum(i.f8) FROM items i', ordered: true },
    { sql: 'SELECT i.grp, avg(i.f4) FROM items i GROUP BY 1 ORDER BY 1', ordered: true },
  ]);
}

export function generate(seed: number): Generated {
  const r = new Random(seed);
  const g = r.weighted([
    [30, rowsQuery],
    [15, aggregateQuery],
    [33, groupQuery],
    [13, distinctQuery],
    [6, unionQuery],
    [1, refusedQuery],
  ] as const)(r);
  return r.chance(0.4) ? withLimitParams(g) : g;
}

/** A trailing LIMIT/OFFSET with literal counts becomes `LIMIT $1 OFFSET $2`, as query builders send it. */
function withLimitParams(g: Generated): Generated {
  const m = / (LIMIT (\d+))?( OFFSET (\d+))?$/.exec(g.sql);
  if (m === null || m[0] === '') return g;
  const params: number[] = [];
  let tail = '';
  if (m[2] !== undefined) {
    params.push(Number(m[2]));
    tail += ` LIMIT $${params.length}`;
  }
  if (m[4] !== undefined) {
    params.push(Number(m[4]));
    tail += ` OFFSET $${params.length}`;
  }
  return params.length === 0 ? g : { ...g, sql: g.sql.slice(0, m.index) + tail, params };
}
