/**
 * pgshard's own queries on a backend (catalog lookups, recovery): a simple Query, rows decoded as text.
 * Not for the hot path: it decodes every field.
 */
import { Backend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError } from '../protocol/errors.js';
import type { BackendConnection } from './backend.js';
import type { ShardPool } from './pool.js';

export function runQuery(be: BackendConnection, sql: string): Promise<(string | null)[][]> {
  return new Promise((resolve, reject) => {
    const rows: (string | null)[][] = [];
    let error: PgError | null = null;
    be.listener = {
      message(type, buf, start, end) {
        if (type === Backend.DataRow) {
          const n = buf.readInt16BE(start + 5);
          let p = start + 7;
          const row: (string | null)[] = [];
          for (let i = 0; i < n; i++) {
            const len = buf.readInt32BE(p);
            p += 4;
            if (len < 0) row.push(null);
            else {
              row.push(buf.toString('utf8', p, p + len));
              p += len;
            }
          }
          rows.push(row);
        } else if (type === Backend.ErrorResponse) {
          const f = M.decodeErrorFields(buf, start, end);
          error ??= new PgError(f.C ?? 'XX000', f.M ?? 'error');
        } else if (type === Backend.ReadyForQuery) {
          be.listener = null;
          if (error) reject(error);
          else resolve(rows);
        }
      },
      chunkDone() {},
      lost(err) {
        reject(err);
      },
    };
    be.write(M.queryMessage(sql));
  });
}

/** Runs a query on a pooled connection of a shard and gives the connection back. */
export async function queryShard(pool: ShardPool, sql: string): Promise<(string | null)[][]> {
  const be = await pool.acquire();
  try {
    const rows = await runQuery(be, sql);
    pool.release(be);
    return rows;
  } catch (e) {
    if (be.isOpen && be.txStatus === 'I') pool.release(be);
    else pool.destroy(be);
    throw e;
  }
}
