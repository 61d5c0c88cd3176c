import type { DeallocateStmt, DiscardStmt, ListenStmt, Node, UnlistenStmt, VariableSetStmt } from 'libpg-query';
import type { SessionEffect, TxEffect } from './types.js';
import { stripCasts } from './ast.js';

/** What SET / RESET / DISCARD / DEALLOCATE do to the client's session. */
export interface SessionOutcome {
  tag: string;
  session?: SessionEffect;
  tx?: TxEffect;
}

const PGSHARD_PREFIX = 'pgshard.';

/** SET/RESET. `statementText` gives the statement's own text, to replay it on pooled backends. */
export function variableSet(stmt: VariableSetStmt, statementText: () => string): SessionOutcome {
  const kind = stmt.kind ?? 'VAR_SET_VALUE';
  const tag = kind === 'VAR_RESET' || kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET';
  if (kind === 'VAR_RESET_ALL') return { tag, session: { type: 'reset-all' } };
  const rawName = stmt.name ?? '';
  if (kind === 'VAR_SET_MULTI') {
    // SET TRANSACTION ... applies to the current transaction only.
    if (rawName === 'TRANSACTION') return { tag, tx: { type: 'other' } };
    // SET SESSION CHARACTERISTICS AS TRANSACTION ... sets the default_transaction_* settings.
    const names = (stmt.args ?? []).flatMap((a) => ('DefElem' in a && a.DefElem.defname !== undefined ? ['default_' + a.DefElem.defname] : []));
    return { tag, session: { type: 'set', name: names.join(',') || 'session characteristics', local: stmt.is_local === true, sql: statementText() } };
  }
  const name = rawName.toLowerCase();
  if (name.startsWith(PGSHARD_PREFIX)) {
    const value = kind === 'VAR_SET_VALUE' ? valueText(stmt.args ?? []) : null;
    return { tag, session: { type: 'pgshard-set', name: name.slice(PGSHARD_PREFIX.length), value } };
  }
  if (kind === 'VAR_RESET') return { tag, session: { type: 'reset', name } };
  return { tag, session: { type: 'set', name, local: stmt.is_local === true, sql: statementText() } };
}

/** The value of `SET pgshard.x = value` as text (a list is joined with commas). */
function valueText(args: Node[]): string | null {
  const parts: string[] = [];
  for (const a of args) {
    const n = stripCasts(a);
    if (!('A_Const' in n)) continue;
    const c = n.A_Const;
    if (c.sval !== undefined) parts.push(c.sval.sval ?? '');
    else if (c.ival !== undefined) parts.push(String(c.ival.ival ?? 0));
    else if (c.fval !== undefined) parts.push(c.fval.fval ?? '');
    else if (c.boolval !== undefined) parts.push(c.boolval.boolval === true ? 'on' : 'off');
  }
  return parts.length === 0 ? null : parts.join(',');
}

const DISCARD_TAGS: Record<string, string> = {
  DISCARD_ALL: 'DISCARD ALL',
  DISCARD_PLANS: 'DISCARD PLANS',
  DISCARD_SEQUENCES: 'DISCARD SEQUENCES',
  DISCARD_TEMP: 'DISCARD TEMP',
};

export function discard(stmt: DiscardStmt): SessionOutcome {
  const target = stmt.target ?? 'DISCARD_ALL';
  const tag = DISCARD_TAGS[target] ?? 'DISCARD';
  return target === 'DISCARD_ALL' ? { tag, session: { type: 'reset-all' } } : { tag };
}

export function deallocate(stmt: DeallocateStmt): SessionOutcome {
  if (stmt.isall === true || stmt.name === undefined) return { tag: 'DEALLOCATE ALL', session: { type: 'deallocate', name: null } };
  return { tag: 'DEALLOCATE', session: { type: 'deallocate', name: stmt.name } };
}

/** LISTEN/UNLISTEN: under transaction pooling pgshard listens for the client (src/server/notifications.ts). */
export function listen(stmt: ListenStmt): SessionOutcome {
  return { tag: 'LISTEN', session: { type: 'listen', channel: stmt.conditionname ?? '' } };
}

export function unlisten(stmt: UnlistenStmt): SessionOutcome {
  return { tag: 'UNLISTEN', session: { type: 'unlisten', channel: stmt.conditionname ?? null } };
}
