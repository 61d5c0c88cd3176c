import type { DeleteStmt, MergeStmt, Node, RangeVar, UpdateStmt, WithClause } from 'libpg-query';
import type { RouteSpec } from './types.js';
import { forEachSubLink } from './ast.js';
import { BlockState, EMPTY_KEYS, finishWith, keyMap, occsSince, outputsOf, withScope, type BlockResult, type Env } from './block.js';
import { applyCondition, INNER_JOIN_MODE, subLink, WHERE_MODE } from './conditions.js';
import { StatementContext, refusal } from './context.js';
import { fromItem, resolveTable } from './from.js';
import { assignedValue, sameColumn } from './insert.js';
import { keyExprOf } from './keys.js';
import type { ShardingSchema } from './schema.js';
import { CteScope, Scope } from './scope.js';

export interface ModifyAnalysis {
  readonly result: BlockResult;
  readonly target?: number;
}

interface ModifyParts {
  relation: RangeVar | undefined;
  withClause: WithClause | undefined;
  from: Node[] | undefined;
  where: Node | undefined;
  set: Node[] | undefined;
  returning: Node[] | undefined;
}

/**
 * UPDATE and DELETE: the target's rows are chosen by WHERE (and joined FROM / USING items), exactly like a
 * SELECT's; SET of the shard key is refused unless it provably keeps the row on its shard.
 */
function modifyBlock(env: Env, p: ModifyParts, parent: Scope | null, outerCtes: CteScope | null): ModifyAnalysis {
  const ctx = env.ctx;
  const first = ctx.occurrences.length;
  const ctes = withScope(p.withClause, parent, outerCtes);
  const scope = new Scope(parent, ctes);
  const block = new BlockState(env, scope);
  const rel = p.relation ?? {};
  const t = resolveTable(block, rel, true);
  scope.add({
    name: rel.alias?.aliasname ?? rel.relname ?? '',
    keys: t.kind === 'sharded' ? keyMap(t.key, t.occ) : EMPTY_KEYS,
  });
  for (const item of p.from ?? []) fromItem(block, item);
  // The cursor lives on whichever backend ran DECLARE; the row cannot be found by routing.
  if (t.kind !== 'catalog' && p.where !== undefined && 'CurrentOfExpr' in p.where)
    ctx.refuse(`WHERE CURRENT OF on table "${rel.relname ?? ''}" is not supported`, 'update or delete the row by its shard key (and primary key) instead');
  applyCondition(block, p.where, WHERE_MODE);
  forEachSubLink([p.set, p.returning], (s) => subLink(block, s, null));
  if (t.kind === 'sharded') {
    for (const node of p.set ?? []) {
      if (!('ResTarget' in node)) continue;
      const rt = node.ResTarget;
      if (rt.name !== t.key && rt.name !== t.key.toLowerCase()) continue;
      const v = assignedValue(rt);
      if (v !== undefined && sameColumn(scope, v, t.occ)) continue; // SET key = key
      ctx.keyChanges.push({ occ: t.occ, value: v === undefined ? undefined : keyExprOf(v, t.keyType) });
    }
  }
  const { columns, keys } = outputsOf(p.returning, scope);
  finishWith(env, ctes, outerCtes);
  return {
    result: { columns, keys, anchored: t.kind === 'sharded', occs: occsSince(env, first), reasons: [], correlated: block.correlated },
    target: t.kind === 'sharded' ? t.occ : undefined,
  };
}

export function updateBlock(env: Env, s: UpdateStmt, parent: Scope | null, ctes: CteScope | null): ModifyAnalysis {
  return modifyBlock(
    env,
    { relation: s.relation, withClause: s.withClause, from: s.fromClause, where: s.whereClause, set: s.targetList, returning: s.returningClause?.exprs },
    parent,
    ctes,
  );
}

export function deleteBlock(env: Env, s: DeleteStmt, parent: Scope | null, ctes: CteScope | null): ModifyAnalysis {
  return modifyBlock(
    env,
    { relation: s.relation, withClause: s.withClause, from: s.usingClause, where: s.whereClause, set: undefined, returning: s.returningClause?.exprs },
    parent,
    ctes,
  );
}

/**
 * MERGE into a reference table (from non-sharded rows) runs on every shard; MERGE into a sharded table is
 * refused for now: its INSERT branch could put rows on any shard.
 */
export function mergeBlock(env: Env, s: MergeStmt, parent: Scope | null, outerCtes: CteScope | null): ModifyAnalysis {
  const ctx = env.ctx;
  const first = ctx.occurrences.length;
  const ctes = withScope(s.withClause, parent, outerCtes);
  const scope = new Scope(parent, ctes);
  const block = new BlockState(env, scope);
  const rel = s.relation ?? {};
  const t = resolveTable(block, rel, true);
  if (t.kind === 'sharded') ctx.refuse(`MERGE into sharded table "${t.name}" is not supported yet`, 'use INSERT ... ON CONFLICT, UPDATE or DELETE with the shard key');
  scope.add({ name: rel.alias?.aliasname ?? rel.relname ?? '', keys: t.kind === 'sharded' ? keyMap(t.key, t.occ) : EMPTY_KEYS });
  if (s.sourceRelation !== undefined) fromItem(block, s.sourceRelation);
  applyCondition(block, s.joinCondition, INNER_JOIN_MODE);
  forEachSubLink([s.mergeWhenClauses, s.returningClause?.exprs], (x) => subLink(block, x, null));
  const { columns, keys } = outputsOf(s.returningClause?.exprs, scope);
  finishWith(env, ctes, outerCtes);
  return {
    result: { columns, keys, anchored: t.kind === 'sharded', occs: occsSince(env, first), reasons: [], correlated: false },
    target: t.kind === 'sharded' ? t.occ : undefined,
  };
}

/** A top-level UPDATE, DELETE or MERGE. */
export function modifyStatement(schema: ShardingSchema, node: Node): { route: RouteSpec; readOnly: boolean } {
  const env: Env = { ctx: new StatementContext(), schema };
  let a: ModifyAnalysis;
  if ('UpdateStmt' in node) a = updateBlock(env, node.UpdateStmt, null, null);
  else if ('DeleteStmt' in node) a = deleteBlock(env, node.DeleteStmt, null, null);
  else if ('MergeStmt' in node) a = mergeBlock(env, node.MergeStmt, null, null);
  else return { route: refusal('not a data-modifying statement'), readOnly: false };
  return { route: env.ctx.decide(a.target, a.target !== undefined), readOnly: env.ctx.readOnly };
}
