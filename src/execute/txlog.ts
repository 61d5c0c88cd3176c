/**
 * The durable record of two-phase commit decisions. A decision to commit is appended and fsynced before
 * the first COMMIT PREPARED; once every participant committed, a "done" record follows. On restart,
 * `pending()` gives the decided transactions whose participants may still hold them prepared; every
 * other prepared transaction of this instance is rolled back (presumed abort).
 *
 * Format: one JSON object per line, `{"gid":…, "shards":[…]}` for a decision and `{"done":gid}` when
 * finished. A torn last line (crash mid-write) is ignored: its decision was never acknowledged, and its
 * COMMIT PREPARED was never sent, so presumed abort is right for it.
 */
import { openSync, fsyncSync, writeSync, closeSync, readFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';

/** Where two-phase commit decisions are kept: this file, or the metadata database (topology/decision-log.ts). */
export interface DecisionLog {
  /** Decided (commit) transactions not yet known to be finished everywhere: gid → shard ids. */
  pending(): Map<string, string[]>;
  isDecided(gid: string): boolean;
  /** Makes the commit decision durable; nothing may be sent to a shard before it settles. */
  recordCommit(gid: string, shards: string[]): void | Promise<void>;
  /** Every participant committed: the decision is no longer needed. */
  markDone(gid: string): void;
  close(): void;
}

export class TxLog implements DecisionLog {
  private fd: number;
  private readonly decided = new Map<string, string[]>();
  private doneSinceCompact = 0;

  private constructor(private readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        let rec: { gid?: string; shards?: string[]; done?: string };
        try {
          rec = JSON.parse(line);
        } catch {
          continue; // torn write
        }
        if (rec.gid && rec.shards) this.decided.set(rec.gid, rec.shards);
        else if (rec.done) this.decided.delete(rec.done);
      }
    }
    this.fd = -1;
    this.compact();
  }

  static open(file: string): TxLog {
    return new TxLog(file);
  }

  /** Decided (commit) transactions not yet known to be finished everywhere: gid → shard ids. */
  pending(): Map<string, string[]> {
    return new Map(this.decided);
  }

  isDecided(gid: string): boolean {
    return this.decided.has(gid);
  }

  /** Makes the commit decision durable. Synchronous on purpose: nothing may be sent before it is on disk. */
  recordCommit(gid: string, shards: string[]): void {
    writeSync(this.fd, JSON.stringify({ gid, shards }) + '\n');
    fsyncSync(this.fd);
    this.decided.set(gid, shards);
  }

  /** Every participant committed: the decision is no longer needed (no fsync: losing it only repeats work). */
  markDone(gid: string): void {
    if (!this.decided.delete(gid)) return;
    writeSync(this.fd, JSON.stringify({ done: gid }) + '\n');
    if (++this.doneSinceCompact > 10_000) this.compact();
  }

  /** Rewrites the file with only the pending decisions. */
  private compact(): void {
    const tmp = this.file + '.tmp';
    const fd = openSync(tmp, 'w');
    for (const [gid, shards] of this.decided) writeSync(fd, JSON.stringify({ gid, shards }) + '\n');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.file);
    const dir = openSync(path.dirname(this.file), 'r');
    fsyncSync(dir); // the rename itself must survive a crash
    closeSync(dir);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(this.file, 'a');
    this.doneSinceCompact = 0;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
