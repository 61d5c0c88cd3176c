/**
 * Shard health: can a shard's pool hand out a connection? `probePool` asks once (for /ready);
 * `HealthMonitor` asks every few seconds and remembers the answer and the time of the last failure (for
 * the pgshard_shard_up and pgshard_shard_last_error_timestamp_seconds gauges).
 */
import type { ShardPool } from '../pool/pool.js';

export interface ProbeResult {
  shard: string;
  ok: boolean;
  /** Why not, when not ok. */
  error?: string;
  seconds: number;
}

/**
 * Checks a connection out of the pool and gives it straight back. Not ok when that fails or takes longer
 * than `timeoutMs` (a connection that arrives later is returned to the pool then).
 */
export function probePool(pool: ShardPool, timeoutMs: number): Promise<ProbeResult> {
  const shard = pool.shard.id;
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      resolve({ shard, ok: false, error: `no connection to shard "${shard}" within ${timeoutMs} ms${pool.lastError ? ` (last error: ${pool.lastError})` : ''}`, seconds: seconds() });
    }, timeoutMs);
    pool.acquire().then(
      (c) => {
        pool.release(c);
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ shard, ok: true, seconds: seconds() });
      },
      (e: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ shard, ok: false, error: e instanceof Error ? e.message : String(e), seconds: seconds() });
      },
    );
  });
}

export interface ShardHealthState {
  up: boolean;
  /** Unix time in seconds of the last failure seen, 0 when none. */
  lastErrorAt: number;
  lastError: string | null;
}

export class HealthMonitor {
  private readonly state = new Map<string, ShardHealthState>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly pools: () => Iterable<ShardPool>,
    private readonly intervalMs = 5000,
    private readonly timeoutMs = 2000,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Probes every pool once; a pool with connections in use and no recent failure is up without a probe. */
  async check(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all(
        [...this.pools()].map(async (pool) => {
          const s = pool.stats();
          if (s.active > 0 && pool.lastError === null) return this.record(pool.shard.id, true, null);
          const r = await probePool(pool, this.timeoutMs);
          this.record(pool.shard.id, r.ok, r.error ?? null);
        }),
      );
    } finally {
      this.running = false;
    }
  }

  /** Notes a failure reported by the pool between probes (pool.lastError). */
  noteError(shard: string, error: string): void {
    const st = this.get(shard);
    if (st.lastError === error) return;
    st.lastError = error;
    st.lastErrorAt = Date.now() / 1000;
  }

  record(shard: string, up: boolean, error: string | null): void {
    const st = this.get(shard);
    st.up = up;
    if (!up) {
      st.lastError = error;
      st.lastErrorAt = Date.now() / 1000;
    }
  }

  /** A shard not probed yet counts as up. */
  get(shard: string): ShardHealthState {
    let st = this.state.get(shard);
    if (!st) {
      st = { up: true, lastErrorAt: 0, lastError: null };
      this.state.set(shard, st);
    }
    return st;
  }
}
