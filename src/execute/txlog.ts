/**
 * The durable record of two-phase commit decisions. A decision to commit is appended and fsynced before
 * the first COMMIT PREPARED; once every participant committed, a "done" record follows. On restart,
 * `pending()` gives the decided transactions whose participants may still hold them prepared; every
 * other prepared transaction of this instance is rolled back (presumed abort).
 *
 * Decisions are group-committed: those recorded while an fsync is under way are written and fsynced
 * together by the next one, and the fsync runs off the event loop, so a slow disk delays only the
 * transactions committing, not every client of the process.
 *
 * Format: one JSON object per line, `{"gid":…, "shards":[…]}` for a decision and `{"done":gid}` when
 * finished. A torn last line (crash mid-write) is ignored: its decision was never acknowledged, and its
 * COMMIT PREPARED was never sent, so presumed abort is right for it.
 */
import { openSync, fsync, fsyncSync, writeSync, closeSync, readFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
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

interface Decision {
  gid: string;
  shards: string[];
  resolve(): void;
  reject(e: Error): void;
}

export class TxLog implements DecisionLog {
  private fd: number;
  private readonly decided = new Map<string, string[]>();
  private doneSinceCompact = 0;
  /** Decisions waiting for the fsync under way to finish; they go to disk with the next one. */
  private queued: Decision[] = [];
  private syncing = false;
  /** The file is rewritten (compact) or closed only between fsyncs: one under way covers the old file. */
  private compactDue = false;
  private closeDue = false;

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

  /** Makes the commit decision durable: resolves once it is on disk (nothing may be sent before). */
  recordCommit(gid: string, shards: string[]): Promise<void> {
    if (this.closeDue || this.fd < 0) return Promise.reject(new Error('the transaction log is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ gid, shards, resolve, reject });
      if (!this.syncing) this.syncQueued();
    });
  }

  private syncQueued(): void {
    const batch = this.queued;
    this.queued = [];
    try {
      writeSync(this.fd, batch.map((d) => JSON.stringify({ gid: d.gid, shards: d.shards }) + '\n').join(''));
    } catch (e) {
      for (const d of batch) d.reject(e as Error);
      return;
    }
    this.syncing = true;
    fsync(this.fd, (err) => {
      this.syncing = false;
      if (err) for (const d of batch) d.reject(err);
      else
        for (const d of batch) {
          this.decided.set(d.gid, d.shards);
          d.resolve();
        }
      this.betweenSyncs();
    });
  }

  /** What waited for the fsync under way: a rewrite or close of the file, then the next batch. */
  private betweenSyncs(): void {
    if (this.compactDue) this.compact();
    if (this.closeDue) {
      this.closeNow();
      for (const d of this.queued.splice(0)) d.reject(new Error('the transaction log is closed'));
      return;
    }
    if (this.queued.length > 0) this.syncQueued();
  }

  /** Every participant committed: the decision is no longer needed (no fsync: losing it only repeats work). */
  markDone(gid: string): void {
    if (!this.decided.delete(gid)) return;
    writeSync(this.fd, JSON.stringify({ done: gid }) + '\n');
    if (++this.doneSinceCompact > 10_000) {
      // The rewrite keeps only decisions known durable: one whose fsync is under way must stay in the file.
      if (this.syncing) this.compactDue = true;
      else this.compact();
    }
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
    this.compactDue = false;
  }

  close(): void {
    if (this.syncing) this.closeDue = true;
    else this.closeNow();
  }

  private closeNow(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.closeDue = false;
  }
}
