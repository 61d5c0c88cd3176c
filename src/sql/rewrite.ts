import type { Node, SelectStmt } from 'libpg-query';
import { parseSync } from 'libpg-query';
import { deparseSync } from 'pgsql-deparser';

/**
 * Rewriting a statement for the shards: AST helpers, and the one way back to SQL text — pgsql-deparser,
 * whose output is parsed again with Postgres's own parser and compared with the intended tree. The
 * deparser gets some forms wrong (FETCH … WITH TIES becomes LIMIT, mixed-case CTE names lose their
 * quotes; see the research notes): such a rewrite is refused instead of sent.
 */

/** Thrown while planning a cross-shard statement that pgshard cannot answer exactly. */
export class Unsupported extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'Unsupported';
  }
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Source positions in libpg-query's JSON (ParseLoc fields), which do not change a statement's meaning. */
const POSITION_KEY = /^(location|stmt_location|stmt_len|list_start|list_end)$|_location$|_list_(start|end)$/;

/** A JSON text of a tree without source positions, with keys in a fixed order: equal for equal meaning. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (key, value: unknown) => {
    if (POSITION_KEY.test(key)) return undefined;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const o = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o).sort()) out[k] = o[k];
      return out;
    }
    return value;
  });
}

export function sameTree(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

/** An expression node as the parser builds it from `sql`. */
export function parseExpr(sql: string): Node {
  const s = parseSync(`SELECT ${sql}`).stmts?.[0]?.stmt;
  const t = s && 'SelectStmt' in s ? s.SelectStmt.targetList?.[0] : undefined;
  if (t === undefined || !('ResTarget' in t) || t.ResTarget.val === undefined) throw new Error(`not an expression: ${sql}`);
  return t.ResTarget.val;
}

/** `{ResTarget: {name, val}}`. */
export function target(val: Node, name?: string): Node {
  return { ResTarget: name === undefined ? { val } : { name, val } };
}

export function intConst(n: number): Node {
  return { A_Const: { ival: n === 0 ? {} : { ival: n } } } as Node;
}

/** Deparses a rewritten SELECT and checks that Postgres's parser reads the text back as the same tree. */
export function deparseChecked(stmt: SelectStmt): string {
  const node: Node = { SelectStmt: stmt };
  let sql: string;
  try {
    sql = deparseSync(node, { pretty: false });
  } catch (e) {
    throw new Unsupported(`pgshard could not write the rewritten statement for the shards: ${(e as Error).message}`);
  }
  let again: unknown;
  try {
    again = parseSync(sql).stmts?.[0]?.stmt;
  } catch {
    again = undefined;
  }
  if (again === undefined || !sameTree(again, node))
    throw new Unsupported('this statement cannot be rewritten for the shards exactly (its rewritten text would not mean the same)', 'Send it with a shard key condition, or simplify the constructs named in the documentation (FETCH … WITH TIES, quoted mixed-case CTE names).');
  return sql;
}

/** Visits every node of a tree except what lies inside sub-SELECTs (SubLink). */
export function walk(node: unknown, visit: (n: Node) => boolean | void): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, visit);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const k in obj) {
    const v = obj[k];
    if (v === null || typeof v !== 'object') continue;
    if (/^[A-Z]/.test(k)) {
      if (visit({ [k]: v } as Node) === false) continue;
      if (k === 'SubLink') continue;
    }
    walk(v, visit);
  }
}
