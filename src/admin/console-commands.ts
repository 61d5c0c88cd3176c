/**
 * The admin console's commands as pure functions: a query string → the commands it names, and views of
 * the server's state → the rows each command answers. No sockets here; `console.ts` gathers the views and
 * speaks the protocol.
 */
import { PgError, SqlState } from '../protocol/errors.js';
import type { RebalanceStatus } from './rebalance-status.js';

export type ColumnType = 'text' | 'int8' | 'float8' | 'timestamptz' | 'bool';

/** Type OIDs and lengths as in pg_type, for RowDescription. */
export const COLUMN_TYPES: Record<ColumnType, { oid: number; len: number }> = {
  text: { oid: 25, len: -1 },
  int8: { oid: 20, len: 8 },
  float8: { oid: 701, len: 8 },
  timestamptz: { oid: 1184, len: 8 },
  bool: { oid: 16, len: 1 },
};

export interface Column {
  name: string;
  type: ColumnType;
}

/** A command's answer: column descriptions and rows of text-format values (null: SQL NULL). */
export interface ResultSet {
  columns: readonly Column[];
  rows: (string | null)[][];
}

export const COMMAND_NAMES = ['SHARDS', 'POOLS', 'CLIENTS', 'RING', 'REBALANCE', 'INSTANCES', 'HELP', 'VERSION'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

const c = (name: string, type: ColumnType = 'text'): Column => ({ name, type });

export const COMMANDS: Record<CommandName, { description: string; columns: readonly Column[] }> = {
  SHARDS: {
    description: 'the shards: address, weight, reachability and share of the keyspace',
    columns: [c('id'), c('host'), c('port', 'int8'), c('database'), c('weight', 'int8'), c('status'), c('share', 'float8'), c('last_error')],
  },
  POOLS: {
    description: 'the connection pool of each shard',
    columns: [
      c('shard'),
      c('size', 'int8'),
      c('total', 'int8'),
      c('idle', 'int8'),
      c('active', 'int8'),
      c('creating', 'int8'),
      c('waiting', 'int8'),
      c('checkouts', 'int8'),
      c('checkout_timeouts', 'int8'),
    ],
  },
  CLIENTS: {
    description: 'one row per client connection (the console ones too)',
    columns: [
      c('id', 'int8'),
      c('user'),
      c('database'),
      c('application_name'),
      c('address'),
      c('port', 'int8'),
      c('state'),
      c('connected_since', 'timestamptz'),
      c('shards'),
    ],
  },
  RING: {
    description: 'the consistent-hash ring: points and share of the keyspace per shard',
    columns: [c('shard'), c('weight', 'int8'), c('points', 'int8'), c('share', 'float8'), c('vnodes', 'int8')],
  },
  REBALANCE: {
    description: 'the state and progress of online rebalancing',
    columns: [
      c('state'),
      c('shard'),
      c('rows_copied', 'int8'),
      c('rows_total', 'int8'),
      c('lag_bytes', 'int8'),
      c('started_at', 'timestamptz'),
      c('last_cutover_pause_ms', 'int8'),
      c('detail'),
    ],
  },
  INSTANCES: {
    description: 'the pgshard instances routing on this topology (several share a metadata database)',
    columns: [c('id'), c('address'), c('heartbeat_age_ms', 'int8'), c('alive', 'bool'), c('this', 'bool')],
  },
  HELP: { description: 'this list', columns: [c('command'), c('description')] },
  VERSION: { description: "pgshard's version", columns: [c('version')] },
};

const commandList = (): string => COMMAND_NAMES.map((n) => `SHOW ${n}`).join(', ');
const HINT = (): string => `The pgshard admin console answers ${commandList()}.`;

/** One statement of a query string: a console command, or nothing (only blanks and comments). */
export type ParsedStatement = { kind: 'show'; command: CommandName } | { kind: 'empty' };

/**
 * Splits a query string at top-level semicolons, dropping comments, as Postgres's lexer would
 * (quotes and dollar quotes keep their semicolons; a statement the console refuses is refused whole).
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
      cur += ' ';
    } else if (ch === '/' && sql[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < sql.length && depth > 0) {
        const two = sql.slice(i, i + 2);
        if (two === '/*') depth++;
        else if (two === '*/') depth--;
        i += two === '/*' || two === '*/' ? 2 : 1;
      }
      cur += ' ';
    } else if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === ch && sql[j + 1] === ch) j += 2;
        else if (sql[j] === ch) break;
        else j++;
      }
      cur += sql.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '$') {
      const m = /^\$([A-Za-z_][A-Za-z_0-9]*)?\$/.exec(sql.slice(i));
      if (m) {
        const close = sql.indexOf(m[0], i + m[0].length);
        const end = close < 0 ? sql.length : close + m[0].length;
        cur += sql.slice(i, end);
        i = end;
      } else {
        cur += ch;
        i++;
      }
    } else if (ch === ';') {
      out.push(cur);
      cur = '';
      i++;
    } else {
      cur += ch;
      i++;
    }
  }
  out.push(cur);
  // A trailing empty piece after the last semicolon is not a statement of its own ("SHOW RING;").
  const trimmed = out.map((s) => s.trim());
  if (trimmed.length > 1 && trimmed[trimmed.length - 1] === '') trimmed.pop();
  return trimmed;
}

