import type { BackendConnection } from './backend.js';

/**
 * The statements that bring a backend's session settings in line with a client's, or null when they
 * already match. The backend's record is updated as if they had run (they run before anything else).
 */
export function stateSyncSql(clientVars: ReadonlyMap<string, string>, be: BackendConnection): string | null {
  const sql: string[] = [];
  for (const [name, stmt] of clientVars) if (be.vars.get(name) !== stmt) sql.push(stmt);
  for (const name of be.vars.keys()) if (!clientVars.has(name)) sql.push(`RESET ${quoteIdent(name)}`);
  if (!sql.length) return null;
  be.vars.clear();
  for (const [k, v] of clientVars) be.vars.set(k, v);
  return sql.join('; ');
}

export function quoteIdent(s: string): string {
  return /^[a-z_][a-z0-9_.]*$/.test(s) ? s : '"' + s.replace(/"/g, '""') + '"';
}
