import type { CopyStmt, InsertStmt, Node, RangeVar, ViewStmt } from 'libpg-query';
import type { RouteSpec, StatementInfo } from './types.js';
import { stripCasts } from './ast.js';
import { queryBlock, type Env } from './block.js';
import { StatementContext, refusal } from './context.js';
import { recordTable } from './from.js';
import { insertStatement } from './insert.js';
import { singleKey } from './keys.js';
import type { ShardingSchema } from './schema.js';
import { selectStatement } from './select.js';
import { simpleAggregateMerge } from './merge.js';
import { deallocate, discard, listen, unlisten, variableSet } from './session.js';
import { transaction } from './transaction.js';
import { modifyStatement } from './update-delete.js';
import { broadcastRoute, utilityStatement } from './utility.js';

/** A StatementInfo before its position in the text is known. */
export type Described = Omit<StatementInfo, 'location' | 'length'>;

const NONE: RouteSpec = { type: 'none' };

/** Analyses one parsed statement. `text` gives the statement's own source text (for SET replay). */
export function describe(schema: ShardingSchema, node: Node, text: () => string): Described {
  if ('SelectStmt' in node) {
    const s = node.SelectStmt;
    if (s.intoClause?.rel !== undefined) return createTableAs(schema, s.intoClause.rel, { SelectStmt: { ...s, intoClause: undefined } }, 'SELECT INTO', text);
    const r = selectStatement(schema, s);
    const d: Described = { tag: 'SELECT', readOnly: r.readOnly, route: r.route, notConcatenable: r.notConcatenable };
    if (r.notConcatenable !== null && (r.route.type === 'all' || r.route.type === 'keys')) {
      const merge = simpleAggregateMerge(s);
      if (merge) d.merge = merge;
    }
    return d;
  }
  if ('InsertStmt' in node) {
    const r = insertStatement(schema, node.InsertStmt);
    const d: Described = { tag: 'INSERT', readOnly: r.readOnly, route: r.route, notConcatenable: null };
    if (r.insertRows !== undefined && r.route.type === 'keys') d.insertRows = r.insertRows;
    const gen = r.route.type === 'refuse' ? generatedKeyOf(schema, node.InsertStmt) : undefined;
    if (gen) d.generateKey = gen;
    return d;
  }
  if ('UpdateStmt' in node || 'DeleteStmt' in node || 'MergeStmt' in node) {
    const r = modifyStatement(schema, node);
    const tag = 'UpdateStmt' in node ? 'UPDATE' : 'DeleteStmt' in node ? 'DELETE' : 'MERGE';
    return { tag, readOnly: r.readOnly, route: r.route, notConcatenable: null };
  }
  if ('TransactionStmt' in node) {
    const t = transaction(node.TransactionStmt);
    return { tag: t.tag, readOnly: t.readOnly, route: NONE, notConcatenable: null, tx: t.tx };
  }
  if ('VariableSetStmt' in node) {
    const s = variableSet(node.VariableSetStmt, text);
    const d: Described = { tag: s.tag, readOnly: true, route: NONE, notConcatenable: null };
    if (s.session !== undefined) d.session = s.session;
    if (s.tx !== undefined) d.tx = s.tx;
    return d;
  }
  if ('DiscardStmt' in node || 'DeallocateStmt' in node) {
    const s = 'DiscardStmt' in node ? discard(node.DiscardStmt) : deallocate(node.DeallocateStmt);
    const d: Described = { tag: s.tag, readOnly: true, route: NONE, notConcatenable: null };
    if (s.session !== undefined) d.session = s.session;
    return d;
  }
  if ('ListenStmt' in node || 'UnlistenStmt' in node) {
    const s = 'ListenStmt' in node ? listen(node.ListenStmt) : unlisten(node.UnlistenStmt);
    return { tag: s.tag, readOnly: true, route: NONE, notConcatenable: null, session: s.session! };
  }
  if ('ConstraintsSetStmt' in node) return { tag: 'SET CONSTRAINTS', readOnly: true, route: NONE, notConcatenable: null, tx: { type: 'other' } };
  if ('ExplainStmt' in node) return explain(schema, node.ExplainStmt.query, node.ExplainStmt.options ?? [], text);
  if ('CopyStmt' in node) return copy(schema, node.CopyStmt, text);
  if ('DeclareCursorStmt' in node) {
    const inner = node.DeclareCursorStmt.query === undefined ? undefined : describe(schema, node.DeclareCursorStmt.query, text);
    if (inner === undefined) return { tag: 'DECLARE CURSOR', readOnly: true, route: NONE, notConcatenable: null };
    // FETCH from a cursor spread over several shards would need a merge of its own.
    const reasons = ['DECLARE CURSOR', ...(inner.notConcatenable !== null ? [inner.notConcatenable] : [])];
    return { tag: 'DECLARE CURSOR', readOnly: inner.readOnly, route: inner.route, notConcatenable: reasons.join(', ') };
  }
  if ('PrepareStmt' in node) return prepare(schema, node.PrepareStmt.query, text);
  if ('CreateTableAsStmt' in node) {
    const c = node.CreateTableAsStmt;
    const tag = c.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : c.is_select_into === true ? 'SELECT INTO' : 'CREATE TABLE AS';
    if (c.into?.rel === undefined || c.query === undefined) return { tag, readOnly: false, route: refusal(`${tag} without a target`), notConcatenable: null };
    return createTableAs(schema, c.into.rel, c.query, tag, text);
  }
  if ('ViewStmt' in node) return view(schema, node.ViewStmt);
  const u = utilityStatement(schema, node);
  const d: Described = { tag: u.tag, readOnly: u.readOnly, route: u.route, notConcatenable: null };
  if (cannotRunInTransaction(node)) d.nonTransactional = true;
  return d;
}

