import type { Node, RangeVar } from 'libpg-query';
import type { RouteSpec } from './types.js';
import { namesOf, nodeType } from './ast.js';
import { StatementContext } from './context.js';
import { recordTable } from './from.js';
import type { ShardingSchema } from './schema.js';
import { utilityTag } from './tags.js';

export interface UtilityOutcome {
  tag: string;
  route: RouteSpec;
  readOnly: boolean;
}

/** Statements that only concern the connection they are sent on: they go to the session's home shard. */
const LOCAL = new Set([
  'VariableShowStmt', 'ListenStmt', 'UnlistenStmt', 'NotifyStmt', 'LoadStmt', 'FetchStmt', 'ClosePortalStmt', 'ExecuteStmt', 'CallStmt',
]);

/** Statements that change data or definitions but may do nothing to tables (CALL and EXECUTE run unknown code). */
const NOT_READ_ONLY_LOCAL = new Set(['ExecuteStmt', 'CallStmt']);

const TABLE_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE']);

/**
 * DDL and other utility statements. Schema changes must reach every shard: a statement naming a sharded
 * table goes to all of that table's shards, anything else to every shard as a reference write (tables are
 * checked against the schema, so `unknown_tables: refuse` also guards DDL).
 */
export function utilityStatement(schema: ShardingSchema, node: Node): UtilityOutcome {
  const tag = utilityTag(node);
  const type = nodeType(node);
  if (LOCAL.has(type)) return { tag, route: { type: 'none' }, readOnly: !NOT_READ_ONLY_LOCAL.has(type) };
  const ctx = new StatementContext();
  ctx.readOnly = false;
  for (const t of tablesOf(node)) recordTable(schema, ctx, t.schemaname, t.relname ?? '', false);
  return { tag, route: broadcastRoute(ctx), readOnly: false };
}

/** The route of a statement that must run wherever the tables it names are (every shard for no table). */
export function broadcastRoute(ctx: StatementContext): RouteSpec {
  if (ctx.refusal !== null) return ctx.refusal;
  const sharded = ctx.occurrences[0];
  if (sharded !== undefined) return { type: 'all', table: sharded.table };
  return { type: 'reference', tables: ctx.referenceTables.slice(), write: true };
}

/** The tables a utility statement names. */
export function tablesOf(node: Node): RangeVar[] {
  if ('DropStmt' in node) {
    const d = node.DropStmt;
    if (!TABLE_OBJECTS.has(d.removeType ?? '')) return [];
    return (d.objects ?? []).flatMap((o) => {
      const names = 'List' in o ? namesOf(o.List.items) : undefined;
      return names === undefined || names.length === 0 ? [] : [rangeVar(names)];
    });
  }
  if ('CommentStmt' in node) {
    const c = node.CommentStmt;
    const names = c.object !== undefined && 'List' in c.object ? namesOf(c.object.List.items) : undefined;
    if (names === undefined) return [];
    if (TABLE_OBJECTS.has(c.objtype ?? '')) return [rangeVar(names)];
    if (c.objtype === 'OBJECT_COLUMN' && names.length > 1) return [rangeVar(names.slice(0, -1))];
    return [];
  }
  if ('AlterTableStmt' in node && !TABLE_OBJECTS.has(node.AlterTableStmt.objtype ?? 'OBJECT_TABLE')) return [];
  if ('RenameStmt' in node) {
    const r = node.RenameStmt;
    const on = r.relationType !== undefined && r.renameType !== 'OBJECT_TABLE' ? r.relationType : r.renameType;
    return TABLE_OBJECTS.has(on ?? '') && r.relation !== undefined ? [r.relation] : [];
  }
  if ('CreateSeqStmt' in node || 'AlterSeqStmt' in node || 'CompositeTypeStmt' in node) return [];
  const out: RangeVar[] = [];
  collectRangeVars(node, out);
  return out;
}

function rangeVar(names: string[]): RangeVar {
  const relname = names[names.length - 1]!;
  return names.length > 1 ? { schemaname: names[names.length - 2]!, relname } : { relname };
}

/** Fields that hold a table as a bare RangeVar (not wrapped in `{RangeVar: ...}`). */
const BARE_RELATION_FIELDS = new Set(['relation', 'pktable', 'view', 'rel', 'table']);

function collectRangeVars(v: unknown, out: RangeVar[]): void {
  if (Array.isArray(v)) {
    for (const x of v) collectRangeVars(x, out);
    return;
  }
  if (v === null || typeof v !== 'object') return;
  const obj = v as Record<string, unknown>;
  for (const k in obj) {
    const c = obj[k];
    if (c === null || typeof c !== 'object') continue;
    if (k === 'RangeVar' || (BARE_RELATION_FIELDS.has(k) && typeof (c as RangeVar).relname === 'string')) {
      out.push(c as RangeVar);
      continue;
    }
    collectRangeVars(c, out);
  }
}
