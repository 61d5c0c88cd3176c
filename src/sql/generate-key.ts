/**
 * For a sharded table whose key pgshard generates: an INSERT … VALUES that omits the key column is
 * rewritten with the key column added and one generated id per row, then routed like any INSERT. The
 * rewrite is deparsed and re-parsed as a check (a statement that does not survive that is refused).
 */
import { parseSync } from 'libpg-query';
import type { Node } from 'libpg-query';
import { deparseSync } from 'pgsql-deparser';
import { PgError, SqlState } from '../protocol/errors.js';
import { sameTree } from './rewrite.js';

function cannot(reason: string): PgError {
  return new PgError(SqlState.FeatureNotSupported, `pgshard cannot add the generated key to this INSERT: ${reason}`, {
    hint: 'Give the key column a value yourself, or insert with a plain INSERT … (columns) VALUES ….',
  });
}

/** How many VALUES rows an INSERT without the key column has (null: not such an INSERT). */
export function rewriteWithGeneratedKey(sql: string, keyColumn: string, nextId: () => bigint): { sql: string; ids: bigint[] } {
  const parsed = parseSync(sql) as { stmts?: { stmt?: Node }[] };
  const node = parsed.stmts?.length === 1 ? parsed.stmts[0]!.stmt : undefined;
  if (!node || !('InsertStmt' in node)) throw cannot('not a single INSERT');
  const ins = node.InsertStmt;
  const sel = ins.selectStmt && 'SelectStmt' in ins.selectStmt ? ins.selectStmt.SelectStmt : undefined;
  if (!sel?.valuesLists) throw cannot('its rows do not come from a VALUES list');
  if (!ins.cols?.length) throw cannot('it has no column list');
  const ids: bigint[] = [];
  ins.cols.push({ ResTarget: { name: keyColumn } } as Node);
  for (const row of sel.valuesLists) {
    const id = nextId();
    ids.push(id);
    const items = 'List' in row ? row.List.items : undefined;
    if (!items) throw cannot('a VALUES row is not a plain list');
    items.push({ A_Const: { sval: { sval: id.toString() } } } as Node);
  }
  let out: string;
  try {
    out = deparseSync(node as never, { pretty: false }) as unknown as string;
  } catch (e) {
    throw cannot(`it could not be written back (${(e as Error).message})`);
  }
  const back = (parseSync(out) as { stmts?: { stmt?: Node }[] }).stmts;
  if (back?.length !== 1 || !sameTree(back[0]!.stmt, node)) throw cannot('the rewritten statement does not mean the same');
  return { sql: out, ids };
}