/** Statements Postgres refuses inside a transaction block: broadcast one shard at a time, not atomically. */
function cannotRunInTransaction(node: Node): boolean {
  if ('VacuumStmt' in node || 'CreatedbStmt' in node || 'DropdbStmt' in node || 'AlterSystemStmt' in node) return true;
  if ('CreateTableSpaceStmt' in node || 'DropTableSpaceStmt' in node) return true;
  if ('IndexStmt' in node) return node.IndexStmt.concurrent === true;
  if ('DropStmt' in node) return node.DropStmt.concurrent === true;
  if ('ReindexStmt' in node)
    return (node.ReindexStmt.params ?? []).some((p) => 'DefElem' in p && p.DefElem.defname === 'concurrently') || node.ReindexStmt.kind === 'REINDEX_OBJECT_SYSTEM' || node.ReindexStmt.kind === 'REINDEX_OBJECT_DATABASE';
  return false;
}

/** EXPLAIN [ANALYZE] stmt: the inner statement's route; ANALYZE runs it, so a write stays a write. */
function explain(schema: ShardingSchema, query: Node | undefined, options: Node[], text: () => string): Described {
  const inner = query === undefined ? undefined : describe(schema, query, text);
  const analyze = options.some((o) => 'DefElem' in o && o.DefElem.defname === 'analyze' && defIsTrue(o.DefElem.arg));
  if (inner === undefined) return { tag: 'EXPLAIN', readOnly: true, route: NONE, notConcatenable: null, explain: true };
  let route = inner.route;
  if (analyze && splitInsert(inner)) {
    route = refusal(
      'EXPLAIN ANALYZE of an INSERT with rows for several shards is not supported',
      'EXPLAIN ANALYZE runs the INSERT; explain one shard key value at a time',
    );
  }
  const format = options.find((o) => 'DefElem' in o && o.DefElem.defname === 'format');
  const fmtArg = format && 'DefElem' in format ? format.DefElem.arg : undefined;
  const fmt = fmtArg && 'String' in fmtArg ? fmtArg.String.sval?.toLowerCase() : undefined;
  const d: Described = { tag: 'EXPLAIN', readOnly: analyze ? inner.readOnly : true, route, notConcatenable: null, explain: true };
  if (fmt === undefined || fmt === 'text') d.explainText = true;
  return d;
}

