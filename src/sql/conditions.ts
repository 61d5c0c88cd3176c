import type { Node, SubLink } from 'libpg-query';
import type { KeyExpr } from './types.js';
import type { KeyType } from '../config/schema.js';
import { conjuncts, forEachSubLink, operatorName, stripCasts } from './ast.js';
import { asNested, queryBlock, type BlockState } from './block.js';
import { anyKeys, dedupeKeys, keyExprOf, listKeys } from './keys.js';
import type { Resolved } from './scope.js';

/**
 * Where a condition sits decides what its shard-key equalities prove. A WHERE clause or an inner join's ON
 * filters rows: `u.id = 5` bounds which rows of u matter, `o.user_id = u.id` pairs rows on one shard.
 * An outer join's ON filters only the nullable side.
 */
export interface ConditionMode {
  /** Does the condition filter this occurrence's rows (so a key restriction on it holds)? */
  restricts(occ: number): boolean;
  /** Does an equality between these two occurrences pair their rows? */
  links(a: number, b: number): boolean;
  /** Do the key values of `from` that matter bound those of `to`? */
  flows(from: number, to: number): boolean;
  /** The condition filters the block's result rows (WHERE). */
  readonly filtersResult: boolean;
}

export const WHERE_MODE: ConditionMode = {
  restricts: () => true,
  links: () => true,
  flows: () => true,
  filtersResult: true,
};

export const INNER_JOIN_MODE: ConditionMode = { ...WHERE_MODE, filtersResult: false };

/** The ON of `left LEFT JOIN right` (swap the sides for RIGHT JOIN). */
export function outerJoinMode(nullable: ReadonlySet<number>): ConditionMode {
  return {
    restricts: (o) => nullable.has(o),
    links: (a, b) => nullable.has(a) || nullable.has(b),
    flows: (_from, to) => nullable.has(to),
    filtersResult: false,
  };
}

export function fullJoinMode(left: ReadonlySet<number>, right: ReadonlySet<number>): ConditionMode {
  return {
    restricts: () => false,
    links: (a, b) => (left.has(a) && right.has(b)) || (right.has(a) && left.has(b)),
    flows: () => false,
    filtersResult: false,
  };
}

/** Records what a condition's top-level conjuncts say about shard keys, and analyses its sub-SELECTs. */
export function applyCondition(block: BlockState, expr: Node | undefined, mode: ConditionMode): void {
  for (const c of conjuncts(expr)) {
    if ('SubLink' in c && c.SubLink.subLinkType === 'ANY_SUBLINK') {
      subLink(block, c.SubLink, mode);
      continue;
    }
    if ('BoolExpr' in c && c.BoolExpr.boolop === 'OR_EXPR') {
      const found = orRestrictions(block, c);
      if (found !== undefined) {
        for (const [occ, keys] of found) {
          if (!mode.restricts(occ)) continue;
          block.env.ctx.restrict(occ, keys);
          if (mode.filtersResult) block.anchoredByFilter = true;
        }
      }
      forEachSubLink(c, (s) => subLink(block, s, null));
      continue;
    }
    const handled = new Set<SubLink>();
    for (const atom of atomsOf(c)) {
      // key = (SELECT other_key ...): like IN when the sub-SELECT has one key value (else it may have
      // several rows, an error Postgres must raise itself).
      const scalar = atom.kind === 'eq' ? scalarSubLink(atom) : undefined;
      if (scalar !== undefined) {
        handled.add(scalar.sublink);
        subLink(block, scalar.sublink, mode, scalar.column);
        continue;
      }
      applyAtom(block, atom, mode);
    }
    forEachSubLink(c, (s) => {
      if (!handled.has(s)) subLink(block, s, null);
    });
  }
}

function scalarSubLink(atom: Extract<Atom, { kind: 'eq' }>): { sublink: SubLink; column: Node } | undefined {
  for (const [col, other] of [
    [atom.a, atom.b],
    [atom.b, atom.a],
  ] as const) {
    if ('ColumnRef' in col && 'SubLink' in other && other.SubLink.subLinkType === 'EXPR_SUBLINK') return { sublink: other.SubLink, column: col };
  }
  return undefined;
}

type Atom = { kind: 'eq'; a: Node; b: Node } | { kind: 'in'; col: Node; values: Node[] } | { kind: 'any'; col: Node; array: Node };

