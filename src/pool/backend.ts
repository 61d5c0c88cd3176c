/**
 * One connection from pgshard to a shard: connects, authenticates with the shard's configured credentials,
 * then hands every framed message to whoever leases it. It remembers what the session-state sync and the
 * prepared-statement bookkeeping need: the parameters the server reported, the SETs applied, and which
 * statements are prepared on it under which names.
 */
import net from 'node:net';
import pgProtocol from 'pg-protocol/dist/serializer';
const { serialize } = pgProtocol;
import { Framer, type FrameSink } from '../protocol/framer.js';
import { Backend } from '../protocol/codes.js';
import type { TxStatus } from '../protocol/codes.js';
import { decodeErrorFields, readCString } from '../protocol/messages.js';
import { PgError, SqlState } from '../protocol/errors.js';
import { ScramClientSession } from '../auth/scram.js';
import { md5Response } from '../auth/md5.js';
import { openShardTransport } from './shard-socket.js';
import type { ChunkReader } from './chunk-reader.js';
import type { ShardConfig } from '../config/schema.js';

export interface BackendListener {
  /**
   * Set by a listener that may get messages in memory the next read overwrites: it calls
   * BackendConnection.holdChunk() when it keeps a reference beyond the chunk. Others get memory of their own.
   */
  readonly takesReusedChunks?: boolean;
  message(type: number, buf: Buffer, start: number, end: number): void;
  chunkDone(buf: Buffer): void;
  /** The connection ended while leased. */
  lost(err: PgError): void;
}

let nextBackendId = 1;

export class BackendConnection implements FrameSink {
  readonly id = nextBackendId++;
  readonly params = new Map<string, string>();
  pid = 0;
  secret = 0;
  txStatus: TxStatus = 'I';
  /** Session settings applied on this connection: GUC name → the SET statement that set it. */
  readonly vars = new Map<string, string>();
  /** Statements prepared here: statement key (types + text) → server-side name. */
  readonly statements = new Map<string, string>();
  /** The key of the statement last parsed into the unnamed slot, and which session parsed it. */
  unnamedKey: string | null = null;
  unnamedOwner = 0;
  private nextStatementNumber = 1;
  lastUsed = Date.now();
  broken = false;
  listener: BackendListener | null = null;
  private framer = new Framer(1 << 30);
  private socket: net.Socket | null = null;
  private reader: ChunkReader | null = null;
  private closeHandlers: ((c: BackendConnection) => void)[] = [];

  constructor(readonly shard: ShardConfig, private readonly keepAliveMs = 30_000) {}

  newStatementName(): string {
    return `pgshard_${this.nextStatementNumber++}`;
  }

  onClose(fn: (c: BackendConnection) => void): void {
    this.closeHandlers.push(fn);
  }

