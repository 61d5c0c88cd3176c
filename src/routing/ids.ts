/**
 * Global ids for sharded tables whose key pgshard generates: unique across pgshard instances (by the
 * configured node id), increasing with time, and routed like any other key.
 *
 * int64: 41 bits of milliseconds since 2025-01-01, 10 bits of node id (0–1023), 12 bits of sequence
 *   (4096 per millisecond per node): positive, below 2^63.
 * int53: 39 bits of 10-millisecond ticks since 2025-01-01 (about 174 years), 6 bits of node id (0–63),
 *   8 bits of sequence (256 per tick per node): below 2^53, exact in JavaScript numbers.
 * When the sequence runs out within a tick, the generator moves to the next tick; a clock that goes back
 * is ignored (ids keep increasing from the last one).
 */
const EPOCH_MS = 1735689600000; // 2025-01-01T00:00:00Z

export type IdVariant = 'int64' | 'int53';

interface Layout {
  tickMs: number;
  nodeBits: number;
  seqBits: number;
}

const LAYOUT: Record<IdVariant, Layout> = {
  int64: { tickMs: 1, nodeBits: 10, seqBits: 12 },
  int53: { tickMs: 10, nodeBits: 6, seqBits: 8 },
};

export class IdGenerator {
  private lastTick = -1n;
  private seq = 0n;
  private readonly layout: Layout;

  constructor(
    private readonly nodeId: number,
    readonly variant: IdVariant,
    private readonly now: () => number = Date.now,
  ) {
    this.layout = LAYOUT[variant];
    if (!Number.isInteger(nodeId) || nodeId < 0 || nodeId >= 2 ** this.layout.nodeBits)
      throw new Error(`node id ${nodeId} is out of range for ${variant} ids (0..${2 ** this.layout.nodeBits - 1})`);
  }

  next(): bigint {
    const { tickMs, nodeBits, seqBits } = this.layout;
    let tick = BigInt(Math.floor((this.now() - EPOCH_MS) / tickMs));
    if (tick < this.lastTick) tick = this.lastTick; // the clock went back: keep increasing
    if (tick === this.lastTick) {
      this.seq++;
      if (this.seq >= 1n << BigInt(seqBits)) {
        tick = this.lastTick + 1n; // sequence exhausted: borrow the next tick
        this.seq = 0n;
      }
    } else this.seq = 0n;
    this.lastTick = tick;
    return (tick << BigInt(nodeBits + seqBits)) | (BigInt(this.nodeId) << BigInt(seqBits)) | this.seq;
  }
}
