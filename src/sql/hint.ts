import type { RoutingHint } from './types.js';

/**
 * Routing hints in a leading comment: `/* pgshard: shard=s1 *\/` or `/* pgshard: key=42 *\/` (both may be
 * given, separated by spaces or commas; values may be quoted). Comments are not in the parse tree, so this is
 * the one place pgshard reads the text itself, and it reads only the comments before the first token.
 */
export function leadingHint(sql: string): RoutingHint | null {
  let i = 0;
  const n = sql.length;
  for (;;) {
    while (i < n && isSpace(sql.charCodeAt(i))) i++;
    if (sql.startsWith('--', i)) {
      const nl = sql.indexOf('\n', i);
      if (nl < 0) return null;
      i = nl + 1;
      continue;
    }
    if (!sql.startsWith('/*', i)) return null;
    // Postgres block comments nest.
    let depth = 1;
    let j = i + 2;
    while (j < n && depth > 0) {
      if (sql.startsWith('/*', j)) {
        depth++;
        j += 2;
      } else if (sql.startsWith('*/', j)) {
        depth--;
        j += 2;
      } else {
        j++;
      }
    }
    if (depth > 0) return null;
    const hint = parseHint(sql.slice(i + 2, j - 2));
    if (hint !== null) return hint;
    i = j;
  }
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

const PREFIX = 'pgshard:';

/** `pgshard: shard=s1 key=42` → {shard: 's1', key: '42'}; null when the comment is not a pgshard hint. */
export function parseHint(body: string): RoutingHint | null {
  const text = body.trim();
  if (!text.toLowerCase().startsWith(PREFIX)) return null;
  const hint: RoutingHint = {};
  let i = PREFIX.length;
  const n = text.length;
  while (i < n) {
    while (i < n && (isSpace(text.charCodeAt(i)) || text[i] === ',')) i++;
    const start = i;
    while (i < n && text[i] !== '=' && !isSpace(text.charCodeAt(i)) && text[i] !== ',') i++;
    const name = text.slice(start, i).toLowerCase();
    if (text[i] !== '=') {
      if (i === start) i++;
      continue;
    }
    i++;
    let value = '';
    const q = text[i];
    if (q === "'" || q === '"') {
      i++;
      while (i < n) {
        if (text[i] === q) {
          if (text[i + 1] === q) {
            value += q;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += text[i];
        i++;
      }
    } else {
      const vs = i;
      while (i < n && !isSpace(text.charCodeAt(i)) && text[i] !== ',') i++;
      value = text.slice(vs, i);
    }
    if (name === 'shard') hint.shard = value;
    else if (name === 'key') hint.key = value;
  }
  return hint.shard === undefined && hint.key === undefined ? null : hint;
}
