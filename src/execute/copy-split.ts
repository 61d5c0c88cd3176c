import type { CopyStmt, Node } from 'libpg-query';
import { PgError } from '../protocol/errors.js';

/**
 * COPY ... FROM STDIN into a sharded table: the client's data stream is cut into rows, and each row's
 * shard key is read the way Postgres's COPY reads it, so the session can forward every row, byte for
 * byte, to the shard that owns it. The rules are those of PostgreSQL 18's copyfromparse.c:
 *
 * - Lines end in `\n`, `\r` or `\r\n`, whichever the first line uses; a different ending later is an
 *   error, as in Postgres. In text format a backslash escapes the next byte, a line terminator included;
 *   in CSV a terminator inside a quoted field is data.
 * - Text format: a line holding only `\.` ends the data (anything after it is ignored, as Postgres does);
 *   `\.` anywhere else is an error. PostgreSQL 18 gives `\.` no meaning in CSV, and neither does pgshard.
 * - The key field is decoded as Postgres decodes it: text format backslash escapes (`\t`, `\n`, octal,
 *   `\x` hex, any other byte taken literally) and the NULL marker compared with the raw field; CSV
 *   quotes, the escape character, the NULL marker only when unquoted, FORCE_NULL / FORCE_NOT_NULL.
 *
 * Data Postgres would reject in a way that matters for routing (an unterminated CSV field, a line too
 * short to reach the key, a key that is not valid UTF-8, mixed line endings) raises the PgError Postgres
 * would raise (22P04 bad_copy_file_format, 22021 for the encoding); other bad data is left to the shards.
 * After an error the splitter is unusable: the COPY has failed.
 *
 * Input is assumed to be UTF-8 (or any ASCII-safe encoding for the framing; keys are decoded as UTF-8).
 */

export interface CopySplitOptions {
  format: 'text' | 'csv';
  /** One byte; default tab (text) or comma (csv). */
  delimiter?: string;
  /** CSV only; one byte; default `"`. */
  quote?: string;
  /** CSV only; one byte; default: the quote character. */
  escape?: string;
  /** The first line is a header: kept apart, see `takeHeader()`. */
  header?: boolean | 'match';
  /** The NULL marker; default `\N` (text) or the empty string (csv). */
  null?: string;
  /** COPY's DEFAULT marker, if any: a key given as the column default cannot be routed (refused). */
  default?: string;
  /** CSV FORCE_NOT_NULL covers the key column: an unquoted NULL marker reads as that text, not NULL. */
  forceNotNull?: boolean;
  /** CSV FORCE_NULL covers the key column: a quoted field equal to the NULL marker reads as NULL. */
  forceNull?: boolean;
  /** 0-based index of the shard key among the COPY's columns. */
  keyColumn: number;
  /** The key column's name, for error messages. */
  keyName?: string;
}

export interface CopyRow {
  /** The row's exact bytes, its line terminator included (none for a last line without one). May be a view of a pushed chunk. */
  bytes: Buffer;
  /** The key field's value as COPY reads it; null for SQL NULL. */
  key: string | null;
}

/** Options of a text or CSV COPY read from its statement: every default filled in. */
export type RowCopyOptions = Required<Omit<CopySplitOptions, 'default' | 'keyName'>> & { default?: string; keyName: string };

/** A binary COPY: only the key's place matters (the shards check the other options themselves). */
export interface BinaryCopyStatement {
  format: 'binary';
  keyColumn: number;
  keyName: string;
  /** How many columns the COPY names. */
  columnCount: number;
  /** The table as the statement names it: the key column's type is looked up by this name. */
  relation: { schema?: string; name: string };
}

/** What a sharded COPY FROM STDIN needs from its statement. */
export type CopyOptions = RowCopyOptions | BinaryCopyStatement;

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

const enum Eol {
  Unknown,
  Nl,
  Cr,
  CrNl,
}

