/**
 * One-dimensional arrays in Postgres's text form (array_out / array_in): `{1,NULL,"a b","x\"y"}`.
 * Elements are kept as the element type's own text, so re-printing them reproduces array_out exactly.
 * Arrays with explicit bounds (`[0:1]={…}`) or several dimensions are not handled (null).
 */

/** Array type OID → element type OID, for the built-in types pgshard merges. */
export const ARRAY_ELEMENT: ReadonlyMap<number, number> = new Map([
  [1000, 16], [1001, 17], [1002, 18], [1003, 19], [1016, 20], [1005, 21], [1007, 23], [1009, 25], [1028, 26],
  [199, 114], [1021, 700], [1022, 701], [1014, 1042], [1015, 1043], [1182, 1082], [1183, 1083], [1115, 1114],
  [1185, 1184], [1187, 1186], [1270, 1266], [1231, 1700], [2951, 2950], [3807, 3802],
]);

/** The elements of a one-dimensional array's text (null elements as null), or null if not such an array. */
export function parseArray(text: string): (string | null)[] | null {
  if (text.length < 2 || text[0] !== '{' || text[text.length - 1] !== '}') return null;
  const out: (string | null)[] = [];
  if (text === '{}') return out;
  let i = 1;
  const n = text.length - 1;
  for (;;) {
    if (text[i] === '{') return null; // nested dimension
    if (text[i] === '"') {
      let v = '';
      i++;
      while (i < n && text[i] !== '"') {
        if (text[i] === '\\') i++;
        v += text[i];
        i++;
      }
      if (text[i] !== '"') return null;
      i++;
      out.push(v);
    } else {
      let j = i;
      while (j < n && text[j] !== ',') j++;
      const raw = text.slice(i, j);
      if (raw.includes('\\') || raw.includes('"')) return null;
      out.push(raw === 'NULL' ? null : raw);
      i = j;
    }
    if (i === n) return out;
    if (text[i] !== ',') return null;
    i++;
  }
}

const NEEDS_QUOTES = /[",\\{} \t\n\r\v\f]|^$/;

function quoteElement(v: string): string {
  if (NEEDS_QUOTES.test(v) || v.toUpperCase() === 'NULL') return '"' + v.replace(/["\\]/g, (c) => '\\' + c) + '"';
  return v;
}

/** array_out of a one-dimensional array with lower bound 1 (the `,` delimiter of every type but box). */
export function formatArray(elements: readonly (string | null)[]): string {
  return '{' + elements.map((e) => (e === null ? 'NULL' : quoteElement(e))).join(',') + '}';
}
