/**
 * The SQL admin console, for people used to PgBouncer's and PgCat's: a client that connects to the
 * console database (`console.database`, default `pgshard`) gets this session instead of a sharded one, and
 * may run SHOW SHARDS, POOLS, CLIENTS, RING, REBALANCE, INSTANCES, HELP and VERSION, in the simple or the extended
 * protocol. It is read-only: it shows no passwords and changes nothing, so any configured user may use it
 * unless `console.users` names the ones who may.
 */
import type { Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { PgShardServer } from '../server/server.js';
import { Framer, FrameTooLarge } from '../protocol/framer.js';
import { Frontend } from '../protocol/codes.js';
import * as M from '../protocol/messages.js';
import { PgError, SqlState, toPgError } from '../protocol/errors.js';
import { PGSHARD_VERSION } from '../version.js';
import { probePool } from './health.js';
import { currentRing } from './metrics.js';
import {
  COLUMN_TYPES,
  COMMANDS,
  parseQuery,
  showClients,
  showHelp,
  showInstances,
  showPools,
  showRebalance,
  showRing,
  showShards,
  showVersion,
  type ClientView,
  type Column,
  type CommandName,
  type ParsedStatement,
  type ResultSet,
} from './console-commands.js';

/** How long SHOW SHARDS waits for a connection from a shard with no connection in use before calling it down. */
const PROBE_TIMEOUT_MS = 1000;
/** Console statements are short; a larger message is a mistake or an attack. */
const MAX_CONSOLE_MESSAGE = 1 << 20;

export interface ConsoleLogin {
  socket: Socket;
  user: string;
  database: string;
  params: Map<string, string>;
  leftover: Buffer;
}

/** The console's sessions and the answers to its commands. */
export class AdminConsole {
  private readonly open = new Set<ConsoleSession>();

  constructor(
    private readonly host: PgShardServer,
    private readonly nextId: () => number,
    private readonly log: Logger,
  ) {}

  get database(): string | null {
    const c = this.host.config.console;
    return c.enabled ? c.database : null;
  }

  get size(): number {
    return this.open.size;
  }

  /** Whether `user` (already authenticated) may use the console. */
  allowed(user: string): boolean {
    const users = this.host.config.console.users;
    return users === undefined || users.includes(user);
  }

  /** Takes over an authenticated connection that asked for the console database. */
  accept(login: ConsoleLogin): void {
    const { socket, user } = login;
    if (!this.allowed(user)) {
      this.log.warn({ user }, 'admin console refused');
      const e = new PgError(INSUFFICIENT_PRIVILEGE, `permission denied for the pgshard admin console: user "${user}" is not in console.users`, {
        severity: 'FATAL',
        hint: 'Connect as a user listed under console.users in the configuration, or add this user there.',
      });
      socket.resume(); // paused since the startup phase ended (startup.ts detach)
      socket.end(e.toMessage(), () => socket.destroy());
      return;
    }
    const info = {
      id: this.nextId(),
      user,
      database: login.database,
      applicationName: login.params.get('application_name') ?? '',
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
    };
    const log = this.log.child({ client: info.id, console: true });
    const session = new ConsoleSession(socket, info, (cmd) => this.answer(cmd), log);
    this.open.add(session);
    session.onClosed = () => {
      this.open.delete(session);
      log.info('console client disconnected');
    };
    log.info({ user, application_name: info.applicationName }, 'console client connected');
    session.start(login.params, login.leftover);
    socket.resume(); // paused since the startup phase ended (startup.ts detach)
  }

  /** Closes every console session (server shutdown). */
  closeAll(reason: PgError): void {
    for (const s of [...this.open]) s.close(reason);
  }

  /** The rows of one command, from the server's state now. */
  async answer(cmd: CommandName): Promise<ResultSet> {
    const h = this.host;
    switch (cmd) {
      case 'SHARDS': {
        const shards = h.topology?.shards ?? h.config.shards; // the live list once the topology store is open
        const shares = currentRing(h).shares();
        const status = await Promise.all(
          shards.map(async (s) => {
            const pool = h.pools.get(s.id);
            if (!pool) return { up: null, error: null };
            // A pool with connections in use and no failure since is up; asking it for one more could only wait.
            if (pool.stats().active > 0 && pool.lastError === null) return { up: true, error: null };
            const r = await probePool(pool, PROBE_TIMEOUT_MS);
            return { up: r.ok, error: r.ok ? null : (r.error ?? pool.lastError) };
          }),
        );
        return showShards(
          shards.map((s, i) => ({
            id: s.id,
            host: s.host,
            port: s.port,
            database: s.database,
            weight: s.weight,
            up: status[i]!.up,
            lastError: status[i]!.error,
            share: shares.get(s.id) ?? 0,
          })),
        );
      }
      case 'POOLS':
        return showPools(
          [...h.pools.values()].map((p) => {
            const st = p.stats();
            return { ...st, size: h.config.pool.size, checkouts: p.checkouts, checkoutTimeouts: p.checkoutTimeouts };
          }),
        );
      case 'CLIENTS': {
        const views: ClientView[] = [...h.sessions.values()].map((s) => {
          const st = s.consoleState;
          return { ...s.info, connectedAt: new Date(s.info.connectedAt ?? Date.now()), state: st.state, shards: st.shards };
        });
        for (const s of this.open) views.push(s.view());
        return showClients(views);
      }
      case 'RING': {
        const ring = currentRing(h);
        const shares = ring.shares();
        const points = new Map<string, number>();
        for (const p of ring.points()) points.set(p.shard, (points.get(p.shard) ?? 0) + 1);
        return showRing({ vnodes: ring.vnodes, shards: ring.shards.map((s) => ({ id: s.id, weight: s.weight, points: points.get(s.id) ?? 0, share: shares.get(s.id) ?? 0 })) });
      }
      case 'REBALANCE':
        return showRebalance(h.rebalance.status());
      case 'INSTANCES':
        return showInstances((await h.peers.list()).map((p) => ({ ...p, self: p.id === h.peers.instance })));
      case 'HELP':
        return showHelp();
      case 'VERSION':
        return showVersion(PGSHARD_VERSION);
    }
  }
}

interface Portal {
  statement: ParsedStatement;
  /** Computed at the first Execute; later Executes (after PortalSuspended) continue from `sent`. */
  result: ResultSet | null;
  sent: number;
}

/** One console connection: reads the client's messages in order and answers each. */
class ConsoleSession {
  readonly connectedAt = new Date();
  private readonly framer = new Framer(MAX_CONSOLE_MESSAGE);
  private chain: Promise<void> = Promise.resolve();
  private busy = false;
  private closed = false;
  private skipUntilSync = false;
  private readonly statements = new Map<string, ParsedStatement>();
  private readonly portals = new Map<string, Portal>();
  onClosed: (() => void) | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly info: { id: number; user: string; database: string; applicationName: string; remote: string },
    private readonly run: (cmd: CommandName) => Promise<ResultSet>,
    private readonly log: Logger,
  ) {}

  view(): ClientView {
    return { ...this.info, connectedAt: this.connectedAt, state: this.busy ? 'active' : 'idle', shards: [] };
  }

  start(params: Map<string, string>, leftover: Buffer): void {
    const status: [string, string][] = [
      // A Postgres-like version, so that clients that parse it (psql) treat the console as a current server.
      ['server_version', `18.0 (pgshard ${PGSHARD_VERSION} admin console)`],
      ['server_encoding', 'UTF8'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO, MDY'],
      ['TimeZone', 'UTC'],
      ['integer_datetimes', 'on'],
      ['standard_conforming_strings', 'on'],
      ['is_superuser', 'off'],
      ['session_authorization', this.info.user],
      ['application_name', params.get('application_name') ?? ''],
    ];
    this.write([...status.map(([k, v]) => M.parameterStatus(k, v)), M.backendKeyData(randomInt(1, 0x7fffffff), randomInt(0, 0x7fffffff)), M.readyForQuery('I')]);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('close', () => this.closeQuietly());
    this.socket.on('error', () => this.closeQuietly());
    if (leftover.length) this.onData(leftover);
    this.socket.resume(); // startup.ts leaves the socket paused for whoever takes it over
  }

  close(reason: PgError): void {
    if (this.closed) return;
    this.socket.end(reason.toMessage(), () => this.socket.destroy());
    this.closeQuietly();
  }

  private closeQuietly(): void {
    if (this.closed) return;
    this.closed = true;
    this.framer.stop();
    this.onClosed?.();
  }

  private write(parts: Buffer[]): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  private onData(chunk: Buffer): void {
    try {
      this.framer.feed(chunk, {
        message: (type, buf, start, end) => {
          // Copied: answers are asynchronous and the chunk must not be kept alive by the queue.
          const body = Buffer.from(buf.subarray(start + 5, end));
          this.chain = this.chain.then(() => this.handle(type, body));
        },
      });
    } catch (e) {
      const len = e instanceof FrameTooLarge ? e.length : 0;
      this.close(new PgError(SqlState.ProtocolViolation, `invalid message length ${len}: the admin console accepts messages up to ${MAX_CONSOLE_MESSAGE} bytes`, { severity: 'FATAL' }));
    }
  }

  private async handle(type: number, body: Buffer): Promise<void> {
    if (this.closed) return;
    this.busy = true;
    try {
      await this.dispatch(type, body);
    } catch (e) {
      // A bug here must not take the process down; the client gets XX000 and the session goes on.
      const err = toPgError(e);
      if (err.code === SqlState.InternalError) this.log.error({ err: e }, 'admin console error');
      this.write([err.toMessage()]);
      if (type === Frontend.Query) this.write([M.readyForQuery('I')]);
      else this.skipUntilSync = true;
    } finally {
      this.busy = false;
    }
  }

  private async dispatch(type: number, body: Buffer): Promise<void> {
    if (this.skipUntilSync && type !== Frontend.Sync && type !== Frontend.Terminate) return;
    switch (type) {
      case Frontend.Query:
        return this.simpleQuery(M.readCString(body, 0)[0]);
      case Frontend.Terminate:
        this.socket.end();
        return this.closeQuietly();
      case Frontend.Sync:
        this.skipUntilSync = false;
        this.portals.clear(); // outside a transaction block, portals end with the implicit transaction
        return this.write([M.readyForQuery('I')]);
      case Frontend.Flush:
        return;
      case Frontend.Parse:
        return this.parse(body);
      case Frontend.Bind:
        return this.bind(body);
      case Frontend.Describe:
        return this.describe(body);
      case Frontend.Execute:
        return this.execute(body);
      case Frontend.Close: {
        const [name] = M.readCString(body, 1);
        if (body[0] === 0x53) this.statements.delete(name);
        else this.portals.delete(name);
        return this.write([M.closeComplete]);
      }
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        return; // Postgres ignores copy messages outside COPY
      case Frontend.FunctionCall:
        throw new PgError(SqlState.FeatureNotSupported, 'the pgshard admin console does not run function calls', { hint: 'Use SHOW HELP to list the console commands.' });
      default:
        this.close(new PgError(SqlState.ProtocolViolation, `invalid frontend message type ${type}`, { severity: 'FATAL' }));
    }
  }

  private async simpleQuery(sql: string): Promise<void> {
    let parsed: ParsedStatement[];
    try {
      parsed = parseQuery(sql);
    } catch (e) {
      this.write([toPgError(e).toMessage(), M.readyForQuery('I')]);
      return;
    }
    const out: Buffer[] = [];
    if (parsed.every((p) => p.kind === 'empty')) out.push(M.emptyQueryResponse);
    for (const p of parsed) {
      if (p.kind === 'empty') continue;
      try {
        const rs = await this.run(p.command);
        out.push(rowDescription(rs.columns), ...rs.rows.map((r) => M.dataRow(r)), M.commandComplete('SHOW'));
      } catch (e) {
        out.push(toPgError(e).toMessage());
        break;
      }
    }
    out.push(M.readyForQuery('I'));
    this.write(out);
  }

  private parse(body: Buffer): void {
    const [name, p1] = M.readCString(body, 0);
    const [sql, p2] = M.readCString(body, p1);
    const nTypes = body.readInt16BE(p2);
    if (nTypes > 0) throw new PgError(SqlState.SyntaxError, 'the admin console commands take no parameters', { hint: 'Send the statement without parameter types.' });
    const parsed = parseQuery(sql);
    if (parsed.length > 1) throw new PgError(SqlState.SyntaxError, 'cannot insert multiple commands into a prepared statement');
    if (name !== '' && this.statements.has(name)) throw new PgError(SqlState.DuplicatePreparedStatement, `prepared statement "${name}" already exists`);
    this.statements.set(name, parsed[0] ?? { kind: 'empty' });
    this.write([M.parseComplete]);
  }

  private statement(name: string): ParsedStatement {
    const st = this.statements.get(name);
    if (!st) throw new PgError(SqlState.InvalidSqlStatementName, `prepared statement "${name}" does not exist`);
    return st;
  }

  private bind(body: Buffer): void {
    const [portal, p1] = M.readCString(body, 0);
    const [name, p2] = M.readCString(body, p1);
    const statement = this.statement(name);
    let pos = p2;
    const nParamFormats = body.readInt16BE(pos);
    pos += 2 + 2 * nParamFormats;
    const nParams = body.readInt16BE(pos);
    if (nParams !== 0) throw new PgError(SqlState.ProtocolViolation, `bind message supplies ${nParams} parameters, but prepared statement "${name}" requires 0`);
    pos += 2;
    const nResultFormats = body.readInt16BE(pos);
    for (let i = 0; i < nResultFormats; i++) {
      if (body.readInt16BE(pos + 2 + 2 * i) !== 0)
        throw new PgError(SqlState.FeatureNotSupported, 'the admin console answers in text format only', { hint: 'Request text result format (format code 0).' });
    }
    this.portals.set(portal, { statement, result: null, sent: 0 });
    this.write([M.bindComplete]);
  }

  private describe(body: Buffer): void {
    const kind = body[0];
    const [name] = M.readCString(body, 1);
    if (kind === 0x53) {
      const st = this.statement(name);
      this.write([parameterDescriptionNone, st.kind === 'show' ? rowDescription(COMMANDS[st.command].columns) : M.noData]);
      return;
    }
    const portal = this.portals.get(name);
    if (!portal) throw new PgError(INVALID_CURSOR_NAME, `portal "${name}" does not exist`);
    this.write([portal.statement.kind === 'show' ? rowDescription(COMMANDS[portal.statement.command].columns) : M.noData]);
  }

  private async execute(body: Buffer): Promise<void> {
    const [name, p1] = M.readCString(body, 0);
    const maxRows = body.readInt32BE(p1);
    const portal = this.portals.get(name);
    if (!portal) throw new PgError(INVALID_CURSOR_NAME, `portal "${name}" does not exist`);
    if (portal.statement.kind === 'empty') return this.write([M.emptyQueryResponse]);
    portal.result ??= await this.run(portal.statement.command);
    const rows = portal.result.rows;
    const end = maxRows > 0 ? Math.min(rows.length, portal.sent + maxRows) : rows.length;
    const out = rows.slice(portal.sent, end).map((r) => M.dataRow(r));
    portal.sent = end;
    // Postgres suspends a portal that reached maxRows even when no row is left; the next Execute completes it.
    if (maxRows > 0 && out.length === maxRows) out.push(portalSuspended);
    else out.push(M.commandComplete('SHOW'));
    this.write(out);
  }
}

const INVALID_CURSOR_NAME = '34000';
const INSUFFICIENT_PRIVILEGE = '42501';
const parameterDescriptionNone = Buffer.from([0x74, 0, 0, 0, 6, 0, 0]);
const portalSuspended = Buffer.from([0x73, 0, 0, 0, 4]);

function rowDescription(columns: readonly Column[]): Buffer {
  return M.rowDescription(columns.map((c) => ({ name: c.name, typeOid: COLUMN_TYPES[c.type].oid, typeLen: COLUMN_TYPES[c.type].len })));
}