  /** Opens the connection; resolves once the server sent ReadyForQuery after authentication. */
  async connect(timeoutMs: number, applicationName = 'pgshard'): Promise<void> {
    const s = this.shard;
    const t0 = Date.now();
    const { socket, reader } = await openShardTransport(s, timeoutMs); // TCP, and TLS as the shard's sslmode says
    if (reader) {
      this.reader = reader;
      this.framer = new Framer(1 << 30, true);
    }
    const left = Math.max(1, timeoutMs - (Date.now() - t0));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (e: PgError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new PgError(SqlState.ConnectionFailure, `could not connect to shard "${s.id}" at ${s.host}:${s.port}: timed out after ${timeoutMs} ms`)),
        left,
      );
      this.socket = socket;
      socket.setNoDelay(true);
      socket.setKeepAlive(true, this.keepAliveMs);
      let scram: ScramClientSession | null = null;
      const startup: FrameSink = {
        message: (type, buf, start, end) => {
          try {
            switch (type) {
              case Backend.Authentication: {
                const code = buf.readInt32BE(start + 5);
                if (code === 0) return;
                if (code === 3) return void socket.write(serialize.password(s.password ?? ''));
                if (code === 5) {
                  const salt = buf.subarray(start + 9, start + 13);
                  return void socket.write(serialize.password(md5Response({ user: s.user, password: s.password ?? '' }, salt)));
                }
                if (code === 10) {
                  const mechs: string[] = [];
                  let p = start + 9;
                  while (p < end && buf[p] !== 0) {
                    const [m, next] = readCString(buf, p, end);
                    mechs.push(m);
                    p = next;
                  }
                  if (!mechs.includes('SCRAM-SHA-256'))
                    throw new PgError(SqlState.ConnectionFailure, `shard "${s.id}" offers only ${mechs.join(', ')}; pgshard supports SCRAM-SHA-256`);
                  scram = new ScramClientSession(s.password ?? '');
                  return void socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst().toString('utf8')));
                }
                if (code === 11 && scram) {
                  const reply = scram.handleServerFirst(Buffer.from(buf.subarray(start + 9, end)));
                  return void socket.write(serialize.sendSCRAMClientFinalMessage(reply.toString('utf8')));
                }
                if (code === 12 && scram) return void scram.verifyServerFinal(Buffer.from(buf.subarray(start + 9, end)));
                throw new PgError(SqlState.ConnectionFailure, `shard "${s.id}" asked for an authentication method pgshard does not support (code ${code})`);
              }
              case Backend.ParameterStatus: {
                const [k, p] = readCString(buf, start + 5, end);
                const [v] = readCString(buf, p, end);
                this.params.set(k, v);
                return;
              }
              case Backend.BackendKeyData:
                this.pid = buf.readInt32BE(start + 5);
                this.secret = buf.readInt32BE(start + 9);
                return;
              case Backend.ErrorResponse: {
                const f = decodeErrorFields(buf, start, end);
                throw new PgError(f.C ?? SqlState.ConnectionFailure, `shard "${s.id}" refused the connection: ${f.M ?? 'unknown error'}`);
              }
              case Backend.ReadyForQuery:
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                this.txStatus = String.fromCharCode(buf[start + 5]!) as TxStatus;
                if (reader) reader.sink = (chunk) => this.onReusedChunk(chunk);
                else {
                  socket.removeAllListeners('data');
                  socket.on('data', (chunk: Buffer) => this.onData(chunk));
                }
                resolve();
                return;
              default:
                return; // NoticeResponse and the like during startup
            }
          } catch (e) {
            fail(e instanceof PgError ? e : new PgError(SqlState.ConnectionFailure, `shard "${s.id}": ${(e as Error).message}`));
          }
        },
      };
      const startupChunk = (chunk: Buffer) => {
        try {
          this.framer.feed(chunk, startup);
        } catch (e) {
          fail(new PgError(SqlState.ProtocolViolation, `shard "${s.id}" sent a malformed message: ${(e as Error).message}`));
        }
      };
      if (reader) reader.sink = startupChunk;
      else socket.on('data', startupChunk);
      socket.on('error', (e) => {
        if (!settled) fail(new PgError(SqlState.ConnectionFailure, `could not connect to shard "${s.id}" at ${s.host}:${s.port}: ${e.message}`));
        else this.handleClose(e);
      });
      socket.on('close', () => {
        if (!settled) fail(new PgError(SqlState.ConnectionFailure, `shard "${s.id}" closed the connection during startup`));
        else this.handleClose(null);
      });
      socket.write(serialize.startup({ user: s.user, database: s.database, application_name: applicationName }));
      socket.resume();
    });
  }

  /** A chunk in the reader's buffer: a listener that cannot take such memory gets a copy of it. */
  private onReusedChunk(chunk: Buffer): void {
    const l = this.listener;
    this.onData(l !== null && l.takesReusedChunks === true ? chunk : Buffer.from(chunk));
  }

  /** The listener keeps a reference to the current chunk's bytes: the next read goes to new memory. */
  holdChunk(): void {
    this.reader?.hold();
  }

  /** Whether `buf` is memory the next read from this connection overwrites (unless holdChunk() is called). */
  readsInto(buf: Uint8Array): boolean {
    return this.reader !== null && this.reader.isCurrent(buf);
  }

  private onData(chunk: Buffer): void {
    try {
      this.framer.feed(chunk, this);
    } catch (e) {
      this.broken = true;
      this.handleClose(e as Error);
      this.destroy();
    }
  }

  message(type: number, buf: Buffer, start: number, end: number): void {
    if (type === Backend.ReadyForQuery) this.txStatus = String.fromCharCode(buf[start + 5]!) as TxStatus;
    else if (type === Backend.ParameterStatus) {
      const [k, p] = readCString(buf, start + 5, end);
      this.params.set(k, readCString(buf, p, end)[0]);
    }
    const l = this.listener;
    if (l) {
      // The listener changed within a chunk handed over without copying (a session gave the connection
      // back, and another owner took it at once): this one gets memory of its own.
      if (l.takesReusedChunks !== true && this.reader !== null && this.reader.isCurrent(buf)) {
        const own = Buffer.from(buf.subarray(start, end));
        l.message(type, own, 0, own.length);
      } else l.message(type, buf, start, end);
    } else if (type === Backend.ErrorResponse) {
      // An error nobody is waiting for (e.g. the server shutting down an idle connection): not reusable.
      this.broken = true;
    }
  }

  chunkDone(buf: Buffer): void {
    this.listener?.chunkDone(buf);
  }

  private closed = false;
  private handleClose(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.broken = true;
    const l = this.listener;
    this.listener = null;
    if (l) {
      l.lost(
        new PgError(SqlState.ConnectionFailure, `lost the connection to shard "${this.shard.id}"${err ? `: ${err.message}` : ''}`, {
          hint: 'The statement may or may not have been applied on that shard. Retry once the shard is reachable.',
        }),
      );
    }
    for (const h of this.closeHandlers) h(this);
  }

  /**
   * Set while the connection is shared by several clients (pipeline.ts): what a session writes is copied
   * into the pipeline's queue, which writes it in order with the others'.
   */
  redirect: ((data: Buffer) => void) | null = null;

  write(data: Buffer): void {
    if (this.redirect !== null) this.redirect(data);
    else this.socket?.write(data);
  }

  /** Writes to the socket itself, whatever `redirect` says (the pipeline's own flush). */
  sendNow(data: Buffer): void {
    this.socket?.write(data);
  }

  /** Writes several messages in one syscall where the socket allows (cork/uncork). */
  writev(parts: Buffer[]): void {
    if (this.redirect !== null) {
      for (const p of parts) this.redirect(p);
      return;
    }
    const s = this.socket;
    if (!s) return;
    if (parts.length === 1) {
      s.write(parts[0]!);
      return;
    }
    s.cork();
    for (const p of parts) s.write(p);
    s.uncork();
  }

  pause(): void {
    this.socket?.pause();
  }

  /** Bytes written and not yet taken by the kernel: how far a stream pgshard forwards is ahead of the shard. */
  get writableLength(): number {
    // Shared: what a session wrote was copied, nothing of its memory stays referenced.
    if (this.redirect !== null) return 0;
    return this.socket?.writableLength ?? 0;
  }

  /** Bytes the socket holds that the kernel has not taken yet. */
  get socketBacklog(): number {
    return this.socket?.writableLength ?? 0;
  }

  /** Calls `fn` once, when the write buffer has drained or the connection is gone. */
  onceDrained(fn: () => void): void {
    const s = this.socket;
    if (!s || s.destroyed || s.writableLength === 0) return fn();
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      s.off('drain', once);
      s.off('close', once);
      fn();
    };
    s.on('drain', once);
    s.on('close', once);
  }

  resume(): void {
    this.socket?.resume();
  }

  /** Bytes this connection received from and sent to its shard so far (read at scrape time, not counted per message). */
  get bytes(): { received: number; sent: number } {
    const s = this.socket;
    return s ? { received: s.bytesRead, sent: s.bytesWritten } : { received: 0, sent: 0 };
  }

  get isOpen(): boolean {
    return !this.closed && !this.broken && this.socket !== null && !this.socket.destroyed;
  }

  /** Graceful end: Terminate, then close. */
  terminate(): void {
    if (this.socket && !this.socket.destroyed) {
      this.socket.end(serialize.end());
    }
    this.broken = true;
  }

  destroy(): void {
    this.broken = true;
    this.socket?.destroy();
  }

  get remote(): { host: string; port: number } {
    return { host: this.shard.host, port: this.shard.port };
  }
}

/** Sends a CancelRequest for a backend process, on a new connection as the protocol requires. */
export function sendCancel(host: string, port: number, pid: number, secret: number): void {
  const s = net.connect({ host, port });
  s.on('connect', () => s.end(serialize.cancel(pid, secret)));
  s.on('error', () => s.destroy());
  s.setTimeout(5000, () => s.destroy());
}
