import { PgError } from '../protocol/errors.js';

/**
 * COPY ... FROM STDIN (FORMAT binary) into a sharded table: the client's PGCOPY stream is cut into its
 * header and its tuples, and each tuple's key field is handed out, so the session can forward every tuple,
 * byte for byte, to the shard that owns it (each shard gets the header first and the trailer last).
 *
 * The stream, as PostgreSQL 18's copyfromparse.c reads it:
 *   header  — the 11-byte signature `PGCOPY\n\377\r\n\0`, int32 flags (bit 16: OIDs, refused; any other
 *             bit of the upper half: unknown critical flag, refused), int32 extension length, the extension;
 *   tuple   — int16 field count, then per field int32 length (-1 = NULL) and that many bytes;
 *   trailer — int16 -1. Nothing may follow it. A stream that ends without a trailer (or with a stray byte
 *             where the next field count would start) simply ends, as in Postgres.
 * Malformed input raises the 22P04 bad_copy_file_format error Postgres would raise. After an error the
 * splitter is unusable: the COPY has failed.
 *
 * Memory: one tuple at most is held, across as many chunks as it spans (never the whole stream); the
 * chunks of a tuple are joined once, when the tuple is complete.
 */

export interface BinaryCopyRow {
  /** The tuple's exact bytes (field count and fields). May be a view of a pushed chunk. */
  bytes: Buffer;
  /** The key field's bytes (a view); null for SQL NULL. */
  key: Buffer | null;
}

export interface BinaryCopyOptions {
  /** 0-based index of the shard key among the COPY's columns. */
  keyColumn: number;
  /** How many columns the COPY names, for the field-count error (the shards check the exact count). */
  columnCount: number;
}

/** `PGCOPY\n\377\r\n\0` */
export const BINARY_SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);
/** The int16 -1 that ends a binary COPY stream. */
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

const FIXED_HEADER = 11 + 4 + 4;
/** Postgres's MaxAllocSize: a larger field cannot be read there either (and must not be buffered here). */
const MAX_FIELD = 0x3fffffff - 1;

function badCopy(message: string): PgError {
  return new PgError('22P04', message);
}

/** The outcome of reading one unit (header or tuple) from a contiguous buffer. */
type Scan = { end: number } | { need: number };

export class BinaryCopySplitter {
  private readonly keyColumn: number;
  private readonly columnCount: number;
  /** Bytes of the current unit from earlier chunks (not yet complete). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes the current unit needs at least (counted from its start) before it is worth reading again. */
  private need = 0;
  private headerDone = false;
  private header: Buffer | null = null;
  private trailer = false;
  private ended = false;
  /** The key field of the tuple scanTuple last read completely. */
  private key: Buffer | null = null;

  constructor(opts: BinaryCopyOptions) {
    if (!Number.isInteger(opts.keyColumn) || opts.keyColumn < 0) throw new RangeError(`keyColumn must be a non-negative integer, got ${opts.keyColumn}`);
    this.keyColumn = opts.keyColumn;
    this.columnCount = opts.columnCount;
  }

  /** True once the trailer (int16 -1) has been read. */
  get sawTrailer(): boolean {
    return this.trailer;
  }

  /** Bytes of an incomplete header or tuple held back, waiting for more data. */
  get pending(): number {
    return this.heldBytes;
  }

  /** The header's bytes once it has been read completely, the first time it is asked for; null otherwise. */
  takeHeader(): Buffer | null {
    const h = this.header;
    this.header = null;
    return h;
  }

