// SASLprep (RFC 4013, a profile of stringprep, RFC 3454) for SCRAM passwords, with
// Postgres's leniency: a password that SASLprep rejects is used as it is. Postgres does
// this on both sides (the backend when it builds a verifier, libpq when it answers a
// challenge), so matching it exactly is what lets a libpq client log in through us.

import {
  L_CAT,
  MAPPED_TO_NOTHING,
  NON_ASCII_SPACE,
  PROHIBITED_OUTPUT,
  RAND_AL_CAT,
  UNASSIGNED,
} from './saslprep-tables.js';

/** A table as sorted inclusive ranges: [start0, end0, start1, end1, …]. */
type CodePointTable = Uint32Array;

function parseTable(spec: string): CodePointTable {
  const parts = spec.split(',');
  const table = new Uint32Array(parts.length * 2);
  parts.forEach((part, i) => {
    const [start, end = start] = part.split('-');
    table[2 * i] = parseInt(start!, 16);
    table[2 * i + 1] = parseInt(end!, 16);
  });
  return table;
}

function inTable(table: CodePointTable, cp: number): boolean {
  let lo = 0;
  let hi = table.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < table[2 * mid]!) hi = mid - 1;
    else if (cp > table[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

const nonAsciiSpace = parseTable(NON_ASCII_SPACE);
const mappedToNothing = parseTable(MAPPED_TO_NOTHING);
const prohibitedOutput = parseTable(PROHIBITED_OUTPUT);
const unassigned = parseTable(UNASSIGNED);
const randALCat = parseTable(RAND_AL_CAT);
const lCat = parseTable(L_CAT);

// eslint-disable-next-line no-control-regex
const PURE_ASCII = /^[\x00-\x7f]*$/;
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * SASLprep a password the way Postgres's pg_saslprep() does.
 * Returns null when the password is not valid for SASLprep (prohibited or unassigned
 * code points, bad bidi, empty after mapping, not well-formed Unicode).
 */
export function saslprep(password: string): string | null {
  // Postgres returns pure ASCII untouched, control characters included.
  if (PURE_ASCII.test(password)) return password;
  // A JS string with a lone surrogate is what invalid UTF-8 would be in C.
  if (LONE_SURROGATE.test(password)) return null;

  // 1. Map: non-ASCII spaces become U+0020, "commonly mapped to nothing" goes away.
  const mapped: number[] = [];
  for (const ch of password) {
    const cp = ch.codePointAt(0)!;
    if (inTable(nonAsciiSpace, cp)) mapped.push(0x20);
    else if (!inTable(mappedToNothing, cp)) mapped.push(cp);
  }
  if (mapped.length === 0) return null;

  // 3. Prohibit, and 4. bidi. RFC 3454 checks the normalised string; Postgres checks the
  // mapped string before normalisation, and we must reach the same verdict it does.
  for (const cp of mapped) {
    if (inTable(prohibitedOutput, cp) || inTable(unassigned, cp)) return null;
  }
  if (mapped.some((cp) => inTable(randALCat, cp))) {
    if (mapped.some((cp) => inTable(lCat, cp))) return null;
    if (!inTable(randALCat, mapped[0]!) || !inTable(randALCat, mapped[mapped.length - 1]!)) return null;
  }

  // 2. Normalise (NFKC).
  return String.fromCodePoint(...mapped).normalize('NFKC');
}

/** The password as SCRAM hashes it: SASLprep'd, or as it is when SASLprep rejects it (as Postgres does). */
export function scramPreparePassword(password: string): string {
  return saslprep(password) ?? password;
}
