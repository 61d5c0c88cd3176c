/**
 * pgshard's own queries on a backend (catalog lookups, recovery): a simple Query, rows decoded as text.
 * Not for the hot path: it decodes every field.
 */
import { Backend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState } from '../protocol/errors.js';
import type { BackendConnection } from './backend.js';
import type { ShardPool } from './pool.js';

/**
 * `timeoutMs` > 0: a shard that has not answered by then (hung, or a network path that drops bytes) has
 * its connection closed and the query fails with 08006; without it, such a query would wait forever.
 */
export function runQuery(be: BackendConnection, sql: string, timeoutMs = 0): Promise<(string | null)[][]> {
  return new Promise((resolve, reject) => {
    const rows: (string | null)[][] = [];
    let error: PgError | null = null;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            be.listener = null;
            be.destroy();
            reject(new PgError(SqlState.ConnectionFailure, `shard "${be.shard.id}" did not answer within ${timeoutMs} ms; its connection was closed`));
          }, timeoutMs)
        : null;
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
          if (timer) clearTimeout(timer);
          be.listener = null;
          if (error) reject(error);
          else resolve(rows);
        }
      },
      chunkDone() {},
      lost(err) {
        if (timer) clearTimeout(timer);
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
