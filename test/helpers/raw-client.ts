/**
 * A tiny raw v3 protocol client for tests that need byte-level control. Frontend messages are built with
 * pg-protocol's `serialize` (or by hand); backend messages are decoded into small objects:
 *   { type: 'E', fields: {S, C, M, …}, code, message }   ErrorResponse (also 'N' NoticeResponse)
 *   { type: 'Z', status: 'I' | 'T' | 'E' }               ReadyForQuery
 *   { type: 'C', tag }                                   CommandComplete
 *   { type: 'D', values: (string | null)[] }             DataRow (text)
 *   { type: 'T', columns: string[] }                     RowDescription
 *   { type: 'S', name, value }                           ParameterStatus
 *   { type: 'K', pid, secret }                           BackendKeyData
 *   { type: 'R', code, data }                            Authentication*
 * and `{ type, body }` for everything else. `raw` always holds the message bytes.
 */
import net from 'node:net';
// (pg-protocol's ESM entry does not load under tap's TypeScript loader; its CommonJS build does.)
import { serialize } from 'pg-protocol/dist/index';
import { ScramClientSession } from '../../src/auth/scram.js';
import { APP } from './shards.js';

export { serialize };

export interface BackendMessage {
  type: string;
  raw: Buffer;
  body: Buffer;
  fields?: Record<string, string>;
  code?: string;
  message?: string;
  status?: string;
  tag?: string;
  values?: (string | null)[];
  columns?: string[];
  name?: string;
  value?: string;
  pid?: number;
  secret?: number;
  authCode?: number;
  data?: Buffer;
}

function cstr(b: Buffer, pos: number): [string, number] {
  const z = b.indexOf(0, pos);
  const end = z < 0 ? b.length : z;
  return [b.toString('utf8', pos, end), end + 1];
}

export function decodeBackend(raw: Buffer): BackendMessage {
  const type = String.fromCharCode(raw[0]!);
  const body = raw.subarray(5);
  const m: BackendMessage = { type, raw, body };
  switch (type) {
    case 'E':
    case 'N': {
      const f: Record<string, string> = {};
      let p = 0;
      while (p < body.length && body[p] !== 0) {
        const k = String.fromCharCode(body[p]!);
        const [v, next] = cstr(body, p + 1);
        f[k] = v;
        p = next;
      }
      m.fields = f;
      m.code = f.C;
      m.message = f.M;
      break;
    }
    case 'Z':
      m.status = String.fromCharCode(body[0]!);
      break;
    case 'C':
      m.tag = cstr(body, 0)[0];
      break;
    case 'D': {
      const n = body.readInt16BE(0);
      let p = 2;
      const values: (string | null)[] = [];
      for (let i = 0; i < n; i++) {
        const len = body.readInt32BE(p);
        p += 4;
        if (len < 0) values.push(null);
        else {
          values.push(body.toString('utf8', p, p + len));
          p += len;
        }
      }
      m.values = values;
      break;
    }
    case 'T': {
      const n = body.readInt16BE(0);
      let p = 2;
      const cols: string[] = [];
      for (let i = 0; i < n; i++) {
        const [name, next] = cstr(body, p);
        cols.push(name);
        p = next + 18;
      }
      m.columns = cols;
      break;
    }
    case 'S': {
      const [name, p] = cstr(body, 0);
      m.name = name;
      m.value = cstr(body, p)[0];
      break;
    }
    case 'K':
      m.pid = body.readInt32BE(0);
      m.secret = body.readInt32BE(4);
      break;
    case 'R':
      m.authCode = body.readInt32BE(0);
      m.data = body.subarray(4);
      break;
  }
  return m;
}

export interface RawConnectOptions {
  user?: string;
  password?: string;
  database?: string;
  /** Extra startup parameters. */
  params?: Record<string, string>;
  timeoutMs?: number;
}

