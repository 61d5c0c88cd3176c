/**
 * Postgres refuses to run as root. When we are root (Docker, CI), initdb and postgres run as an
 * unprivileged OS user: `PGSHARD_PG_USER` if set, else `postgres` if it exists, else a system user
 * `pgshard` that we create once.
 */
import { execFile } from 'node:child_process';
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function lookup(name: string): Promise<OsUser | null> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', name]).then((r) => Number(r.stdout.trim())),
      execFileAsync('id', ['-g', name]).then((r) => Number(r.stdout.trim())),
    ]);
    return Number.isInteger(uid) && Number.isInteger(gid) ? { name, uid, gid } : null;
  } catch {
    return null;
  }
}

async function createSystemUser(name: string): Promise<OsUser> {
  try {
    await execFileAsync('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', name]);
  } catch (err) {
    // another process may have created it in the meantime
    const existing = await lookup(name);
    if (existing) return existing;
    throw new Error(`running as root, and could not create the OS user "${name}" for Postgres: ${(err as Error).message}`);
  }
  const u = await lookup(name);
  if (!u) throw new Error(`created the OS user "${name}" but cannot look it up`);
  return u;
}

let serverUserPromise: Promise<OsUser | null> | undefined;

/** The OS user to run initdb/postgres as; null when we are not root (run them as ourselves). */
export function serverUser(): Promise<OsUser | null> {
  serverUserPromise ??= (async () => {
    if (!isRoot()) return null;
    const wanted = process.env.PGSHARD_PG_USER;
    if (wanted) {
      const u = await lookup(wanted);
      if (!u) throw new Error(`PGSHARD_PG_USER=${wanted}: no such OS user`);
      return u;
    }
    return (await lookup('postgres')) ?? (await createSystemUser('pgshard'));
  })();
  serverUserPromise.catch(() => (serverUserPromise = undefined));
  return serverUserPromise;
}

/**
 * Makes every ancestor of `dir` searchable by `user` (adds o+x where it is missing), so that a data
 * directory under, say, a 0700 home directory can be reached by the Postgres OS user.
 */
export async function ensureTraversable(dir: string, user: OsUser): Promise<void> {
  let cur = path.dirname(path.resolve(dir));
  for (;;) {
    const st = await stat(cur);
    const ok =
      st.uid === user.uid ? (st.mode & 0o100) !== 0 : st.gid === user.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
    if (!ok) await chmod(cur, (st.mode & 0o7777) | 0o001);
    const parent = path.dirname(cur);
    if (parent === cur) return;
    cur = parent;
  }
}
