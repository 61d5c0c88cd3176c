import { loadModule, parseSync, scanSync } from 'libpg-query';
import type { RawStmt } from 'libpg-query';

/**
 * The one place that talks to libpg-query (Postgres's own parser, compiled to WASM). The WASM module is
 * loaded once by `initParser()`; everything after that is synchronous.
 */

let loading: Promise<void> | null = null;
let ready = false;

/** Loads the parser's WASM module. Idempotent; a failed load may be retried. */
export function initParser(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      ready = true;
    },
    (err: unknown) => {
      loading = null;
      throw err;
    },
  );
  return loading;
}

export function parserReady(): boolean {
  return ready;
}

export type ParseOutcome = { ok: true; stmts: RawStmt[] } | { ok: false; message: string };

/** Parses a (possibly multi-statement) text. Never throws for bad SQL: the parser's message comes back instead. */
export function parseStatements(sql: string): ParseOutcome {
  if (!ready) throw new Error('pgshard: initParser() must be awaited before statements are analysed');
  // An empty query is valid (Postgres answers EmptyQueryResponse); libpg-query rejects only the empty string.
  if (sql.length === 0) return { ok: true, stmts: [] };
  try {
    return { ok: true, stmts: parseSync(sql).stmts ?? [] };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * The text of a statement without trailing comments, whitespace or semicolon, for replaying it (SET).
 * `stmt_len` includes whatever follows the last token up to the semicolon, a `-- comment` included, which
 * would swallow anything appended after it; the scanner tells where the last real token ends.
 */
export function trimStatementText(text: string): string {
  try {
    const tokens = scanSync(text).tokens;
    for (let i = tokens.length - 1; i >= 0; i--) {
      const t = tokens[i]!;
      if (t.tokenName === 'SQL_COMMENT' || t.tokenName === 'C_COMMENT' || t.text === ';') continue;
      return sliceUtf8(text, 0, t.end);
    }
    return '';
  } catch {
    return text.trim();
  }
}

/** Postgres reports positions as UTF-8 byte offsets; this turns a byte span of `text` back into a string. */
export function sliceUtf8(text: string, start: number, end: number): string {
  if (isAscii(text)) return text.slice(start, end);
  return Buffer.from(text, 'utf8').subarray(start, end).toString('utf8');
}

export function utf8Length(text: string): number {
  return isAscii(text) ? text.length : Buffer.byteLength(text, 'utf8');
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
