/**
 * initdb takes about a second; copying an initdb'd directory takes under 100 ms. One template per
 * (Postgres version, binary source, locale, OS user) is kept under
 * `os.tmpdir()/pgshard-initdb-cache/<version>/`; concurrent creators race to an atomic rename.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, chmodSync } from 'node:fs';
import { chown, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { binaryEnv, type ServerBinaries } from './binaries.js';
import { ensureTraversable, type OsUser } from './os-user.js';

const execFileAsync = promisify(execFile);

/** initdb's locale: `--no-locale` (C) with UTF8 encoding, the same sort order on every machine. */
const LOCALE = 'C';

export function initdbCacheRoot(): string {
  return path.join(os.tmpdir(), 'pgshard-initdb-cache');
}

function templatePath(b: ServerBinaries, user: OsUser | null): string {
  const who = user ? user.name : `uid${process.getuid?.() ?? 0}`;
  return path.join(initdbCacheRoot(), b.version, `${b.source}-${LOCALE}-${who}`);
}

/** The environment for Postgres programs: ours minus libpq's PG* variables, English messages. */
export function serverEnv(b: ServerBinaries): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.LC_ALL = 'C';
  delete env.LANG;
  return binaryEnv(b, env);
}

/** Runs a program to completion as `user` (or as ourselves); rejects with its output on failure. */
export function runAs(
  user: OsUser | null,
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${path.basename(file)} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr || stdout}`));
    });
  });
}

/** initdb into `dataDir` (which must not exist or be empty); `postgres` is the trusted bootstrap superuser. */
export async function initdb(b: ServerBinaries, user: OsUser | null, dataDir: string): Promise<void> {
  await runAs(
    user,
    path.join(b.bin, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'],
    serverEnv(b),
  );
}

function ensureSharedDir(dir: string): void {
  if (mkdirSync(dir, { recursive: true }) !== undefined) chmodSync(dir, 0o1777);
}

async function isUsable(tpl: string): Promise<boolean> {
  const data = path.join(tpl, 'data');
  if (!existsSync(path.join(data, 'global', 'pg_control')) || !existsSync(path.join(data, 'base'))) return false;
  try {
    return (await readFile(path.join(data, 'PG_VERSION'), 'utf8')).trim().length > 0;
  } catch {
    return false;
  }
}

const building = new Map<string, Promise<string>>();

/** The initdb'd template data directory for these binaries and user, created on first use. */
export function templateDataDir(b: ServerBinaries, user: OsUser | null): Promise<string> {
  const tpl = templatePath(b, user);
  let p = building.get(tpl);
  if (!p) {
    p = (async () => {
      if (await isUsable(tpl)) return path.join(tpl, 'data');
      ensureSharedDir(initdbCacheRoot());
      ensureSharedDir(path.dirname(tpl));
      if (existsSync(tpl)) await invalidateTemplate(b, user); // a broken leftover
      const tmp = await mkdtemp(path.join(path.dirname(tpl), '.building-'));
      try {
        chmodSync(tmp, 0o755);
        if (user) {
          await chown(tmp, user.uid, user.gid);
          await ensureTraversable(path.join(tmp, 'data'), user);
        }
        await initdb(b, user, path.join(tmp, 'data'));
        try {
          await rename(tmp, tpl);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        }
        return path.join(tpl, 'data');
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    })();
    building.set(tpl, p);
    p.then(
      () => building.delete(tpl),
      () => building.delete(tpl),
    );
  }
  return p;
}

/** Drops a template that produced a cluster that would not start (e.g. files pruned by tmp cleaners). */
export async function invalidateTemplate(b: ServerBinaries, user: OsUser | null): Promise<void> {
  const tpl = templatePath(b, user);
  const aside = `${tpl}.broken-${process.pid}-${Date.now()}`;
  try {
    await rename(tpl, aside); // atomically out of the way of concurrent readers and builders
  } catch {
    return;
  }
  await rm(aside, { recursive: true, force: true });
}

/** Copies the template to `dataDir` (which must not exist), keeping owners and modes. */
export async function copyTemplate(template: string, dataDir: string): Promise<void> {
  await execFileAsync('cp', ['-a', '--', template, dataDir]);
}
