/**
 * Reads a plain TCP connection to a shard into one reused buffer (net's `onread` option) instead of a
 * new Buffer and a 'data' event per read. Node's stream path costs a buffer allocation, Readable
 * bookkeeping and a nextTick per read; on pgbench -S that was several microseconds of CPU per
 * transaction, more than pgshard's own statement path (bench/README.md).
 *
 * The bytes of a chunk live until the next read. Whoever keeps a reference to them beyond the chunk's
 * processing must call hold(): the next read then goes into a new buffer and the old one stays theirs.
 */
import type net from 'node:net';

/** Larger than Node's own read size (64 KiB) would gain nothing; never below the Buffer pool size (see isCurrent). */
const READ_SIZE = 64 * 1024;

export class ChunkReader {
  private buf = Buffer.allocUnsafe(READ_SIZE);
  private held = false;
  /** Receives every chunk read. */
  sink: (chunk: Buffer) => void = () => undefined;

  /** The option for net.connect; the buffer function runs after each read, before the next. */
  readonly onread: net.OnReadOpts = {
    buffer: () => {
      if (this.held) {
        this.held = false;
        this.buf = Buffer.allocUnsafe(READ_SIZE);
      }
      return this.buf;
    },
    callback: (n: number, buf: Uint8Array): boolean => {
      this.sink((buf as Buffer).subarray(0, n));
      return true; // false would pause the socket
    },
  };

  /** The current chunk's bytes are kept by someone: read the next chunk into new memory. */
  hold(): void {
    this.held = true;
  }

  /**
   * Whether `b` shares memory with the buffer being read into (it will be overwritten unless held). A
   * buffer of READ_SIZE bytes has an ArrayBuffer of its own (it is above Node's pooling threshold), so
   * another Buffer can share it only by being a view of it.
   */
  isCurrent(b: Uint8Array): boolean {
    return b.buffer === this.buf.buffer;
  }
}