/** The shard-key-relevant comparisons of one conjunct: `=`, `IS NOT DISTINCT FROM`, `IN (...)`, `= ANY(...)`, row-wise forms. */
function atomsOf(c: Node): Atom[] {
  if (!('A_Expr' in c)) return [];
  const e = c.A_Expr;
  if (e.lexpr === undefined || e.rexpr === undefined || operatorName(e.name) !== '=') return [];
  switch (e.kind) {
    case 'AEXPR_OP':
      return pairs(e.lexpr, e.rexpr);
    case 'AEXPR_NOT_DISTINCT':
      return pairs(e.lexpr, e.rexpr).filter((p) => p.kind !== 'eq' || (!isNullConst(p.a) && !isNullConst(p.b)));
    case 'AEXPR_IN': {
      const items = 'List' in e.rexpr ? (e.rexpr.List.items ?? []) : undefined;
      if (items === undefined) return [];
      if (!('RowExpr' in e.lexpr)) return [{ kind: 'in', col: e.lexpr, values: items }];
      const cols = e.lexpr.RowExpr.args ?? [];
      const out: Atom[] = [];
      cols.forEach((col, i) => {
        const values: Node[] = [];
        for (const item of items) {
          const args = 'RowExpr' in item ? item.RowExpr.args : undefined;
          if (args === undefined || args.length !== cols.length) return;
          values.push(args[i]!);
        }
        out.push({ kind: 'in', col, values });
      });
      return out;
    }
    case 'AEXPR_OP_ANY':
      return 'RowExpr' in e.lexpr ? [] : [{ kind: 'any', col: e.lexpr, array: e.rexpr }];
    default:
      return [];
  }
}

function pairs(l: Node, r: Node): Atom[] {
  const lr = 'RowExpr' in l ? l.RowExpr.args : undefined;
  const rr = 'RowExpr' in r ? r.RowExpr.args : undefined;
  if (lr === undefined && rr === undefined) return [{ kind: 'eq', a: l, b: r }];
  if (lr === undefined || rr === undefined || lr.length !== rr.length) return [];
  return lr.map((a, i) => ({ kind: 'eq' as const, a, b: rr[i]! }));
}

function isNullConst(n: Node): boolean {
  const s = stripCasts(n);
  return 'A_Const' in s && s.A_Const.isnull === true;
}

/** A bare column reference (no cast: a cast column may compare differently) resolved to shard-key occurrences. */
function columnOf(block: BlockState, n: Node): Resolved | null {
  return 'ColumnRef' in n ? block.scope.resolve(n.ColumnRef.fields) : null;
}

function applyAtom(block: BlockState, atom: Atom, mode: ConditionMode): void {
  if (atom.kind === 'eq') {
    const ra = columnOf(block, atom.a);
    const rb = columnOf(block, atom.b);
    if (ra !== null && rb !== null) linkColumns(block, ra, rb, mode);
    else if (ra !== null && !ra.outer) restrictColumn(block, ra, mode, (t) => one(keyOrInvalid(atom.b, t)));
    else if (rb !== null && !rb.outer) restrictColumn(block, rb, mode, (t) => one(keyOrInvalid(atom.a, t)));
    return;
  }
  const r = columnOf(block, atom.col);
  if (r === null || r.outer) return;
  if (atom.kind === 'in') restrictColumn(block, r, mode, (t) => listKeys(atom.values, t));
  else restrictColumn(block, r, mode, (t) => anyKeys(atom.array, t));
}

function one(k: KeyExpr | undefined): KeyExpr[] | undefined {
  return k === undefined ? undefined : [k];
}

function restrictColumn(
  block: BlockState,
  r: Resolved,
  mode: ConditionMode,
  keysFor: (t: 'bigint' | 'int' | 'text' | 'uuid') => KeyExpr[] | undefined,
): void {
  const ctx = block.env.ctx;
  for (const occ of r.occs) {
    if (!mode.restricts(occ)) continue;
    const keys = keysFor(ctx.occurrences[occ]!.keyType);
    if (keys === undefined) continue;
    ctx.restrict(occ, keys);
    if (mode.filtersResult && r.merged !== true) block.anchoredByFilter = true;
  }
}

function linkColumns(block: BlockState, ra: Resolved, rb: Resolved, mode: ConditionMode): void {
  const ctx = block.env.ctx;
  if (ra.outer && rb.outer) return;
  if (ra.outer || rb.outer) {
    // A correlated equality: the inner rows that matter are those with the outer row's key.
    const outer = ra.outer ? ra : rb;
    const inner = ra.outer ? rb : ra;
    for (const i of inner.occs) {
      if (!mode.restricts(i)) continue;
      for (const o of outer.occs) {
        if (!ctx.link(o, i)) continue;
        ctx.flow(o, i);
        block.correlated = true;
      }
    }
    return;
  }
  for (const a of ra.occs) {
    for (const b of rb.occs) {
      if (!mode.links(a, b) || !ctx.link(a, b)) continue;
      if (mode.flows(a, b)) ctx.flow(a, b);
      if (mode.flows(b, a)) ctx.flow(b, a);
      if (mode.filtersResult) block.anchoredByFilter = true;
    }
  }
}

