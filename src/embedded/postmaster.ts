/**
 * The postmaster as seen from outside: its `postmaster.pid` lock file and its shutdown signals
 * (SIGTERM smart, SIGINT fast, SIGQUIT immediate; the same signals `pg_ctl stop -m …` sends).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { cmdline, isAlive, killTree, signalProcess, waitGone } from './processes.js';

export interface PostmasterPidFile {
  pid: number;
  dataDir: string;
  port: number;
  /** Line 8: `starting`, `ready`, `stopping` or `standby` (Postgres 10 and later). */
  status: string;
}

/** Parses `<dataDir>/postmaster.pid`; null when it is absent or not yet complete. */
export async function readPostmasterPid(dataDir: string): Promise<PostmasterPidFile | null> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, dataDir: lines[1] ?? '', port: Number(lines[3]), status: (lines[7] ?? '').trim() };
}

/** True when `pid` is alive and looks like a Postgres server process (guards against pid reuse). */
export function isPostgresProcess(pid: number): boolean {
  return isAlive(pid) && /postgres|postmaster/.test(cmdline(pid));
}

export type ShutdownMode = 'smart' | 'fast' | 'immediate';
const SHUTDOWN_SIGNAL: Record<ShutdownMode, NodeJS.Signals> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };

/**
 * Stops a postmaster like `pg_ctl stop -m <mode>` (signal, then wait for it to exit), and SIGKILLs it
 * and its children when it has not exited after `timeoutMs`. Resolves true on a clean shutdown.
 */
export async function stopPostmaster(pid: number, mode: ShutdownMode = 'fast', timeoutMs = 10_000): Promise<boolean> {
  if (!isAlive(pid)) return true;
  signalProcess(pid, SHUTDOWN_SIGNAL[mode]);
  if (await waitGone([pid], timeoutMs)) return true;
  const all = killTree(pid);
  await waitGone(all, 5_000);
  return false;
}

/** Stops the postmaster named by `<dataDir>/postmaster.pid`, if one is still running there. */
export async function stopRunningPostmaster(dataDir: string, timeoutMs = 10_000): Promise<boolean> {
  const pf = await readPostmasterPid(dataDir);
  if (!pf || !isPostgresProcess(pf.pid)) return false;
  await stopPostmaster(pf.pid, 'fast', timeoutMs);
  return true;
}