  /** The complete tuples the chunk finishes. */
  push(chunk: Buffer): BinaryCopyRow[] {
    if (this.ended) throw new Error('BinaryCopySplitter: push() after end()');
    const rows: BinaryCopyRow[] = [];
    if (chunk.length === 0) return rows;
    if (this.trailer) throw badCopy('received copy data after EOF marker');
    let buf: Buffer;
    if (this.heldBytes > 0) {
      // Wait until the unit can make progress: joining on every small chunk would be quadratic.
      if (this.heldBytes + chunk.length < this.need) {
        this.held.push(chunk);
        this.heldBytes += chunk.length;
        return rows;
      }
      this.held.push(chunk);
      buf = Buffer.concat(this.held, this.heldBytes + chunk.length);
      this.held = [];
      this.heldBytes = 0;
    } else buf = chunk;

    let p = 0;
    while (p < buf.length) {
      if (this.trailer) throw badCopy('received copy data after EOF marker');
      const r = this.headerDone ? this.scanTuple(buf, p) : this.scanHeader(buf, p);
      if ('need' in r) {
        this.need = r.need;
        const rest = p === 0 ? buf : buf.subarray(p);
        this.held.push(rest);
        this.heldBytes = rest.length;
        break;
      }
      if (!this.headerDone) {
        this.headerDone = true;
        this.header = buf.subarray(p, r.end);
      } else if (!this.trailer) rows.push({ bytes: buf.subarray(p, r.end), key: this.key });
      p = r.end;
    }
    return rows;
  }

  /** The data has ended (CopyDone). */
  end(): BinaryCopyRow[] {
    if (this.ended) return [];
    this.ended = true;
    if (!this.headerDone) {
      const b = Buffer.concat(this.held);
      if (b.length < 11 || !b.subarray(0, 11).equals(BINARY_SIGNATURE)) throw badCopy('COPY file signature not recognized');
      if (b.length < 15) throw badCopy('invalid COPY file header (missing flags)');
      this.checkFlags(b.readInt32BE(11));
      if (b.length < 19) throw badCopy('invalid COPY file header (missing length)');
      throw badCopy('invalid COPY file header (wrong length)');
    }
    // Fewer than two bytes where a field count would start read as the end of the data, as in Postgres.
    if (this.heldBytes >= 2) throw badCopy('unexpected EOF in COPY data');
    this.held = [];
    this.heldBytes = 0;
    return [];
  }

  private checkFlags(flags: number): void {
    if ((flags & (1 << 16)) !== 0) throw badCopy('invalid COPY file header (WITH OIDS)');
    if ((flags & ~(1 << 16)) >> 16 !== 0) throw badCopy('unrecognized critical flags in COPY file header');
  }

  private scanHeader(b: Buffer, p: number): Scan {
    const avail = b.length - p;
    // The signature is checked as soon as its bytes arrive, so garbage fails early.
    const sig = Math.min(avail, 11);
    for (let i = 0; i < sig; i++) if (b[p + i] !== BINARY_SIGNATURE[i]) throw badCopy('COPY file signature not recognized');
    if (avail < 15) return { need: 15 };
    this.checkFlags(b.readInt32BE(p + 11));
    if (avail < FIXED_HEADER) return { need: FIXED_HEADER };
    const ext = b.readInt32BE(p + 15);
    if (ext < 0) throw badCopy('invalid COPY file header (missing length)');
    if (avail < FIXED_HEADER + ext) return { need: FIXED_HEADER + ext };
    return { end: p + FIXED_HEADER + ext };
  }

  private scanTuple(b: Buffer, start: number): Scan {
    const n = b.length;
    if (n - start < 2) return { need: 2 };
    const count = b.readInt16BE(start);
    if (count === -1) {
      this.trailer = true;
      return { end: start + 2 };
    }
    if (count <= this.keyColumn) throw badCopy(`row field count is ${count}, expected ${this.columnCount}`);
    let p = start + 2;
    let key: Buffer | null = null;
    for (let f = 0; f < count; f++) {
      if (n - p < 4) return { need: p + 4 - start };
      const len = b.readInt32BE(p);
      p += 4;
      if (len === -1) continue;
      if (len < 0) throw badCopy('invalid field size');
      if (len > MAX_FIELD) throw new PgError('54000', 'out of memory', { detail: `Cannot enlarge string buffer containing 0 bytes by ${len} more bytes.` });
      if (n - p < len) return { need: p + len - start };
      if (f === this.keyColumn) key = b.subarray(p, p + len);
      p += len;
    }
    this.key = key;
    return { end: p };
  }
}