/**
 * `a = 1 OR a = 2` restricts a to {1, 2}; every branch must restrict the occurrence, else it is not
 * restricted at all. Branches may be AND-ed conditions and nested ORs.
 */
function orRestrictions(block: BlockState, expr: Node): Map<number, KeyExpr[]> | undefined {
  if (!('BoolExpr' in expr) || expr.BoolExpr.boolop !== 'OR_EXPR') return branchRestrictions(block, expr);
  let acc: Map<number, KeyExpr[]> | undefined;
  for (const branch of expr.BoolExpr.args ?? []) {
    const m = branchRestrictions(block, branch);
    if (m === undefined || m.size === 0) return undefined;
    if (acc === undefined) {
      acc = m;
      continue;
    }
    const next = new Map<number, KeyExpr[]>();
    for (const [occ, keys] of acc) {
      const other = m.get(occ);
      if (other !== undefined) next.set(occ, dedupeKeys([...keys, ...other]));
    }
    if (next.size === 0) return undefined;
    acc = next;
  }
  return acc;
}

function branchRestrictions(block: BlockState, expr: Node): Map<number, KeyExpr[]> | undefined {
  const out = new Map<number, KeyExpr[]>();
  const ctx = block.env.ctx;
  const add = (occ: number, keys: KeyExpr[] | undefined): void => {
    if (keys === undefined) return;
    const prev = out.get(occ);
    if (prev === undefined || keys.length < prev.length) out.set(occ, keys);
  };
  for (const c of conjuncts(expr)) {
    if ('BoolExpr' in c && c.BoolExpr.boolop === 'OR_EXPR') {
      const m = orRestrictions(block, c);
      if (m !== undefined) for (const [occ, keys] of m) add(occ, keys);
      continue;
    }
    for (const atom of atomsOf(c)) {
      if (atom.kind === 'eq') {
        const ra = columnOf(block, atom.a);
        const rb = columnOf(block, atom.b);
        if (ra !== null && rb === null && !ra.outer) for (const o of ra.occs) add(o, one(keyOrInvalid(atom.b, ctx.occurrences[o]!.keyType)));
        if (rb !== null && ra === null && !rb.outer) for (const o of rb.occs) add(o, one(keyOrInvalid(atom.a, ctx.occurrences[o]!.keyType)));
        continue;
      }
      const r = columnOf(block, atom.col);
      if (r === null || r.outer) continue;
      for (const o of r.occs) {
        const t = ctx.occurrences[o]!.keyType;
        add(o, atom.kind === 'in' ? listKeys(atom.values, t) : anyKeys(atom.array, t));
      }
    }
  }
  return out;
}

/**
 * Analyses a sub-SELECT in an expression. `key IN (SELECT other_key ...)` pairs the two keys (each value
 * can only match rows on its own shard); as a filtering conjunct (`mode` given) it also restricts the outer
 * key to what the sub-SELECT returns.
 */
export function subLink(block: BlockState, s: SubLink, mode: ConditionMode | null, scalarOf?: Node): void {
  const env = block.env;
  const inner = asNested(env, queryBlock(env, s.subselect, block.scope, block.scope.ctes));
  let testexpr: Node;
  if (scalarOf !== undefined) {
    if (!env.ctx.sameSingleKey(inner.occs)) return;
    testexpr = scalarOf;
  } else {
    if (s.subLinkType !== 'ANY_SUBLINK' || s.testexpr === undefined) return;
    if (s.operName !== undefined && operatorName(s.operName) !== '=') return;
    testexpr = s.testexpr;
  }
  if (inner.columns === null) return;
  const tests = 'RowExpr' in testexpr ? (testexpr.RowExpr.args ?? []) : [testexpr];
  tests.forEach((t, i) => {
    const col = inner.columns![i]?.occ;
    const r = columnOf(block, t);
    if (col === undefined || r === null || r.outer) return;
    for (const o of r.occs) {
      if (!env.ctx.link(o, col)) continue;
      env.ctx.flow(o, col);
      if (mode !== null && mode.restricts(o)) {
        env.ctx.flow(col, o);
        if (mode.filtersResult) block.anchoredByFilter = true;
      }
    }
  });
}

/**
 * A literal that is not a valid value of the key's type (`id = 'abc'` for a bigint key) makes Postgres
 * fail the statement while analysing it, on any shard: it needs no particular shard, like a NULL key, and
 * one shard then answers with Postgres's own error (22P02).
 */
function keyOrInvalid(node: Node, keyType: KeyType): KeyExpr | undefined {
  const k = keyExprOf(node, keyType);
  if (k !== undefined || keyType === 'text') return k;
  const n = stripCasts(node);
  return 'A_Const' in n && n.A_Const.sval !== undefined ? { kind: 'null' } : undefined;
}