/** Reads one statement (comments already removed). Throws PgError for anything but a console command. */
export function parseStatement(text: string): ParsedStatement {
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return { kind: 'empty' };
  const verb = words[0]!.toUpperCase();
  if (verb !== 'SHOW') {
    throw new PgError(SqlState.FeatureNotSupported, `the pgshard admin console does not run ${verb} statements`, {
      hint: `${HINT()} Connect to the application database to run SQL.`,
    });
  }
  if (words.length === 1) throw new PgError(SqlState.SyntaxError, 'syntax error at end of input: SHOW needs what to show', { hint: HINT() });
  const what = words[1]!.toUpperCase().replace(/^"(.*)"$/, '$1');
  if (words.length > 2) throw new PgError(SqlState.SyntaxError, `syntax error at or near "${words[2]}": SHOW ${what} takes no arguments`, { hint: HINT() });
  if (!(COMMAND_NAMES as readonly string[]).includes(what))
    throw new PgError(SqlState.FeatureNotSupported, `unrecognized admin console command "SHOW ${words[1]}"`, { hint: HINT() });
  return { kind: 'show', command: what as CommandName };
}

/** Every statement of a query string, or the PgError of the first one that is not a console command. */
export function parseQuery(sql: string): ParsedStatement[] {
  return splitStatements(sql).map(parseStatement);
}

// ---------------------------------------------------------------- views of the server's state

export interface ShardView {
  id: string;
  host: string;
  port: number;
  database: string;
  weight: number;
  /** null: not known (never probed). */
  up: boolean | null;
  lastError: string | null;
  share: number;
}

export interface PoolView {
  shard: string;
  size: number;
  total: number;
  idle: number;
  active: number;
  creating: number;
  waiting: number;
  checkouts: number;
  checkoutTimeouts: number;
}

export type ClientState = 'idle' | 'active' | 'idle in transaction' | 'idle in transaction (aborted)';

export interface ClientView {
  id: number;
  user: string;
  database: string;
  applicationName: string;
  /** "host:port" as the socket reported it (IPv6 addresses contain colons themselves). */
  remote: string;
  state: ClientState;
  connectedAt: Date;
  shards: readonly string[];
}

export interface RingView {
  vnodes: number;
  shards: readonly { id: string; weight: number; points: number; share: number }[];
}

const int = (n: number | null): string | null => (n === null ? null : String(Math.trunc(n)));
/** Shares are exact to 1e-9 of the keyspace; more digits would only show float noise. */
const share = (x: number): string => String(Math.round(x * 1e9) / 1e9);

/** A timestamptz in Postgres's ISO output form (DateStyle ISO, TimeZone UTC), which drivers parse. */
export function timestamptz(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '+00');
}

export function showShards(shards: readonly ShardView[]): ResultSet {
  return {
    columns: COMMANDS.SHARDS.columns,
    rows: shards.map((s) => [s.id, s.host, int(s.port), s.database, int(s.weight), s.up === null ? 'unknown' : s.up ? 'up' : 'down', share(s.share), s.lastError]),
  };
}

export function showPools(pools: readonly PoolView[]): ResultSet {
  return {
    columns: COMMANDS.POOLS.columns,
    rows: pools.map((p) => [p.shard, int(p.size), int(p.total), int(p.idle), int(p.active), int(p.creating), int(p.waiting), int(p.checkouts), int(p.checkoutTimeouts)]),
  };
}

/** Splits "host:port" at the last colon (IPv6 hosts keep theirs). */
export function splitRemote(remote: string): { address: string; port: number | null } {
  const i = remote.lastIndexOf(':');
  if (i < 0) return { address: remote, port: null };
  const port = Number(remote.slice(i + 1));
  return { address: remote.slice(0, i).replace(/^::ffff:/, ''), port: Number.isInteger(port) && remote.slice(i + 1) !== '' ? port : null };
}

export function showClients(clients: readonly ClientView[]): ResultSet {
  return {
    columns: COMMANDS.CLIENTS.columns,
    rows: [...clients]
      .sort((a, b) => a.id - b.id)
      .map((cl) => {
        const r = splitRemote(cl.remote);
        return [int(cl.id), cl.user, cl.database, cl.applicationName, r.address, int(r.port), cl.state, timestamptz(cl.connectedAt), cl.shards.length ? cl.shards.join(',') : null];
      }),
  };
}

export function showRing(ring: RingView): ResultSet {
  return {
    columns: COMMANDS.RING.columns,
    rows: ring.shards.map((s) => [s.id, int(s.weight), int(s.points), share(s.share), int(ring.vnodes)]),
  };
}

export function showRebalance(st: RebalanceStatus): ResultSet {
  return {
    columns: COMMANDS.REBALANCE.columns,
    rows: [[st.state, st.shard, int(st.rowsCopied), int(st.rowsTotal), int(st.lagBytes), st.startedAt ? timestamptz(st.startedAt) : null, int(st.lastCutoverPauseMs), st.detail]],
  };
}

export function showHelp(): ResultSet {
  return { columns: COMMANDS.HELP.columns, rows: COMMAND_NAMES.map((n) => [`SHOW ${n}`, COMMANDS[n].description]) };
}

export interface InstanceView {
  id: string;
  address: string;
  heartbeatAgeMs: number;
  alive: boolean;
  self: boolean;
}

export function showInstances(instances: readonly InstanceView[]): ResultSet {
  const b = (v: boolean) => (v ? 't' : 'f');
  return { columns: COMMANDS.INSTANCES.columns, rows: instances.map((i) => [i.id, i.address, String(i.heartbeatAgeMs), b(i.alive), b(i.self)]) };
}

export function showVersion(version: string): ResultSet {
  return { columns: COMMANDS.VERSION.columns, rows: [[`pgshard ${version}`]] };
}