export class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  /** The messages received before ReadyForQuery of the login (ParameterStatus, BackendKeyData, …). */
  loginMessages: BackendMessage[] = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      this.wake();
    });
    const end = () => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** A TCP connection, nothing sent yet. */
  static open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.setNoDelay(true);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Connects and logs in (trust, cleartext, or SCRAM-SHA-256); throws with the server's error on failure. */
  static async connect(port: number, opts: RawConnectOptions = {}): Promise<RawClient> {
    const c = await RawClient.open(port);
    try {
      await c.login(opts);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Bytes received that are not a complete message yet. */
  get pendingBytes(): number {
    return this.buf.length;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.ended) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Sends the StartupMessage and answers authentication; resolves at the first ReadyForQuery. */
  async login(opts: RawConnectOptions = {}): Promise<BackendMessage[]> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    this.send(serialize.startup({ user: opts.user ?? APP.user, database: opts.database ?? APP.database, ...opts.params }));
    let scram: ScramClientSession | null = null;
    const password = opts.password ?? APP.password;
    for (;;) {
      const m = await this.readOne(timeoutMs);
      this.loginMessages.push(m);
      if (m.type === 'E') throw Object.assign(new Error(m.message ?? 'login failed'), { code: m.code, fields: m.fields });
      if (m.type === 'Z') return this.loginMessages;
      if (m.type !== 'R') continue;
      if (m.authCode === 3) this.send(serialize.password(password));
      else if (m.authCode === 10) {
        scram = new ScramClientSession(password);
        this.send(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst().toString('utf8')));
      } else if (m.authCode === 11 && scram) this.send(serialize.sendSCRAMClientFinalMessage(scram.handleServerFirst(m.data!).toString('utf8')));
      else if (m.authCode === 12 && scram) scram.verifyServerFinal(m.data!);
      else if (m.authCode !== 0) throw new Error(`unsupported authentication request ${m.authCode}`);
    }
  }

  send(...messages: Buffer[]): void {
    this.socket.write(messages.length === 1 ? messages[0]! : Buffer.concat(messages));
  }

  /** n raw bytes (e.g. the 'N'/'S' answer to an SSLRequest). */
  async readBytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    await this.waitFor(() => this.buf.length >= n, timeoutMs, `${n} bytes`);
    const b = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return b;
  }

  private complete(): number {
    if (this.buf.length < 5) return 0;
    const len = this.buf.readInt32BE(1);
    return this.buf.length >= len + 1 ? len + 1 : 0;
  }

  /** The next backend message. */
  async readOne(timeoutMs = 5000): Promise<BackendMessage> {
    await this.waitFor(() => this.complete() > 0, timeoutMs, 'a backend message');
    const n = this.complete();
    const raw = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    return decodeBackend(raw);
  }

  /** Messages up to and including the next message of one of these types. */
  async readUntil(types: string | string[], timeoutMs = 5000): Promise<BackendMessage[]> {
    const want = Array.isArray(types) ? types : [types];
    const out: BackendMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.readOne(Math.max(1, deadline - Date.now()));
      out.push(m);
      if (want.includes(m.type)) return out;
    }
  }

  /** Messages up to and including the next ReadyForQuery. */
  readUntilReady(timeoutMs = 5000): Promise<BackendMessage[]> {
    return this.readUntil('Z', timeoutMs);
  }

  /** Messages up to the `n`th ReadyForQuery. */
  async readReady(n: number, timeoutMs = 5000): Promise<BackendMessage[]> {
    const out: BackendMessage[] = [];
    for (let i = 0; i < n; i++) out.push(...(await this.readUntilReady(timeoutMs)));
    return out;
  }

  /** Everything that arrives until the server closes the connection (or the timeout: then throws). */
  async readUntilClosed(timeoutMs = 5000): Promise<BackendMessage[]> {
    await this.waitFor(() => this.ended, timeoutMs, 'the connection to close');
    const out: BackendMessage[] = [];
    while (this.complete() > 0) out.push(await this.readOne());
    return out;
  }

  /** A simple Query; resolves with the messages up to ReadyForQuery. */
  async query(sql: string, timeoutMs = 5000): Promise<BackendMessage[]> {
    this.send(serialize.query(sql));
    return this.readUntilReady(timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Sends Terminate and waits for the server to close the connection. */
  async terminate(timeoutMs = 5000): Promise<void> {
    this.send(serialize.end());
    await this.waitFor(() => this.ended, timeoutMs, 'the connection to close after Terminate');
  }
}

/** The message types in order, e.g. "1 2 T D C Z": for compact assertions. */
export function types(msgs: BackendMessage[]): string {
  return msgs.map((m) => m.type).join(' ');
}

/** The DataRow values of a message list. */
export function rows(msgs: BackendMessage[]): (string | null)[][] {
  return msgs.filter((m) => m.type === 'D').map((m) => m.values!);
}

/** Frontend messages pg-protocol does not build, or builds in a way a test needs to control. */
export const fe = {
  /** Parse with explicit parameter type OIDs (default none). */
  parse: (name: string, text: string, types: number[] = []): Buffer => serialize.parse({ name, text, types }),
  bind: (portal: string, statement: string, values: (string | null)[] = []): Buffer => serialize.bind({ portal, statement, values }),
  execute: (portal = '', rows = 0): Buffer => serialize.execute({ portal, rows }),
  describeStatement: (name: string): Buffer => serialize.describe({ type: 'S', name }),
  describePortal: (name: string): Buffer => serialize.describe({ type: 'P', name }),
  closeStatement: (name: string): Buffer => serialize.close({ type: 'S', name }),
  closePortal: (name: string): Buffer => serialize.close({ type: 'P', name }),
  sync: (): Buffer => serialize.sync(),
  flush: (): Buffer => serialize.flush(),
  query: (sql: string): Buffer => serialize.query(sql),
  terminate: (): Buffer => serialize.end(),
  /** An untyped startup-phase packet: int32 length, int32 code, then `rest`. */
  startupPacket: (code: number, rest: Buffer = Buffer.alloc(0)): Buffer => {
    const b = Buffer.alloc(8 + rest.length);
    b.writeInt32BE(b.length, 0);
    b.writeInt32BE(code, 4);
    rest.copy(b, 8);
    return b;
  },
  cancelRequest: (pid: number, secret: number): Buffer => {
    const b = Buffer.alloc(16);
    b.writeInt32BE(16, 0);
    b.writeInt32BE(80877102, 4);
    b.writeInt32BE(pid, 8);
    b.writeInt32BE(secret, 12);
    return b;
  },
};

/** Sends a CancelRequest on a connection of its own, as libpq does, and resolves once the server closed it. */
export function sendCancelRequest(port: number, pid: number, secret: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.end(fe.cancelRequest(pid, secret)));
    sock.on('close', () => resolve());
    sock.on('error', () => resolve());
  });
}
