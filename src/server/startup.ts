/**
 * The startup phase of a client connection: SSL/GSS negotiation, CancelRequest, the StartupMessage, and
 * client authentication from the configured users. Ends with the socket (maybe upgraded to TLS), the
 * client's startup parameters, and any bytes that arrived after the last startup message.
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { CANCEL_REQUEST, GSSENC_REQUEST, PROTOCOL_3_0, SSL_REQUEST, Frontend } from '../protocol/codes.js';
import { FrameTooLarge } from '../protocol/framer.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState } from '../protocol/errors.js';
import type { AuthMethod } from '../config/schema.js';
import type { UserCredentials } from '../auth/credentials.js';
import { ScramServerSession, parseSASLInitialResponse } from '../auth/scram.js';
import { md5Check } from '../auth/md5.js';
import { LoginThrottle } from '../auth/login-throttle.js';

export interface StartupOptions {
  tls: tls.SecureContext | null;
  users: Map<string, UserCredentials>;
  methodFor(user: string): AuthMethod;
  database: string;
  /** The admin console database, accepted besides `database`. */
  consoleDatabase: string | null;
  timeoutMs: number;
  /** Spaces login attempts from addresses with failed logins. */
  throttle?: LoginThrottle;
}

export type StartupResult =
  | { kind: 'session'; socket: net.Socket; user: string; database: string; params: Map<string, string>; leftover: Buffer }
  | { kind: 'cancel'; pid: number; secret: number }
  | { kind: 'closed' };

/** Reads length-prefixed packets from a socket during startup, with a bound on what it buffers. */
class PacketReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  private readonly onData = (c: Buffer) => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    this.wake();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.wake();
  };

  constructor(public socket: net.Socket) {
    this.attach(socket);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  attach(s: net.Socket): void {
    this.socket = s;
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onEnd);
    s.on('error', this.onEnd);
  }

  /**
   * Stops listening. Handed over to a session, the socket is paused: bytes arriving before the session
   * listens (its login waits for a backend) must wait in the socket, not be dropped.
   */
  detach(pause = false): Buffer {
    const s = this.socket;
    if (pause) s.pause();
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onEnd);
    s.off('error', this.onEnd);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  private async need(n: number): Promise<boolean> {
    while (this.buf.length < n) {
      if (this.ended) return false;
      await new Promise<void>((r) => (this.waiter = r));
    }
    return true;
  }

  /** An untyped startup packet (length, then body). Null when the client went away. */
  async startupPacket(max: number): Promise<Buffer | null> {
    if (!(await this.need(4))) return null;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > max) throw new FrameTooLarge(0, len);
    if (!(await this.need(len))) return null;
    const p = this.buf.subarray(0, len);
    this.buf = this.buf.subarray(len);
    return p;
  }

  /** A typed message (during authentication). */
  async message(max: number): Promise<{ type: number; body: Buffer } | null> {
    if (!(await this.need(5))) return null;
    const type = this.buf[0]!;
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > max) throw new FrameTooLarge(type, len);
    if (!(await this.need(len + 1))) return null;
    const body = this.buf.subarray(5, len + 1);
    this.buf = this.buf.subarray(len + 1);
    return { type, body };
  }

  get buffered(): number {
    return this.buf.length;
  }
}

function fatal(socket: net.Socket, code: string, message: string, extra: { detail?: string; hint?: string } = {}): StartupResult {
  socket.end(new PgError(code, message, { ...extra, severity: 'FATAL' }).toMessage());
  return { kind: 'closed' };
}

