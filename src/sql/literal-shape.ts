/**
 * The hot path of the simple protocol: clients that inline their key values (pgbench -M simple, many ORMs)
 * send a new text for every statement, and a full parse costs tens of microseconds. Statements that
 * differ only in their literals share a shape: `select … where id = 42` and `… where id = 7` are both
 * `select … where id = $1`. The shape is analysed once and its literals become the bind values of its
 * parameters.
 *
 * Only what cannot change a statement's meaning is replaced: integers of at most 18 digits, decimals
 * (`12.50`, `1e-3`; no sign) and plain '…' strings, never inside identifiers, typed literals
 * (`date '…'`) or E'…'/B'…'/X'…'/U&'…' strings. A text with comments, dollar signs or backslashes is
 * left alone. A decimal compares with an integer key differently from a parameter (`id = 5.5` matches
 * no row; `id = $1` with '5.5' is an error), so texts with a decimal where another has an integer or a
 * string do not share a shape: `key` tells them apart. Before a shape is trusted, its analysis (with
 * these literals as parameters) must route exactly as the full analysis of the first text that had it;
 * a shape that does not is remembered as unusable.
 */
export interface LiteralShape {
  /** The text with its literals replaced by $1, $2, …: what is analysed. */
  shape: string;
  literals: string[];
  /** What identifies the shape: `shape`, plus which literals were decimals when any were. */
  key: string;
}

const isIdent = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

export function literalShape(text: string): LiteralShape | null {
  const n = text.length;
  if (n > 4096) return null;
  let out = '';
  let last = 0;
  const literals: string[] = [];
  let decimals = '';
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x24 /* $ */ || c === 0x5c /* \ */) return null;
    if (c === 0x2d /* - */ && text.charCodeAt(i + 1) === 0x2d) return null;
    if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2a) return null;
    if (c === 0x22 /* " */) {
      const j = text.indexOf('"', i + 1);
      if (j < 0) return null;
      i = j;
      continue;
    }
    if (c === 0x27 /* ' */) {
      // A plain string literal: not glued to a word (E'…', B'…', date '…' stays as it is).
      let p = i - 1;
      while (p >= 0 && text.charCodeAt(p) === 0x20) p--;
      const prev = p >= 0 ? text.charCodeAt(p) : 0;
      let j = i + 1;
      let value = '';
      for (;;) {
        const k = text.indexOf("'", j);
        if (k < 0) return null;
        value += text.slice(j, k);
        if (text.charCodeAt(k + 1) === 0x27) {
          value += "'";
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      if (isIdent(prev) || prev === 0x27) {
        i = j - 1;
        continue;
      }
      out += text.slice(last, i) + '$' + (literals.length + 1);
      literals.push(value);
      last = j;
      i = j - 1;
      continue;
    }
    if (isDigit(c) && (i === 0 || (!isIdent(text.charCodeAt(i - 1)) && text.charCodeAt(i - 1) !== 0x2e))) {
      let j = i;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      const intEnd = j;
      if (text.charCodeAt(j) === 0x2e /* . */) {
        j++;
        while (j < n && isDigit(text.charCodeAt(j))) j++;
      }
      const e = text.charCodeAt(j);
      if (e === 0x65 || e === 0x45) {
        let k = j + 1;
        if (text.charCodeAt(k) === 0x2b || text.charCodeAt(k) === 0x2d) k++;
        const digits = k;
        while (k < n && isDigit(text.charCodeAt(k))) k++;
        if (k > digits) j = k;
      }
      const next = j < n ? text.charCodeAt(j) : 0;
      const decimal = j > intEnd;
      if (next === 0x2e || isIdent(next) || (decimal ? j - i > 64 : j - i > 18)) {
        while (j < n && (isIdent(text.charCodeAt(j)) || text.charCodeAt(j) === 0x2e)) j++;
        i = j - 1;
        continue;
      }
      if (decimal) decimals += (decimals ? ',' : '') + literals.length;
      out += text.slice(last, i) + '$' + (literals.length + 1);
      literals.push(text.slice(i, j));
      last = j;
      i = j - 1;
      continue;
    }
    if (isIdent(c)) {
      while (i + 1 < n && isIdent(text.charCodeAt(i + 1))) i++;
    }
  }
  if (literals.length === 0) return null;
  const shape = out + text.slice(last);
  return { shape, literals, key: decimals ? `${shape}\0${decimals}` : shape };
}
