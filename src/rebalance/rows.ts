/**
 * Rows by primary key: reading a table through a cursor (inside the caller's transaction), deleting
 * batches of rows, applying one replicated row. Values travel as text. (The bulk copy is copy.ts.)
 */
import type pg from 'pg';
import { ident, qualified, rows, type Row } from './pg.js';

let cursorSeq = 0;

/** Reads `columns` of `table` in batches of `batch` rows; `each` may write elsewhere before the next batch. */
export async function scan(client: pg.Client, table: string, columns: readonly string[], batch: number, each: (rows: Row[]) => Promise<void>): Promise<void> {
  const cursor = `pgshard_rb_${++cursorSeq}`;
  await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${columns.map(ident).join(', ')} FROM ${qualified(table)}`);
  try {
    for (;;) {
      const got = await rows(client, `FETCH ${batch} FROM ${cursor}`);
      if (!got.length) break;
      await each(got);
      if (got.length < batch) break;
    }
  } finally {
    await client.query(`CLOSE ${cursor}`).catch(() => undefined);
  }
}

/** Deletes the rows with these primary keys. */
export async function deleteRows(client: pg.Client, table: string, pk: readonly string[], keys: readonly Row[]): Promise<number> {
  if (!keys.length) return 0;
  const n = pk.length;
  const tuple = (r: number) => `(${pk.map((_, c) => `$${r * n + c + 1}`).join(', ')})`;
  const sql = `DELETE FROM ${qualified(table)} WHERE (${pk.map(ident).join(', ')}) IN (${keys.map((_, r) => tuple(r)).join(', ')})`;
  const res = await client.query(sql, keys.flat());
  return res.rowCount ?? 0;
}

/** Insert or replace one row by primary key (applying a replicated change: idempotent). */
export async function upsertRow(client: pg.Client, table: string, columns: readonly string[], values: Row, pk: readonly string[]): Promise<void> {
  const rest = columns.filter((c) => !pk.includes(c));
  const set = rest.length ? `DO UPDATE SET ${rest.map((c) => `${ident(c)} = EXCLUDED.${ident(c)}`).join(', ')}` : 'DO NOTHING';
  await client.query(
    `INSERT INTO ${qualified(table)} (${columns.map(ident).join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (${pk.map(ident).join(', ')}) ${set}`,
    values,
  );
}

export async function hasRows(client: pg.Client, table: string): Promise<boolean> {
  return (await rows(client, `SELECT 1 FROM ${qualified(table)} LIMIT 1`)).length > 0;
}
