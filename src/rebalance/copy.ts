/**
 * Moving rows in bulk with COPY: a table's rows leave the source (in the caller's transaction, e.g. one
 * that imported a replication slot's snapshot) through `COPY (SELECT …) TO STDOUT` in text form and
 * enter `COPY … FROM STDIN` on the shard each row goes to, line for line and untouched: only the shard
 * key's field of a line is decoded, to choose that shard. Which rows move is decided here and not in
 * the SELECT's WHERE because it is pgshard's own hash of the key's canonical form, which Postgres cannot
 * compute. The source is read only as fast as the slowest destination takes rows (stream backpressure),
 * so memory stays bounded by a few stream buffers whatever the size of the table.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { ident, qualified } from './pg.js';

export interface CopyCounts {
  /** Rows read from the source. */
  scanned: number;
  /** Rows of those sent to a destination. */
  copied: number;
}

export interface CopyRowsOptions {
  source: pg.Client;
  table: string;
  columns: readonly string[];
  /** The column (index in `columns`) whose value chooses the destination; null: `route(null)` for every row. */
  keyIndex: number | null;
  /** The destination shard of a row given its key in Postgres's text form (null for NULL), or null: it stays. */
  route: (key: string | null) => string | null;
  destination: (id: string) => Promise<pg.Client>;
  /**
   * Called every `every` rows read and at the end with the rows read and sent since the previous call,
   * once those rows are handed to their destinations' COPY. Throwing aborts the copy (CopyFail on every
   * destination: none of the rows of an unfinished COPY is written).
   */
  progress: (delta: CopyCounts) => void | Promise<void>;
  every: number;
}

const ABORT_WAIT_MS = 10_000;
const NEWLINE = 0x0a;
const TAB = 0x09;
const BACKSLASH = 0x5c;

/** Copies the rows of `table` that `route` sends somewhere; the totals. */
export async function copyRows(o: CopyRowsOptions): Promise<CopyCounts> {
  const cols = o.columns.map(ident).join(', ');
  const out: Readable = o.source.query(copyTo(`COPY (SELECT ${cols} FROM ${qualified(o.table)}) TO STDOUT`));
  // The stream may report an error after we stopped reading it (its connection being closed): not a crash.
  out.on('error', () => undefined);
  const sinks = new Map<string, Sink>();
  const sink = async (id: string): Promise<Sink> => {
    let s = sinks.get(id);
    if (!s) {
      const client = await o.destination(id);
      const w: Writable = client.query(copyFrom(`COPY ${qualified(o.table)} (${cols}) FROM STDIN`));
      s = { stream: w, error: null, finished: false };
      const self = s;
      w.on('error', (e: Error) => {
        self.error ??= e;
        // On an error pg-copy-streams lets go of the connection, yet data it still holds would be flushed
        // to it when the socket drains (a TypeError nobody catches): the server has ended the COPY and
        // drops whatever CopyData still comes, so from now on flushing only acknowledges.
        (w as unknown as { flush: (cb?: () => void) => void }).flush = (cb) => cb?.();
      });
      sinks.set(id, s);
    }
    return s;
  };
  const total: CopyCounts = { scanned: 0, copied: 0 };
  let delta: CopyCounts = { scanned: 0, copied: 0 };
  try {
    let tail: Buffer | null = null;
    for await (const chunk of out as AsyncIterable<Buffer>) {
      const buf: Buffer = tail ? Buffer.concat([tail, chunk]) : chunk;
      let start = 0;
      // Lines of the chunk, `every` at a time: route them, hand them to their destinations, report.
      for (;;) {
        const runs = new Map<string, [number, number][]>();
        while (delta.scanned < o.every) {
          const nl = buf.indexOf(NEWLINE, start);
          if (nl < 0) break;
          const to = o.route(o.keyIndex === null ? null : copyField(buf, start, nl, o.keyIndex));
          if (to !== null) {
            let r = runs.get(to);
            if (!r) runs.set(to, (r = []));
            const last = r[r.length - 1];
            // Consecutive lines for one destination leave as one slice of the chunk.
            if (last && last[1] === start) last[1] = nl + 1;
            else r.push([start, nl + 1]);
            delta.copied++;
          }
          delta.scanned++;
          start = nl + 1;
        }
        for (const [to, r] of runs) {
          const s = await sink(to);
          const data = r.length === 1 ? buf.subarray(r[0]![0], r[0]![1]) : Buffer.concat(r.map(([a, b]) => buf.subarray(a, b)));
          await write(s, data);
        }
        if (delta.scanned >= o.every) {
          await report();
          continue;
        }
        break;
      }
      tail = start < buf.length ? buf.subarray(start) : null;
    }
    if (tail) throw new Error(`COPY of ${o.table} ended inside a row`);
    for (const s of sinks.values()) {
      if (s.error) throw s.error;
      s.stream.end();
    }
    for (const s of sinks.values()) {
      await finished(s);
      s.finished = true;
    }
    await report();
    return total;
  } catch (e) {
    await Promise.all([...sinks.values()].map(abort));
    throw e;
  } finally {
    if (!out.readableEnded) out.destroy();
  }

  async function report(): Promise<void> {
    total.scanned += delta.scanned;
    total.copied += delta.copied;
    const d = delta;
    delta = { scanned: 0, copied: 0 };
    await o.progress(d);
  }
}