const enum Scan {
  /** Inside a line. */
  Normal,
  /** Text format: after a backslash, waiting for the byte it escapes. */
  Backslash,
  /** Text format: after `\.`, waiting for the line terminator. */
  MarkerDot,
  /** Text format: after `\.\r` with `\r\n` line endings, waiting for the `\n`. */
  MarkerCr,
  /** After a `\r` that ends the line: is a `\n` next? */
  PendingCr,
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function badCopy(message: string, hint?: string): PgError {
  return new PgError('22P04', message, hint === undefined ? {} : { hint });
}

export class CopyRowSplitter {
  private readonly csv: boolean;
  private readonly delim: number;
  private readonly quoteChar: number;
  private readonly escapeChar: number;
  /** The escape byte as the line scanner sees it: none (-1) when it is the quote itself. */
  private readonly lineEscape: number;
  private readonly nullMarker: Buffer;
  private readonly nullText: string;
  private readonly defaultMarker: Buffer | null;
  private readonly keyColumn: number;
  private readonly keyName: string | undefined;
  private readonly forceNull: boolean;
  private readonly forceNotNull: boolean;

  /** Where the key field's value is decoded (grown as needed; decoded into a string before reuse). */
  private scratch = Buffer.allocUnsafe(256);
  private eol = Eol.Unknown;
  private state = Scan.Normal;
  private inQuote = false;
  private lastWasEsc = false;
  /** Text format: the pending backslash was the first byte of its line (so `\.` may be the end marker). */
  private backslashFirst = false;
  /** The current line's bytes from earlier chunks. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private headerPending: boolean;
  private header: Buffer | null = null;
  private marker = false;
  private ended = false;

  constructor(opts: CopySplitOptions) {
    this.csv = opts.format === 'csv';
    const byte = (name: string, v: string): number => {
      const b = Buffer.from(v, 'utf8');
      if (b.length !== 1) throw new PgError('0A000', `COPY ${name} must be a single one-byte character`);
      return b[0]!;
    };
    this.delim = byte('delimiter', opts.delimiter ?? (this.csv ? ',' : '\t'));
    this.quoteChar = this.csv ? byte('quote', opts.quote ?? '"') : -1;
    this.escapeChar = this.csv ? byte('escape', opts.escape ?? opts.quote ?? '"') : -1;
    this.lineEscape = this.escapeChar === this.quoteChar ? -1 : this.escapeChar;
    for (const b of [this.delim, this.quoteChar, this.escapeChar])
      if (b === LF || b === CR) throw new PgError('22023', 'COPY delimiter, quote and escape cannot be newline or carriage return');
    this.nullText = opts.null ?? (this.csv ? '' : '\\N');
    this.nullMarker = Buffer.from(this.nullText, 'utf8');
    this.defaultMarker = opts.default === undefined ? null : Buffer.from(opts.default, 'utf8');
    if (!Number.isInteger(opts.keyColumn) || opts.keyColumn < 0) throw new RangeError(`keyColumn must be a non-negative integer, got ${opts.keyColumn}`);
    this.keyColumn = opts.keyColumn;
    this.keyName = opts.keyName;
    this.forceNull = this.csv && opts.forceNull === true;
    this.forceNotNull = this.csv && opts.forceNotNull === true;
    this.headerPending = opts.header === true || opts.header === 'match';
  }

  /** True once the text-format end-of-data line `\.` has been read; later data is ignored. */
  get sawEndMarker(): boolean {
    return this.marker;
  }

  /**
   * The header line (with its terminator) once it has been read completely, the first time it is asked
   * for; null before and after. The caller sends it to every shard or drops it.
   */
  takeHeader(): Buffer | null {
    const h = this.header;
    this.header = null;
    return h;
  }

  /** Bytes of an incomplete last line held back, waiting for more data. */
  get pending(): number {
    return this.heldBytes;
  }

  /** The complete rows the chunk finishes. */
  push(chunk: Buffer): CopyRow[] {
    if (this.ended) throw new Error('CopyRowSplitter: push() after end()');
    const rows: CopyRow[] = [];
    if (this.marker) return rows;
    const n = chunk.length;
    let start = 0; // where the current line begins in this chunk (its earlier bytes are held)
    let i = 0;
    const quote = this.quoteChar;
    const escape = this.lineEscape;
    while (i < n) {
      if (this.state === Scan.Normal) {
        // Skip the bytes that cannot end a line or change the scanner's state.
        const from = i;
        if (this.csv) {
          for (let b = chunk[i]!; b !== LF && b !== CR && b !== quote && b !== escape && ++i < n; ) b = chunk[i]!;
          if (i > from) this.lastWasEsc = false;
        } else {
          for (let b = chunk[i]!; b !== LF && b !== CR && b !== BACKSLASH && ++i < n; ) b = chunk[i]!;
        }
        if (i >= n) break;
      }
      const c = chunk[i]!;
      switch (this.state) {
        case Scan.Normal: {
          if (this.csv) {
            // As CopyReadLineText: the escape only counts inside quotes, and only right before a quote.
            if (this.inQuote && c === this.lineEscape) this.lastWasEsc = !this.lastWasEsc;
            if (c === this.quoteChar && !this.lastWasEsc) this.inQuote = !this.inQuote;
            if (c !== this.lineEscape) this.lastWasEsc = false;
            if (this.inQuote) break;
          }
          if (c === CR) {
            if (this.eol === Eol.Unknown || this.eol === Eol.CrNl) this.state = Scan.PendingCr;
            else if (this.eol === Eol.Nl) throw this.strayCr();
            else {
              this.line(chunk, start, i + 1, 1, rows);
              start = i + 1;
            }
          } else if (c === LF) {
            if (this.eol === Eol.Cr || this.eol === Eol.CrNl) throw this.strayLf();
            this.eol = Eol.Nl;
            this.line(chunk, start, i + 1, 1, rows);
            start = i + 1;
          } else if (c === BACKSLASH && !this.csv) {
            this.backslashFirst = this.heldBytes === 0 && i === start;
            this.state = Scan.Backslash;
          }
          break;
        }
        case Scan.Backslash:
          // Any byte after a backslash is data (a line terminator too), except the `.` of `\.`.
          this.state = c === DOT ? Scan.MarkerDot : Scan.Normal;
          break;
        case Scan.MarkerDot:
          if (this.eol === Eol.CrNl) {
            if (c === LF) throw badCopy('end-of-copy marker does not match previous newline style');
            if (c !== CR) throw badCopy('end-of-copy marker is not alone on its line');
            this.state = Scan.MarkerCr;
            break;
          }
          this.endMarker(c);
          return rows;
        case Scan.MarkerCr:
          this.endMarker(c);
          return rows;
        case Scan.PendingCr:
          this.state = Scan.Normal;
          if (c === LF) {
            this.eol = Eol.CrNl;
            this.line(chunk, start, i + 1, 2, rows);
            start = i + 1;
            break;
          }
          if (this.eol === Eol.CrNl) throw this.strayCr();
          // The first line ends in a bare \r; this byte starts the next line.
          this.eol = Eol.Cr;
          this.line(chunk, start, i, 1, rows);
          start = i;
          continue; // look at the byte again, as the next line's first
      }
      i++;
    }
    if (start < n) {
      const rest = start === 0 ? chunk : chunk.subarray(start);
      this.held.push(rest);
      this.heldBytes += rest.length;
    }
    return rows;
  }

  /** The data has ended (CopyDone): a last line without a terminator, if any. */
  end(): CopyRow[] {
    if (this.ended) return [];
    this.ended = true;
    const rows: CopyRow[] = [];
    if (this.marker) return rows;
    const empty = Buffer.alloc(0);
    switch (this.state) {
      case Scan.PendingCr:
        if (this.eol === Eol.CrNl) throw this.strayCr();
        this.eol = Eol.Cr;
        this.line(empty, 0, 0, 1, rows);
        return rows;
      case Scan.MarkerDot:
      case Scan.MarkerCr:
        throw badCopy('end-of-copy marker is not alone on its line');
      case Scan.Backslash:
      case Scan.Normal:
        if (this.heldBytes === 0) return rows;
        if (this.csv && this.inQuote) throw badCopy('unterminated CSV quoted field');
        this.line(empty, 0, 0, 0, rows);
        return rows;
    }
  }

  private strayCr(): PgError {
    return this.csv
      ? badCopy('unquoted carriage return found in data', 'Use quoted CSV field to represent carriage return.')
      : badCopy('literal carriage return found in data', 'Use "\\r" to represent carriage return.');
  }

  private strayLf(): PgError {
    return this.csv
      ? badCopy('unquoted newline found in data', 'Use quoted CSV field to represent newline.')
      : badCopy('literal newline found in data', 'Use "\\n" to represent newline.');
  }

  /** After `\.` (and `\r` for \r\n endings): `c` must end the line, and the line must hold nothing else. */
  private endMarker(c: number): void {
    if (c !== CR && c !== LF) throw badCopy('end-of-copy marker is not alone on its line');
    if ((this.eol === Eol.Nl && c !== LF) || (this.eol === Eol.CrNl && c !== LF) || (this.eol === Eol.Cr && c !== CR))
      throw badCopy('end-of-copy marker does not match previous newline style');
    if (!this.backslashFirst) throw badCopy('end-of-copy marker is not alone on its line');
    this.marker = true;
    this.held = [];
    this.heldBytes = 0;
  }

  /** A complete line: held bytes + chunk[start, end); its last `term` bytes are the terminator. */
  private line(chunk: Buffer, start: number, end: number, term: number, rows: CopyRow[]): void {
    let bytes: Buffer;
    if (this.heldBytes === 0) bytes = chunk.subarray(start, end);
    else {
      if (end > start) this.held.push(chunk.subarray(start, end));
      bytes = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
      this.held = [];
      this.heldBytes = 0;
    }
    this.inQuote = false;
    this.lastWasEsc = false;
    if (this.headerPending) {
      this.headerPending = false;
      this.header = bytes;
      return;
    }
    const contentEnd = bytes.length - term;
    rows.push({ bytes, key: this.csv ? this.csvKey(bytes, contentEnd) : this.textKey(bytes, contentEnd) });
  }

  private scratchFor(n: number): Buffer {
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafe(Math.max(n, this.scratch.length * 2));
    return this.scratch;
  }

  private missingKey(): PgError {
    return badCopy(this.keyName === undefined ? `missing data for column ${this.keyColumn + 1}` : `missing data for column "${this.keyName}"`);
  }

  private defaultKey(): PgError {
    return new PgError('0A000', `the DEFAULT marker cannot be used for the shard key${this.keyName === undefined ? '' : ` column "${this.keyName}"`}`, {
      hint: 'pgshard routes each COPY row by its key, so every row must give the key value.',
    });
  }

  /** As CopyReadAttributesText, up to the key field. */
  private textKey(line: Buffer, end: number): string | null {
    const delim = this.delim;
    let p = 0;
    for (let field = 0; ; field++) {
      const isKey = field === this.keyColumn;
      const fieldStart = p;
      let fieldEnd = p;
      let found = false;
      let escaped = false; // the value differs from the raw bytes
      let unsafe = false; // an escape produced a NUL or a non-ASCII byte
      const out = isKey ? this.scratchFor(end - p) : null;
      let o = 0;
      for (;;) {
        fieldEnd = p;
        if (p >= end) break;
        let c = line[p++]!;
        if (c === delim) {
          found = true;
          break;
        }
        if (c === BACKSLASH) {
          if (p >= end) break;
          escaped = true;
          c = line[p++]!;
          if (c >= 0x30 && c <= 0x37) {
            let v = c - 0x30;
            if (p < end && line[p]! >= 0x30 && line[p]! <= 0x37) {
              v = (v << 3) + line[p++]! - 0x30;
              if (p < end && line[p]! >= 0x30 && line[p]! <= 0x37) v = (v << 3) + line[p++]! - 0x30;
            }
            c = v & 0xff;
            if (c === 0 || c >= 0x80) unsafe = true;
          } else if (c === 0x78 /* x */) {
            const h1 = p < end ? hexValue(line[p]!) : -1;
            if (h1 >= 0) {
              p++;
              let v = h1;
              const h2 = p < end ? hexValue(line[p]!) : -1;
              if (h2 >= 0) {
                p++;
                v = (v << 4) + h2;
              }
              c = v & 0xff;
              if (c === 0 || c >= 0x80) unsafe = true;
            }
          } else if (c === 0x62 /* b */) c = 0x08;
          else if (c === 0x66 /* f */) c = 0x0c;
          else if (c === 0x6e /* n */) c = LF;
          else if (c === 0x72 /* r */) c = CR;
          else if (c === 0x74 /* t */) c = 0x09;
          else if (c === 0x76 /* v */) c = 0x0b;
          // any other byte after a backslash is taken literally
        }
        if (out !== null) out[o++] = c;
      }
      if (isKey) {
        if (rawEquals(line, fieldStart, fieldEnd, this.nullMarker)) return null;
        if (this.defaultMarker !== null && rawEquals(line, fieldStart, fieldEnd, this.defaultMarker)) throw this.defaultKey();
        if (unsafe && out!.subarray(0, o).includes(0)) throw invalidUtf8(0);
        return decode(escaped ? out!.subarray(0, o) : line.subarray(fieldStart, fieldEnd));
      }
      if (!found) throw this.missingKey();
    }
  }

  /** As CopyReadAttributesCSV, up to the key field. */
  private csvKey(line: Buffer, end: number): string | null {
    const delim = this.delim;
    const quote = this.quoteChar;
    const escape = this.escapeChar;
    let p = 0;
    for (let field = 0; ; field++) {
      const isKey = field === this.keyColumn;
      const fieldStart = p;
      let fieldEnd = p;
      let found = false;
      let sawQuote = false;
      const out = isKey ? this.scratchFor(end - p) : null;
      let o = 0;
      scan: for (;;) {
        // Not in quotes.
        for (;;) {
          fieldEnd = p;
          if (p >= end) break scan;
          const c = line[p++]!;
          if (c === delim) {
            found = true;
            break scan;
          }
          if (c === quote) {
            sawQuote = true;
            break;
          }
          if (out !== null) out[o++] = c;
        }
        // In quotes.
        for (;;) {
          fieldEnd = p;
          if (p >= end) throw badCopy('unterminated CSV quoted field');
          const c = line[p++]!;
          if (c === escape && p < end) {
            const next = line[p]!;
            if (next === escape || next === quote) {
              if (out !== null) out[o++] = next;
              p++;
              continue;
            }
          }
          if (c === quote) break;
          if (out !== null) out[o++] = c;
        }
      }
      if (isKey) {
        let isNull = !sawQuote && rawEquals(line, fieldStart, fieldEnd, this.nullMarker);
        if (!isNull && this.defaultMarker !== null && rawEquals(line, fieldStart, fieldEnd, this.defaultMarker)) throw this.defaultKey();
        const value = out!.subarray(0, o);
        if (isNull && this.forceNotNull) return this.nullText;
        if (!isNull && this.forceNull && value.equals(this.nullMarker)) isNull = true;
        return isNull ? null : decode(value);
      }
      if (!found) throw this.missingKey();
    }
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

function rawEquals(line: Buffer, start: number, end: number, marker: Buffer): boolean {
  if (end - start !== marker.length) return false;
  for (let i = 0; i < marker.length; i++) if (line[start + i] !== marker[i]) return false;
  return true;
}

function invalidUtf8(byte: number): PgError {
  return new PgError('22021', `invalid byte sequence for encoding "UTF8": 0x${byte.toString(16).padStart(2, '0')}`);
}

function decode(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    // Name the first offending byte, as Postgres does.
    let i = 0;
    while (i < bytes.length && bytes[i]! < 0x80) i++;
    throw invalidUtf8(bytes[i] ?? 0);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Options from the statement

/** A DefElem argument as text, as Postgres's defGetString reads it. */
function defString(arg: Node | undefined): string | undefined {
  if (arg === undefined) return undefined;
  if ('String' in arg) return arg.String.sval ?? '';
  if ('Integer' in arg) return String(arg.Integer.ival ?? 0);
  if ('Float' in arg) return arg.Float.fval ?? '';
  if ('Boolean' in arg) return arg.Boolean.boolval === true ? 'true' : 'false';
  if ('A_Star' in arg) return '*';
  return undefined;
}

function headerChoice(arg: Node | undefined): boolean | 'match' | undefined {
  if (arg === undefined) return true;
  if ('Integer' in arg) {
    const v = arg.Integer.ival ?? 0;
    return v === 0 ? false : v === 1 ? true : undefined;
  }
  const s = defString(arg)?.toLowerCase();
  if (s === 'true' || s === 'on') return true;
  if (s === 'false' || s === 'off') return false;
  if (s === 'match') return 'match';
  return undefined;
}

/** FORCE_NULL / FORCE_NOT_NULL: `*` or a list of column names. */
function namesColumn(arg: Node | undefined, column: string): boolean {
  if (arg === undefined) return false;
  if ('A_Star' in arg) return true;
  if ('List' in arg) return (arg.List.items ?? []).some((n) => 'String' in n && n.String.sval === column);
  return false;
}

const UTF8_NAMES = new Set(['utf8', 'unicode']);

/**
 * The options a CopyRowSplitter needs, read from a `COPY t [(cols)] FROM STDIN ...` statement.
 * `tableColumns`: the table's column order (for a COPY without a column list), as COPY uses it: without
 * dropped or generated columns. `keyColumn`: the shard key's name. Statements Postgres would reject for
 * their options are mostly left to Postgres; what the splitter depends on is checked here.
 */
export function copyOptionsFromAst(copyStmt: CopyStmt, tableColumns: readonly string[] | undefined, keyColumn: string): CopyOptions | { error: string } {
  if (copyStmt.is_from !== true || copyStmt.query !== undefined) return { error: 'not a COPY FROM statement' };
  if (copyStmt.filename !== undefined || copyStmt.is_program === true)
    return { error: 'COPY FROM a server-side file or program into a sharded table is not supported; use COPY FROM STDIN' };

  let format: 'text' | 'csv' | 'binary' = 'text';
  let delimiter: string | undefined;
  let quote: string | undefined;
  let escape: string | undefined;
  let nullMarker: string | undefined;
  let defaultMarker: string | undefined;
  let header: boolean | 'match' = false;
  let forceNullArg: Node | undefined;
  let forceNotNullArg: Node | undefined;
  for (const o of copyStmt.options ?? []) {
    if (!('DefElem' in o)) continue;
    const d = o.DefElem;
    const value = defString(d.arg);
    switch (d.defname) {
      case 'format':
        if (value !== 'text' && value !== 'csv' && value !== 'binary') return { error: `COPY format "${value ?? ''}" not recognized` };
        format = value;
        break;
      case 'delimiter':
        delimiter = value;
        break;
      case 'quote':
        quote = value;
        break;
      case 'escape':
        escape = value;
        break;
      case 'null':
        nullMarker = value;
        break;
      case 'default':
        defaultMarker = value;
        break;
      case 'header': {
        const h = headerChoice(d.arg);
        if (h === undefined) return { error: 'header requires a Boolean value or "match"' };
        header = h;
        break;
      }
      case 'force_null':
        forceNullArg = d.arg;
        break;
      case 'force_not_null':
        forceNotNullArg = d.arg;
        break;
      case 'encoding':
        if (!UTF8_NAMES.has((value ?? '').toLowerCase().replace(/[^a-z0-9]/g, '')))
          return { error: `COPY FROM with ENCODING '${value ?? ''}' into a sharded table is not supported: pgshard reads the shard key as UTF8` };
        break;
      default:
        // freeze, on_error, log_verbosity, reject_limit, ...: no bearing on rows or keys.
        break;
    }
  }
  if (format === 'binary') {
    // Options binary COPY refuses (DELIMITER, HEADER, …) are left to the shards: they answer as Postgres.
    const found = keyIndex(copyStmt, tableColumns, keyColumn);
    if ('error' in found) return found;
    const relation = copyStmt.relation?.schemaname ? { schema: copyStmt.relation.schemaname, name: copyStmt.relation.relname ?? '' } : { name: copyStmt.relation?.relname ?? '' };
    return { format, keyColumn: found.index, keyName: found.name, columnCount: found.count, relation };
  }
  const csv = format === 'csv';
  delimiter ??= csv ? ',' : '\t';
  nullMarker ??= csv ? '' : '\\N';
  if (!csv && (quote !== undefined || escape !== undefined)) return { error: `COPY ${quote !== undefined ? 'QUOTE' : 'ESCAPE'} requires CSV mode` };
  quote ??= '"';
  escape ??= quote;
  if (Buffer.byteLength(delimiter) !== 1) return { error: 'COPY delimiter must be a single one-byte character' };
  if (delimiter === '\r' || delimiter === '\n') return { error: 'COPY delimiter cannot be newline or carriage return' };
  if (!csv && '\\.abcdefghijklmnopqrstuvwxyz0123456789'.includes(delimiter)) return { error: `COPY delimiter cannot be "${delimiter}"` };
  if (/[\r\n]/.test(nullMarker)) return { error: 'COPY null representation cannot use newline or carriage return' };
  if (csv) {
    if (Buffer.byteLength(quote) !== 1) return { error: 'COPY quote must be a single one-byte character' };
    if (Buffer.byteLength(escape) !== 1) return { error: 'COPY escape must be a single one-byte character' };
    if (delimiter === quote) return { error: 'COPY delimiter and quote must be different' };
    if (/[\r\n]/.test(quote + escape)) return { error: 'COPY quote and escape cannot be newline or carriage return' };
  }

  const found = keyIndex(copyStmt, tableColumns, keyColumn);
  if ('error' in found) return found;
  const { index, name } = found;

  const out: RowCopyOptions = {
    format,
    delimiter,
    quote,
    escape,
    header,
    null: nullMarker,
    forceNull: csv && namesColumn(forceNullArg, name),
    forceNotNull: csv && namesColumn(forceNotNullArg, name),
    keyColumn: index,
    keyName: name,
  };
  if (defaultMarker !== undefined) out.default = defaultMarker;
  return out;
}

/** Where the shard key is among the COPY's columns (its column list, or the table's order). */
function keyIndex(copyStmt: CopyStmt, tableColumns: readonly string[] | undefined, keyColumn: string): { index: number; name: string; count: number } | { error: string } {
  const columns = copyStmt.attlist !== undefined ? copyStmt.attlist.map((n) => ('String' in n ? (n.String.sval ?? '') : '')) : tableColumns;
  if (columns === undefined)
    return { error: `COPY into a sharded table needs a column list, as in COPY t (${keyColumn}, ...) FROM STDIN: pgshard does not know the table's column order` };
  const index = columns.findIndex((c) => c === keyColumn || c === keyColumn.toLowerCase());
  if (index < 0) return { error: `COPY into a sharded table must include the shard key column "${keyColumn}"` };
  return { index, name: columns[index]!, count: columns.length };
}
