/**
 * Splits a byte stream into v3 protocol messages (type byte + int32 length that counts itself) without
 * copying: messages are reported as ranges of the buffer they arrived in, so a proxy can forward them as
 * they are. Only a message split across chunks costs a copy (its tail is kept for the next chunk).
 * The same framing serves both directions: backend messages, and frontend messages after startup.
 */
export interface FrameSink {
  /** One complete message: buf[start] is the type byte, buf[start+1..start+5) the length, and it ends at `end`. */
  message(type: number, buf: Buffer, start: number, end: number): void;
  /** All complete messages of one chunk have been reported (a good moment to flush coalesced output). */
  chunkDone?(buf: Buffer): void;
}

export class FrameTooLarge extends Error {
  constructor(public readonly type: number, public readonly length: number) {
    super(`message of type '${String.fromCharCode(type)}' claims ${length} bytes`);
    this.name = 'FrameTooLarge';
  }
}

export class Framer {
  // A message split across chunks is gathered here; chunks are joined once it is complete, so a large
  // message arriving in many small chunks is copied once, not once per chunk.
  private held: Buffer[] = [];
  private heldBytes = 0;
  private needed = 0; // total bytes the held message needs, once its header is known
  private stopped = false;

  /**
   * maxLength bounds the length prefix before any allocation; lengths under 4 are malformed by definition.
   * reusedChunks: the caller reads every chunk into the same memory, so a chunk held for a split message
   * is copied (a held chunk would otherwise be overwritten by the next read).
   */
  constructor(
    private readonly maxLength: number,
    private readonly reusedChunks = false,
  ) {}

  /** Stop reporting messages (the connection is being closed); later chunks are ignored. */
  stop(): void {
    this.stopped = true;
    this.held = [];
    this.heldBytes = 0;
  }

  /** Bytes held back, waiting for the rest of a message. */
  get pending(): number {
    return this.heldBytes;
  }

  private checkLength(type: number, len: number): void {
    if (len < 4 || len > this.maxLength) {
      this.stop();
      throw new FrameTooLarge(type, len);
    }
  }

  feed(chunk: Buffer, sink: FrameSink): void {
    if (this.stopped) return;
    let buf = chunk;
    if (this.heldBytes > 0) {
      this.held.push(this.reusedChunks ? Buffer.from(chunk) : chunk);
      this.heldBytes += chunk.length;
      if (this.needed === 0 && this.heldBytes >= 5) {
        const head = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
        const len = head.readInt32BE(1);
        this.checkLength(head[0]!, len);
        this.needed = len + 1;
      }
      if (this.needed === 0 || this.heldBytes < this.needed) return;
      buf = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
      this.needed = 0;
    }
    let pos = 0;
    const n = buf.length;
    while (n - pos >= 5) {
      const type = buf[pos]!;
      const len = buf.readInt32BE(pos + 1);
      this.checkLength(type, len);
      const end = pos + 1 + len;
      if (end > n) {
        this.needed = end - pos;
        break;
      }
      sink.message(type, buf, pos, end);
      if (this.stopped) return;
      pos = end;
    }
    if (pos < n) {
      // A copy, so that a large chunk is not kept alive by its small tail.
      const rest = Buffer.from(buf.subarray(pos));
      this.held = [rest];
      this.heldBytes = rest.length;
      if (rest.length < 5) this.needed = 0;
    }
    sink.chunkDone?.(buf);
  }
}

/**
 * Startup-phase packets have no type byte: int32 length then int32 request code. Returns the packet
 * (including its length) when complete, null when more bytes are needed.
 */
export function takeStartupPacket(buf: Buffer, maxLength: number): { packet: Buffer; rest: Buffer } | null {
  if (buf.length < 4) return null;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > maxLength) throw new FrameTooLarge(0, len);
  if (buf.length < len) return null;
  return { packet: buf.subarray(0, len), rest: buf.subarray(len) };
}