interface Sink {
  stream: Writable;
  error: Error | null;
  finished: boolean;
}

async function write(s: Sink, data: Buffer): Promise<void> {
  if (s.error) throw s.error;
  if (s.stream.write(data)) return;
  // once() rejects if the stream reports an error while we wait.
  await once(s.stream, 'drain');
  if (s.error) throw s.error;
}

async function finished(s: Sink): Promise<void> {
  if (s.error) throw s.error;
  // 'finish' comes once the destination has answered the COPY (the rows are committed).
  if (!s.stream.writableFinished) await once(s.stream, 'finish');
  if (s.error) throw s.error;
}

/** Ends a destination's COPY that did not finish with CopyFail, and waits until its connection is usable again. */
async function abort(s: Sink): Promise<void> {
  // An errored COPY already ended on the server (and pg-copy-streams has let go of its connection).
  if (s.finished || s.error || s.stream.destroyed) return;
  const closed = once(s.stream, 'close').catch(() => undefined);
  s.stream.destroy(new Error('pgshard: the rebalance stopped copying'));
  // The server answers a CopyFail at once; a shard that does not answer must not hold up the roll-back.
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, ABORT_WAIT_MS)))]);
  clearTimeout(timer);
}

/**
 * Field `index` of the COPY text-format line buf[start, end) (no newline), decoded: null for `\N`,
 * backslash escapes undone. Fields are separated by raw tabs: a tab inside a value is always escaped.
 */
export function copyField(buf: Buffer, start: number, end: number, index: number): string | null {
  let s = start;
  for (let i = 0; i < index; i++) {
    const tab = buf.indexOf(TAB, s);
    if (tab < 0 || tab >= end) throw new Error(`a COPY line has fewer than ${index + 1} fields`);
    s = tab + 1;
  }
  let e = buf.indexOf(TAB, s);
  if (e < 0 || e > end) e = end;
  return unescapeCopyText(buf.subarray(s, e));
}

/** A COPY text-format field's value (escapes as COPY documents them), or null for `\N`. */
export function unescapeCopyText(field: Buffer): string | null {
  if (field.indexOf(BACKSLASH) < 0) return field.toString('utf8');
  if (field.length === 2 && field[1] === 0x4e) return null; // \N
  const out = Buffer.allocUnsafe(field.length);
  let n = 0;
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!;
    if (c !== BACKSLASH || i + 1 === field.length) {
      out[n++] = c;
      continue;
    }
    const x = field[++i]!;
    switch (x) {
      case 0x62: out[n++] = 0x08; break; // \b
      case 0x66: out[n++] = 0x0c; break; // \f
      case 0x6e: out[n++] = 0x0a; break; // \n
      case 0x72: out[n++] = 0x0d; break; // \r
      case 0x74: out[n++] = 0x09; break; // \t
      case 0x76: out[n++] = 0x0b; break; // \v
      case 0x78: { // \xH or \xHH
        let v = 0;
        let k = 0;
        while (k < 2 && i + 1 < field.length && isHex(field[i + 1]!)) v = v * 16 + hexValue(field[++i]!), k++;
        if (k === 0) out[n++] = x;
        else out[n++] = v;
        break;
      }
      default:
        if (x >= 0x30 && x <= 0x37) { // \O, \OO or \OOO
          let v = x - 0x30;
          for (let k = 0; k < 2 && i + 1 < field.length && field[i + 1]! >= 0x30 && field[i + 1]! <= 0x37; k++) v = v * 8 + (field[++i]! - 0x30);
          out[n++] = v & 0xff;
        } else out[n++] = x; // any other escaped character stands for itself
    }
  }
  return out.toString('utf8', 0, n);
}

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const hexValue = (c: number): number => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10);