/** An INSERT whose rows go to several shards: it can only run split, not inside another statement. */
function splitInsert(d: Described): boolean {
  return d.insertRows !== undefined && d.route.type === 'keys' && singleKey(d.route.keys) === undefined;
}

/** An option value such as `ANALYZE`, `ANALYZE true`, `ANALYZE off`. */
function defIsTrue(arg: Node | undefined): boolean {
  if (arg === undefined) return true;
  const n = stripCasts(arg);
  let v: string | undefined;
  if ('String' in n) v = n.String.sval;
  else if ('Boolean' in n) return n.Boolean.boolval === true;
  else if ('Integer' in n) return (n.Integer.ival ?? 0) !== 0;
  else if ('A_Const' in n) {
    const c = n.A_Const;
    if (c.boolval !== undefined) return c.boolval.boolval === true;
    if (c.ival !== undefined) return (c.ival.ival ?? 0) !== 0;
    v = c.sval?.sval;
  }
  if (v === undefined) return true;
  return !['false', 'off', '0', 'no'].includes(v.toLowerCase());
}

/**
 * COPY t FROM STDIN reaches every shard of a sharded t (splitting the rows is the session's business);
 * COPY t / (query) TO STDOUT reads like a SELECT. A header line or binary framing per shard cannot simply
 * be concatenated.
 */
function copy(schema: ShardingSchema, stmt: CopyStmt, text: () => string): Described {
  const from = stmt.is_from === true;
  const framing: string[] = [];
  for (const o of stmt.options ?? []) {
    if (!('DefElem' in o)) continue;
    const d = o.DefElem;
    if (d.defname === 'header' && defIsTrue(d.arg)) framing.push('COPY HEADER');
    if (d.defname === 'format' && d.arg !== undefined && 'String' in d.arg && d.arg.String.sval?.toLowerCase() === 'binary') framing.push('COPY FORMAT binary');
  }
  if (stmt.query !== undefined) {
    const inner = describe(schema, stmt.query, text);
    if (splitInsert(inner))
      return { tag: 'COPY', readOnly: false, route: refusal('COPY (INSERT ...) with rows for several shards is not supported'), notConcatenable: null, copy: { direction: 'to', table: null } };
    const reasons = [...(inner.notConcatenable !== null ? [inner.notConcatenable] : []), ...framing];
    return {
      tag: 'COPY',
      readOnly: inner.readOnly,
      route: inner.route,
      notConcatenable: reasons.length > 0 ? reasons.join(', ') : null,
      copy: { direction: 'to', table: null },
    };
  }
  const rel = stmt.relation ?? {};
  const ctx = new StatementContext();
  const t = recordTable(schema, ctx, rel.schemaname, rel.relname ?? '', from);
  let route: RouteSpec;
  let table: string = rel.relname ?? '';
  switch (t.kind) {
    case 'sharded':
      route = { type: 'all', table: t.name };
      table = t.name;
      break;
    case 'reference':
      route = { type: 'reference', tables: [t.name], write: from };
      table = t.name;
      break;
    case 'catalog':
      route = NONE;
      break;
    case 'unknown':
      route = ctx.refusal ?? NONE;
      break;
  }
  return {
    tag: 'COPY',
    readOnly: !from,
    route,
    notConcatenable: !from && framing.length > 0 ? framing.join(', ') : null,
    copy: { direction: from ? 'from' : 'to', table },
  };
}

/**
 * SQL-level PREPARE: EXECUTE carries no table names, so the prepared statement must not need routing. A
 * statement on sharded tables (or writing reference tables) should use the extended protocol instead.
 */
