import type { FuncCall, Node, SubLink } from 'libpg-query';

/**
 * Small helpers over libpg-query's JSON AST. Nodes are wrapped (`{SelectStmt: {...}}`), zero and false
 * values are omitted, and lists are arrays of wrapped nodes.
 */

/** The name of a `{String: {sval}}` node. */
export function stringOf(n: Node | undefined): string | undefined {
  return n !== undefined && 'String' in n ? (n.String.sval ?? '') : undefined;
}

/** The strings of a name list such as `funcname`, `names` or `ColumnRef.fields` (undefined if any part is not a string, e.g. `*`). */
export function namesOf(list: Node[] | undefined): string[] | undefined {
  if (list === undefined) return undefined;
  const out: string[] = [];
  for (const n of list) {
    const s = stringOf(n);
    if (s === undefined) return undefined;
    out.push(s);
  }
  return out;
}

/** The operator of an A_Expr: `=` for both `=` and `OPERATOR(pg_catalog.=)`. */
export function operatorName(name: Node[] | undefined): string | undefined {
  const names = namesOf(name);
  if (names === undefined || names.length === 0) return undefined;
  if (names.length === 2 && names[0] !== 'pg_catalog') return undefined;
  return names[names.length - 1];
}

/** The top-level conjuncts of a condition: `a AND (b AND c)` gives a, b, c. */
export function conjuncts(expr: Node | undefined, out: Node[] = []): Node[] {
  if (expr === undefined) return out;
  if ('BoolExpr' in expr && expr.BoolExpr.boolop === 'AND_EXPR') {
    for (const a of expr.BoolExpr.args ?? []) conjuncts(a, out);
  } else {
    out.push(expr);
  }
  return out;
}

/** Strips casts and COLLATE, which do not change which value is meant: `$1::bigint`, `CAST('42' AS int8)`, `'x' COLLATE "C"`. */
export function stripCasts(n: Node): Node {
  let cur = n;
  for (;;) {
    if ('TypeCast' in cur && cur.TypeCast.arg !== undefined) cur = cur.TypeCast.arg;
    else if ('CollateClause' in cur && cur.CollateClause.arg !== undefined) cur = cur.CollateClause.arg;
    else return cur;
  }
}

/** True when a TypeCast target is an array type (`::bigint[]`). */
export function isArrayCast(n: Node): boolean {
  return 'TypeCast' in n && (n.TypeCast.typeName?.arrayBounds?.length ?? 0) > 0;
}

/**
 * Visits every SubLink (sub-SELECT in an expression) under `node`, without descending into the sub-SELECTs
 * themselves: those are analysed as blocks of their own by the caller.
 */
export function forEachSubLink(node: unknown, visit: (s: SubLink) => void): void {
  if (Array.isArray(node)) {
    for (const x of node) forEachSubLink(x, visit);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const k in obj) {
    const v = obj[k];
    if (v === null || typeof v !== 'object') continue;
    if (k === 'SubLink') {
      const s = v as SubLink;
      visit(s);
      forEachSubLink(s.testexpr, visit);
    } else {
      forEachSubLink(v, visit);
    }
  }
}

/** Visits the function calls of an expression, not those inside sub-SELECTs. */
export function forEachCall(node: unknown, visit: (f: FuncCall | null, kind: string) => void): void {
  if (Array.isArray(node)) {
    for (const x of node) forEachCall(x, visit);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const k in obj) {
    const v = obj[k];
    if (v === null || typeof v !== 'object' || k === 'SubLink') continue;
    if (k === 'FuncCall') visit(v as FuncCall, k);
    else if (k === 'JsonArrayAgg' || k === 'JsonObjectAgg') visit(null, k);
    forEachCall(v, visit);
  }
}

/** The single wrapped key of a node: its type name (`SelectStmt`, `A_Const`, ...). */
export function nodeType(n: Node): string {
  for (const k in n) return k;
  return '';
}