/** Runs the startup phase. Never throws: failures are answered with a FATAL ErrorResponse and close. */
export async function runStartup(socket: net.Socket, opts: StartupOptions): Promise<StartupResult> {
  const reader = new PacketReader(socket);
  const timer = setTimeout(() => socket.destroy(), opts.timeoutMs);
  try {
    return await startup(reader, opts);
  } catch (e) {
    if (e instanceof FrameTooLarge) return fatal(reader.socket, SqlState.ProtocolViolation, `invalid length of startup packet`);
    if (e instanceof PgError) return fatal(reader.socket, e.code, e.message, { ...(e.hint ? { hint: e.hint } : {}) });
    return fatal(reader.socket, SqlState.ProtocolViolation, `malformed startup message: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

async function startup(reader: PacketReader, opts: StartupOptions): Promise<StartupResult> {
  let tlsDone = false;
  let gssDone = false;
  for (;;) {
    const p = await reader.startupPacket(10_000);
    if (!p) return { kind: 'closed' };
    const code = p.readInt32BE(4);
    if (code === SSL_REQUEST && !tlsDone) {
      tlsDone = true;
      if (!opts.tls) {
        reader.socket.write('N');
        continue;
      }
      if (reader.buffered > 0) throw new PgError(SqlState.ProtocolViolation, 'received unencrypted data after SSL request');
      const raw = reader.socket;
      reader.detach();
      raw.write('S');
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: opts.tls });
      reader.attach(secure);
      continue;
    }
    if (code === GSSENC_REQUEST && !gssDone) {
      gssDone = true;
      reader.socket.write('N');
      continue;
    }
    if (code === CANCEL_REQUEST && p.length >= 16) {
      reader.socket.end();
      return { kind: 'cancel', pid: p.readInt32BE(8), secret: p.readInt32BE(12) };
    }
    const major = code >>> 16;
    if (major !== 3) {
      return fatal(reader.socket, SqlState.FeatureNotSupported, `unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0 to 3.0`);
    }
    const params = new Map<string, string>();
    let pos = 8;
    while (pos < p.length && p[pos] !== 0) {
      const [k, p1] = M.readCString(p, pos);
      const [v, p2] = M.readCString(p, p1);
      params.set(k, v);
      pos = p2;
    }
    const minor = code & 0xffff;
    const unknown = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
    if (minor > 0 || unknown.length) {
      // Newer minor version or protocol options: tell the client we speak 3.0 and none of the options.
      const names = Buffer.from(unknown.map((u) => u + '\0').join(''), 'utf8');
      const b = Buffer.alloc(1 + 4 + 4 + 4 + names.length);
      b[0] = 0x76;
      b.writeInt32BE(b.length - 1, 1);
      b.writeInt32BE(PROTOCOL_3_0, 5);
      b.writeInt32BE(unknown.length, 9);
      names.copy(b, 13);
      reader.socket.write(b);
      for (const u of unknown) params.delete(u);
    }
    const user = params.get('user');
    if (!user) return fatal(reader.socket, SqlState.InvalidAuthorizationSpecification, 'no PostgreSQL user name specified in startup packet');
    const database = params.get('database') || user;
    if (params.get('replication') && params.get('replication') !== 'false')
      return fatal(reader.socket, SqlState.FeatureNotSupported, 'replication connections are not supported through pgshard', {
        hint: 'Connect replication clients to the shards directly.',
      });
    const wait = opts.throttle?.admit(LoginThrottle.key(reader.socket.remoteAddress)) ?? 0;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // a timer: other clients go on meanwhile
    const ok = await authenticate(reader, opts, user);
    if (!ok) return { kind: 'closed' };
    if (database !== opts.database && database !== opts.consoleDatabase)
      return fatal(reader.socket, SqlState.InvalidCatalogName, `database "${database}" does not exist`, {
        hint: `pgshard serves the database "${opts.database}".`,
      });
    const leftover = reader.detach(true);
    return { kind: 'session', socket: reader.socket, user, database, params, leftover };
  }
}

async function authenticate(reader: PacketReader, opts: StartupOptions, user: string): Promise<boolean> {
  const creds = opts.users.get(user);
  const method = opts.methodFor(user);
  const s = reader.socket;
  const address = LoginThrottle.key(s.remoteAddress);
  const failed = () => {
    opts.throttle?.failed(address);
    fatal(s, SqlState.InvalidPassword, `password authentication failed for user "${user}"`);
    return false;
  };
  if (method === 'trust') {
    if (!creds) {
      fatal(s, SqlState.InvalidAuthorizationSpecification, `role "${user}" does not exist`);
      return false;
    }
    s.write(M.authenticationOk);
    return true;
  }
  if (method === 'md5' && (!creds || creds.md5Hash !== null)) {
    const salt = randomBytes(4);
    s.write(M.authenticationMD5(salt));
    const m = await reader.message(1024);
    if (!m) return false;
    if (m.type !== Frontend.Password) throw new PgError(SqlState.ProtocolViolation, `expected password response, got message type ${m.type}`);
    if (!creds || !md5Check(creds, salt, m.body)) return failed();
    opts.throttle?.succeeded(address);
    s.write(M.authenticationOk);
    return true;
  }
  // SCRAM-SHA-256 (also for md5 users whose only secret is a SCRAM verifier, as Postgres does).
  const scram = new ScramServerSession(creds?.scram ?? null, { user });
  s.write(M.authenticationSASL(['SCRAM-SHA-256']));
  const first = await reader.message(8192);
  if (!first) return false;
  if (first.type !== Frontend.Password) throw new PgError(SqlState.ProtocolViolation, `expected SASL response, got message type ${first.type}`);
  const init = parseSASLInitialResponse(first.body);
  if (!init) throw new PgError(SqlState.ProtocolViolation, 'malformed SASLInitialResponse');
  if (init.mechanism !== 'SCRAM-SHA-256')
    throw new PgError(SqlState.ProtocolViolation, 'client selected an invalid SASL authentication mechanism');
  const r1 = scram.handleClientFirst(init.data);
  if (!r1.ok) {
    if (r1.sqlstate === SqlState.InvalidPassword) return failed();
    fatal(s, r1.sqlstate, r1.message);
    return false;
  }
  s.write(M.authenticationSASLContinue(r1.serverFirst));
  const fin = await reader.message(8192);
  if (!fin) return false;
  if (fin.type !== Frontend.Password) throw new PgError(SqlState.ProtocolViolation, `expected SASL response, got message type ${fin.type}`);
  const r2 = scram.handleClientFinal(fin.body);
  if (!r2.ok) {
    if (r2.sqlstate === SqlState.InvalidPassword) return failed();
    fatal(s, r2.sqlstate, r2.message);
    return false;
  }
  opts.throttle?.succeeded(address);
  s.write(Buffer.concat([M.authenticationSASLFinal(r2.serverFinal), M.authenticationOk]));
  return true;
}

/** Turns the client's startup parameters into the SET statements that recreate them on any backend. */
export function startupVars(params: Map<string, string>): Map<string, string> {
  const vars = new Map<string, string>();
  // set_config takes the value as Postgres's startup packet does: a list such as search_path=a,b stays a list.
  const set = (name: string, value: string) => vars.set(name.toLowerCase(), `SELECT pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, false)`);
  for (const [k, v] of params) {
    if (k === 'user' || k === 'database' || k === 'replication' || k === 'options') continue;
    set(k, v);
  }
  const options = params.get('options');
  if (options) {
    // -c name=value and --name=value, separated by unescaped spaces (backslash escapes), as libpq sends them.
    const words: string[] = [];
    let cur = '';
    for (let i = 0; i < options.length; i++) {
      const c = options[i]!;
      if (c === '\\' && i + 1 < options.length) cur += options[++i];
      else if (c === ' ') {
        if (cur) words.push(cur);
        cur = '';
      } else cur += c;
    }
    if (cur) words.push(cur);
    for (let i = 0; i < words.length; i++) {
      let w = words[i]!;
      if (w === '-c' && i + 1 < words.length) w = words[++i]!;
      else if (w.startsWith('-c')) w = w.slice(2);
      else if (w.startsWith('--')) w = w.slice(2);
      else continue;
      const eq = w.indexOf('=');
      if (eq > 0) set(w.slice(0, eq).replace(/-/g, '_'), w.slice(eq + 1));
    }
  }
  return vars;
}

export function quoteLiteral(s: string): string {
  return "'" + s.replace(/'/g, "''") + "'";
}
