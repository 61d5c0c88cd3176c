import type { Node, ResTarget } from 'libpg-query';
import { namesOf } from './ast.js';

/**
 * The name Postgres gives an output column without an alias (parser/parse_target.c, FigureColname), so
 * that `ORDER BY name` resolves to the same output column pgshard compares on. Returns undefined where
 * pgshard does not reproduce the rule (XML and JSON constructors): callers then refuse rather than guess.
 */
export function outputName(t: ResTarget): string | undefined {
  if (t.name !== undefined) return t.name;
  const r = figure(t.val);
  if (r === undefined) return undefined;
  return r.strength > 0 ? r.name : '?column?';
}

interface Figured {
  name: string;
  strength: number;
}

const NONE: Figured = { name: '?column?', strength: 0 };

const SVF: Record<string, string> = {
  SVFOP_CURRENT_DATE: 'current_date', SVFOP_CURRENT_TIME: 'current_time', SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp', SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp', SVFOP_LOCALTIME: 'localtime',
  SVFOP_LOCALTIME_N: 'localtime', SVFOP_LOCALTIMESTAMP: 'localtimestamp', SVFOP_LOCALTIMESTAMP_N: 'localtimestamp',
  SVFOP_CURRENT_ROLE: 'current_role', SVFOP_CURRENT_USER: 'current_user', SVFOP_USER: 'user', SVFOP_SESSION_USER: 'session_user',
  SVFOP_CURRENT_CATALOG: 'current_catalog', SVFOP_CURRENT_SCHEMA: 'current_schema',
};

function lastString(list: Node[] | undefined): string | undefined {
  let name: string | undefined;
  for (const n of list ?? []) if ('String' in n) name = n.String.sval ?? '';
  return name;
}

function figure(node: Node | undefined): Figured | undefined {
  if (node === undefined) return NONE;
  if ('ColumnRef' in node) {
    const n = lastString(node.ColumnRef.fields);
    return n !== undefined ? { name: n, strength: 2 } : NONE;
  }
  if ('A_Indirection' in node) {
    const n = lastString(node.A_Indirection.indirection);
    return n !== undefined ? { name: n, strength: 2 } : figure(node.A_Indirection.arg);
  }
  if ('FuncCall' in node) {
    const names = namesOf(node.FuncCall.funcname);
    return names !== undefined ? { name: names[names.length - 1]!, strength: 2 } : undefined;
  }
  if ('A_Expr' in node) return node.A_Expr.kind === 'AEXPR_NULLIF' ? { name: 'nullif', strength: 2 } : NONE;
  if ('TypeCast' in node) {
    const inner = figure(node.TypeCast.arg);
    if (inner === undefined) return undefined;
    if (inner.strength <= 1) {
      const n = lastString(node.TypeCast.typeName?.names);
      if (n !== undefined) return { name: n, strength: 1 };
    }
    return inner;
  }
  if ('CollateClause' in node) return figure(node.CollateClause.arg);
  if ('GroupingFunc' in node) return { name: 'grouping', strength: 2 };
  if ('SubLink' in node) {
    const s = node.SubLink;
    if (s.subLinkType === 'EXISTS_SUBLINK') return { name: 'exists', strength: 2 };
    if (s.subLinkType === 'ARRAY_SUBLINK') return { name: 'array', strength: 2 };
    if (s.subLinkType === 'EXPR_SUBLINK') {
      const sel = s.subselect && 'SelectStmt' in s.subselect ? s.subselect.SelectStmt : undefined;
      if (sel === undefined || (sel.op !== undefined && sel.op !== 'SETOP_NONE')) return undefined;
      const first = sel.targetList?.[0];
      if (first === undefined || !('ResTarget' in first)) return undefined;
      const name = outputName(first.ResTarget);
      if (name === undefined) return undefined;
      return name === '?column?' && first.ResTarget.name === undefined ? NONE : { name, strength: 2 };
    }
    return NONE;
  }
  if ('CaseExpr' in node) {
    const d = figure(node.CaseExpr.defresult);
    if (d === undefined) return undefined;
    return d.strength <= 1 ? { name: 'case', strength: 1 } : d;
  }
  if ('A_ArrayExpr' in node) return { name: 'array', strength: 2 };
  if ('RowExpr' in node) return { name: 'row', strength: 2 };
  if ('CoalesceExpr' in node) return { name: 'coalesce', strength: 2 };
  if ('MinMaxExpr' in node) return node.MinMaxExpr.op === 'IS_GREATEST' ? { name: 'greatest', strength: 2 } : node.MinMaxExpr.op === 'IS_LEAST' ? { name: 'least', strength: 2 } : NONE;
  if ('SQLValueFunction' in node) {
    const n = SVF[node.SQLValueFunction.op ?? ''];
    return n !== undefined ? { name: n, strength: 2 } : undefined;
  }
  for (const k in node) if (k.startsWith('Xml') || k.startsWith('Json') || k === 'MergeSupportFunc') return undefined;
  return NONE;
}
