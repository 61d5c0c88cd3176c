import type { BackendConnection } from './backend.js';

/**
 * The statements that bring a backend's session settings in line with a client's, or null when they
 * already match. The backend's record is updated as if they had run (they run before anything else).
 */
export function stateSyncSql(clientVars: ReadonlyMap<string, string>, be: BackendConnection): string | null {
  if (sameVars(clientVars, be.vars)) return null; // the usual case, once per transaction: checked without allocating
  const sql: string[] = [];
  for (const [name, stmt] of clientVars) if (be.vars.get(name) !== stmt) sql.push(stmt);
  for (const name of be.vars.keys()) if (!clientVars.has(name)) sql.push(`RESET ${quoteIdent(name)}`);
  if (!sql.length) return null;
  be.vars.clear();
  for (const [k, v] of clientVars) be.vars.set(k, v);
  return sql.join('; ');
}

/** Same names with the same statements (equal sizes and every entry of `a` in `b` make the sets equal). */
function sameVars(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, stmt] of a) if (b.get(name) !== stmt) return false;
  return true;
}

export function quoteIdent(s: string): string {
  return /^[a-z_][a-z0-9_.]*$/.test(s) ? s : '"' + s.replace(/"/g, '""') + '"';
}
