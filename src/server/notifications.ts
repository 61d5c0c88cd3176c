/**
 * LISTEN/NOTIFY under transaction pooling. A client's LISTEN cannot stay on a pooled connection (the next
 * transaction may run elsewhere), so pgshard keeps one connection of its own per shard that LISTENs on every
 * channel some client listens on, and hands each NotificationResponse to those clients. A NOTIFY runs on
 * whichever shard its statement reaches; listening on every shard means it is delivered wherever it ran.
 * Postgres delivers a NOTIFY sent in a transaction at its commit: the shard does that, and so do we.
 */
import type { Logger } from 'pino';
import type { ShardConfig } from '../config/schema.js';
import { BackendConnection, type BackendListener } from '../pool/backend.js';
import { Backend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { readCString } from '../protocol/messages.js';
import { PgError, SqlState } from '../protocol/errors.js';

/** A client session that receives notifications (it decides when it may write them). */
export interface NotificationSubscriber {
  notify(message: Buffer): void;
}

const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;

export class NotificationHub {
  private readonly channels = new Map<string, Set<NotificationSubscriber>>();
  private readonly links = new Map<string, ListenLink>();
  private closed = false;

  constructor(
    private readonly shards: () => Iterable<ShardConfig>,
    private readonly log: Logger,
    private readonly connectTimeoutMs: number,
  ) {}

  /** Channels the subscriber listens on (what pg_listening_channels() would say for it). */
  channelsOf(sub: NotificationSubscriber): string[] {
    return [...this.channels].filter(([, subs]) => subs.has(sub)).map(([ch]) => ch);
  }

  /**
   * Subscribes; resolves once every reachable shard listens on the channel, so that a NOTIFY sent after
   * the client saw LISTEN's answer is delivered. A shard that cannot be reached is retried in the background.
   */
  async listen(sub: NotificationSubscriber, channel: string): Promise<void> {
    let subs = this.channels.get(channel);
    if (!subs) {
      subs = new Set();
      this.channels.set(channel, subs);
    }
    subs.add(sub);
    await Promise.all([...this.currentLinks()].map((l) => l.ensure(channel)));
  }

  /** Unsubscribes from one channel, or from all (null: UNLISTEN *). */
  async unlisten(sub: NotificationSubscriber, channel: string | null): Promise<void> {
    const names = channel === null ? [...this.channels.keys()] : [channel];
    const emptied: string[] = [];
    for (const ch of names) {
      const subs = this.channels.get(ch);
      if (!subs?.delete(sub)) continue;
      if (subs.size === 0) {
        this.channels.delete(ch);
        emptied.push(ch);
      }
    }
    if (emptied.length) await Promise.all([...this.links.values()].map((l) => l.drop(emptied)));
  }

  /** The subscriber went away (its client closed, or DISCARD ALL). */
  drop(sub: NotificationSubscriber): void {
    void this.unlisten(sub, null).catch(() => {});
  }

  /** One link per shard of the current topology; links of shards that left are closed. */
  private currentLinks(): Iterable<ListenLink> {
    const ids = new Set<string>();
    for (const s of this.shards()) {
      ids.add(s.id);
      if (!this.links.has(s.id)) this.links.set(s.id, new ListenLink(s, this));
    }
    for (const [id, l] of this.links) {
      if (!ids.has(id)) {
        l.close();
        this.links.delete(id);
      }
    }
    return this.links.values();
  }

  /** @internal A link's NotificationResponse: to every subscriber of its channel. */
  deliver(channel: string, message: Buffer): void {
    const subs = this.channels.get(channel);
    if (!subs) return;
    for (const s of subs) s.notify(message);
  }

  /** @internal */
  get wanted(): string[] {
    return [...this.channels.keys()];
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal */
  get logger(): Logger {
    return this.log;
  }

  /** @internal */
  get timeoutMs(): number {
    return this.connectTimeoutMs;
  }

  close(): void {
    this.closed = true;
    for (const l of this.links.values()) l.close();
    this.links.clear();
    this.channels.clear();
  }
}

/** pgshard's listening connection to one shard: commands run one at a time; notifications arrive between them. */
class ListenLink implements BackendListener {
  private be: BackendConnection | null = null;
  private connecting: Promise<BackendConnection> | null = null;
  private readonly listening = new Set<string>();
  private readonly waiting: { resolve: () => void; reject: (e: PgError) => void }[] = [];
  private tail: Promise<unknown> = Promise.resolve();
  private retry: NodeJS.Timeout | null = null;
  private error: PgError | null = null;
  private closed = false;

  constructor(
    private readonly shard: ShardConfig,
    private readonly hub: NotificationHub,
  ) {}

  /** LISTENs on the channel unless it already does; a shard that is down is retried later, not waited for. */
  ensure(channel: string): Promise<void> {
    if (this.listening.has(channel)) return Promise.resolve();
    return this.serial(async () => {
      if (this.listening.has(channel) || !this.hub.wanted.includes(channel)) return;
      await this.run(`LISTEN ${quoteIdent(channel)}`);
      this.listening.add(channel);
    }).catch((e: unknown) => this.failed(e));
  }

  drop(channels: string[]): Promise<void> {
    const mine = channels.filter((c) => this.listening.has(c));
    if (!mine.length) return Promise.resolve();
    return this.serial(async () => {
      const still = mine.filter((c) => !this.hub.wanted.includes(c));
      if (!still.length) return;
      await this.run(still.map((c) => `UNLISTEN ${quoteIdent(c)}`).join('; '));
      for (const c of still) this.listening.delete(c);
    }).catch((e: unknown) => this.failed(e));
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f, f);
    this.tail = p.catch(() => {});
    return p;
  }

  private async connection(): Promise<BackendConnection> {
    if (this.be?.isOpen) return this.be;
    if (this.closed || this.hub.isClosed) throw new PgError(SqlState.AdminShutdown, 'pgshard is shutting down');
    this.connecting ??= (async () => {
      const be = new BackendConnection(this.shard);
      try {
        await be.connect(this.hub.timeoutMs, 'pgshard-listen');
      } finally {
        this.connecting = null;
      }
      be.listener = this;
      be.onClose(() => this.lostConnection());
      this.be = be;
      this.listening.clear();
      return be;
    })();
    return this.connecting;
  }

  /** Runs one simple Query on the link and waits for its ReadyForQuery. */
  private async run(sql: string): Promise<void> {
    const be = await this.connection();
    this.error = null;
    await new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      be.write(M.queryMessage(sql));
    });
  }

  message(type: number, buf: Buffer, start: number, end: number): void {
    if (type === Backend.NotificationResponse) {
      const [channel] = readCString(buf, start + 9, end);
      this.hub.deliver(channel, Buffer.from(buf.subarray(start, end)));
    } else if (type === Backend.ErrorResponse) {
      const f = M.decodeErrorFields(buf, start, end);
      this.error ??= new PgError(f.C ?? SqlState.InternalError, f.M ?? 'error');
    } else if (type === Backend.ReadyForQuery) {
      const w = this.waiting.shift();
      if (!w) return;
      if (this.error) w.reject(this.error);
      else w.resolve();
    }
  }

  chunkDone(): void {}

  lost(err: PgError): void {
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  private lostConnection(): void {
    this.be = null;
    this.listening.clear();
    for (const w of this.waiting.splice(0)) w.reject(new PgError(SqlState.ConnectionFailure, `lost the listening connection to shard "${this.shard.id}"`));
    if (!this.closed && !this.hub.isClosed && this.hub.wanted.length) {
      this.hub.logger.warn({ shard: this.shard.id }, 'listening connection lost: notifications sent on that shard until it is back are missed');
      this.scheduleRetry();
    }
  }

  private failed(e: unknown): void {
    if (this.closed || this.hub.isClosed) return;
    this.hub.logger.warn({ shard: this.shard.id, err: (e as Error).message }, 'cannot LISTEN on the shard yet; retrying');
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      for (const ch of this.hub.wanted) void this.ensure(ch);
    }, 1000);
    this.retry.unref();
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const be = this.be;
    this.be = null;
    if (be) {
      be.listener = null;
      be.terminate();
    }
  }
}