function prepare(schema: ShardingSchema, query: Node | undefined, text: () => string): Described {
  const inner = query === undefined ? undefined : describe(schema, query, text);
  const out = (route: RouteSpec): Described => ({ tag: 'PREPARE', readOnly: true, route, notConcatenable: null });
  if (inner === undefined) return out(NONE);
  const r = inner.route;
  if (r.type === 'refuse') return out(r);
  if (r.type === 'keys' || r.type === 'all' || (r.type === 'reference' && r.write)) {
    const what = r.type === 'reference' ? `reference table "${r.tables[0] ?? ''}"` : `sharded table "${r.table}"`;
    return out(
      refusal(
        `SQL PREPARE of a statement on ${what} is not supported: EXECUTE could not be routed`,
        'use the extended query protocol (Parse/Bind/Execute), which every driver offers',
      ),
    );
  }
  return out(NONE);
}

/** The sharded and reference tables a query reads, without routing it. */
function tablesRead(schema: ShardingSchema, query: Node): StatementContext {
  const env: Env = { ctx: new StatementContext(), schema };
  queryBlock(env, query, null, null);
  return env.ctx;
}

/**
 * CREATE TABLE AS / SELECT INTO / CREATE MATERIALIZED VIEW. The new table gets whatever rows each shard
 * computes, which is right only when they are the same everywhere: from reference tables or no table.
 */
function createTableAs(schema: ShardingSchema, rel: RangeVar, query: Node, tag: string, text: () => string): Described {
  const inner = describe(schema, query, text);
  const out = (route: RouteSpec): Described => ({ tag, readOnly: false, route, notConcatenable: null });
  if (inner.route.type === 'refuse') return out(inner.route);
  if (inner.route.type === 'keys' || inner.route.type === 'all')
    return out(refusal(`${tag} from sharded table "${inner.route.table}" is not supported`, 'create the table first, then add the rows with INSERT ... VALUES or COPY'));
  const ctx = new StatementContext();
  const t = recordTable(schema, ctx, rel.schemaname, rel.relname ?? '', true);
  if (t.kind === 'sharded') return out(refusal(`${tag} into sharded table "${t.name}" is not supported`, 'create the table first, then add the rows with INSERT ... VALUES or COPY'));
  if (inner.route.type === 'reference') for (const r of inner.route.tables) ctx.noteReference(r, false);
  return out(broadcastRoute(ctx));
}

/** CREATE VIEW goes wherever its tables are (every shard). */
function view(schema: ShardingSchema, stmt: ViewStmt): Described {
  const ctx = stmt.query === undefined ? new StatementContext() : tablesRead(schema, stmt.query);
  const sharded = ctx.occurrences[0];
  const target = new StatementContext();
  recordTable(schema, target, stmt.view?.schemaname, stmt.view?.relname ?? '', true);
  for (const r of ctx.referenceTables) target.noteReference(r, false);
  if (ctx.refusal !== null) target.refuse(ctx.refusal.message, ctx.refusal.hint);
  const route: RouteSpec = target.refusal ?? (sharded !== undefined ? { type: 'all', table: sharded.table } : broadcastRoute(target));
  return { tag: 'CREATE VIEW', readOnly: false, route, notConcatenable: null };
}

/** The table's generated key, when this INSERT names columns but not the key. */
function generatedKeyOf(schema: ShardingSchema, ins: InsertStmt): StatementInfo['generateKey'] {
  const rel = ins.relation;
  if (!rel?.relname) return undefined;
  const t = schema.resolve(rel.schemaname, rel.relname);
  if (t.kind !== 'sharded') return undefined;
  const variant = schema.generatedKey(t.name);
  if (!variant || !ins.cols?.length) return undefined;
  const named = ins.cols.some((c) => 'ResTarget' in c && (c.ResTarget.name === t.key || c.ResTarget.name === t.key.toLowerCase()));
  return named ? undefined : { table: t.name, column: t.key, variant };
}
