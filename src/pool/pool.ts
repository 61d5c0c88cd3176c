/**
 * The pool of connections to one shard. Checkout is FIFO with a timeout; a connection is created on demand
 * up to `size`; broken connections are dropped, never handed out again; idle ones beyond `min_idle` are
 * closed after `idle_timeout_ms`.
 */
import type { Logger } from 'pino';
import { BackendConnection } from './backend.js';
import { PgError, SqlState } from '../protocol/errors.js';
import type { PoolConfig, ShardConfig } from '../config/schema.js';
import { Pipeline } from './pipeline.js';

interface Waiter {
  resolve(c: BackendConnection): void;
  reject(e: PgError): void;
  timer: NodeJS.Timeout;
}

export interface PoolStats {
  shard: string;
  total: number;
  idle: number;
  active: number;
  creating: number;
  waiting: number;
}

export class ShardPool {
  private idle: BackendConnection[] = [];
  private all = new Set<BackendConnection>();
  private creating = 0;
  private waiters: Waiter[] = [];
  private sweeper: NodeJS.Timeout;
  private closing = false;
  /** Bytes moved by connections already gone (open ones are read from their sockets in bytes()). */
  private closedBytes = { received: 0, sent: 0 };
  /** The last connection failure, for health reporting; cleared by the next success. */
  lastError: string | null = null;
  /** Connections handed out, and checkouts that timed out waiting (SHOW POOLS). */
  checkouts = 0;
  checkoutTimeouts = 0;
  /** Single-statement reads of many clients sharing a few of this pool's connections (pipeline.ts). */
  readonly pipeline: Pipeline;

  constructor(readonly shard: ShardConfig, private readonly cfg: PoolConfig, private readonly log: Logger) {
    this.pipeline = new Pipeline(this, cfg.mode === 'transaction' ? cfg.pipeline_connections : 0, cfg.pipeline_depth);
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(cfg.idle_timeout_ms, 30_000)));
    this.sweeper.unref();
    this.fillMinIdle();
  }

  /** An idle healthy connection right now, or null (the hot path: no promise when one is free). */
  tryAcquire(): BackendConnection | null {
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.isOpen) {
        this.checkouts++;
        return c;
      }
      this.forget(c);
    }
    return null;
  }

  /** Opens one more connection in the background when none is idle and the pool has room (for the pipeline). */
  prepareOne(): void {
    if (this.closing || this.idle.length > 0 || this.creating > 0 || this.all.size >= this.cfg.size) return;
    this.create();
  }

  /** A healthy connection, idle in no transaction, leased to the caller until release() or destroy(). */
  acquire(): Promise<BackendConnection> {
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.isOpen) {
        this.checkouts++;
        return Promise.resolve(c);
      }
      this.forget(c);
    }
    if (this.closing) return Promise.reject(new PgError(SqlState.AdminShutdown, 'pgshard is shutting down'));
    return new Promise<BackendConnection>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          this.checkoutTimeouts++;
          reject(
            new PgError(SqlState.TooManyConnections, `timed out after ${this.cfg.checkout_timeout_ms} ms waiting for a connection to shard "${this.shard.id}"`, {
              hint: `All ${this.cfg.size} connections of the pool are busy. Raise pool.size (and the shard's max_connections) or pool.checkout_timeout_ms, or shorten transactions.`,
            }),
          );
        }, this.cfg.checkout_timeout_ms),
      };
      this.waiters.push(w);
      this.grow();
    });
  }

  /** Returns a connection that finished its transaction; anything else is closed instead. */
  release(c: BackendConnection): void {
    c.listener = null;
    if (!c.isOpen || c.txStatus !== 'I' || this.closing) {
      this.destroy(c);
      return;
    }
    c.lastUsed = Date.now();
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      this.checkouts++;
      w.resolve(c);
      return;
    }
    this.idle.push(c);
  }

  destroy(c: BackendConnection): void {
    c.listener = null;
    c.destroy();
    this.forget(c);
    this.grow();
  }

  private forget(c: BackendConnection): void {
    if (this.all.delete(c)) {
      const b = c.bytes;
      this.closedBytes.received += b.received;
      this.closedBytes.sent += b.sent;
    }
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private grow(): void {
    while (!this.closing && this.waiters.length > this.creating && this.all.size + this.creating < this.cfg.size) this.create();
  }

  private fillMinIdle(): void {
    const want = Math.min(this.cfg.min_idle, this.cfg.size);
    while (!this.closing && this.all.size + this.creating < want) this.create();
  }

  private create(): void {
    this.creating++;
    const c = new BackendConnection(this.shard, this.cfg.keepalive_idle_ms);
    c.connect(this.cfg.connect_timeout_ms).then(
      () => {
        this.creating--;
        this.lastError = null;
        if (this.closing) return void c.terminate();
        this.all.add(c);
        c.onClose((x) => {
          this.forget(x);
          this.grow();
        });
        this.release(c);
      },
      (e: PgError) => {
        this.creating--;
        this.lastError = e.message;
        this.log.warn({ shard: this.shard.id, err: e.message }, 'backend connection failed');
        // The shard is unreachable: waiters would only wait out their timeout, so tell them now.
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(e);
        }
      },
    );
  }

  private sweep(): void {
    const now = Date.now();
    const keep = this.cfg.min_idle;
    this.idle = this.idle.filter((c) => {
      if (!c.isOpen) {
        this.all.delete(c);
        return false;
      }
      if (this.all.size > keep && now - c.lastUsed > this.cfg.idle_timeout_ms) {
        this.all.delete(c);
        c.terminate();
        return false;
      }
      return true;
    });
    this.fillMinIdle();
  }

  /** Bytes received from and sent to the shard by every connection this pool opened. */
  bytes(): { received: number; sent: number } {
    let { received, sent } = this.closedBytes;
    for (const c of this.all) {
      const b = c.bytes;
      received += b.received;
      sent += b.sent;
    }
    return { received, sent };
  }

  stats(): PoolStats {
    return {
      shard: this.shard.id,
      total: this.all.size,
      idle: this.idle.length,
      active: this.all.size - this.idle.length,
      creating: this.creating,
      waiting: this.waiters.length,
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new PgError(SqlState.AdminShutdown, 'pgshard is shutting down'));
    }
    for (const c of this.idle.splice(0)) c.terminate();
    for (const c of this.all) c.destroy();
    this.all.clear();
  }
}
