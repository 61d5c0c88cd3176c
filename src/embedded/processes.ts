/**
 * Process facts from Linux's /proc, read synchronously so that they also work in a
 * `process.on('exit')` handler. A zombie counts as gone: it holds no port, no shared memory.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcStat {
  pid: number;
  /** R, S, D, Z, T, … */
  state: string;
  ppid: number;
  /** Clock ticks since boot at which the process started; with the pid, it names one process. */
  startTime: number;
}

/** Fields of /proc/<pid>/stat; the command name in parentheses may itself hold spaces or parentheses. */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: f[0]!, ppid: Number(f[1]), startTime: Number(f[19]) };
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const st = procStat(pid);
  if (st) return st.state !== 'Z' && st.state !== 'X';
  try {
    process.kill(pid, 0); // no /proc (not Linux): fall back to signal 0
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` is alive and, if `startTime` is given, is the very process that started then. */
export function isSameProcess(pid: number, startTime?: number): boolean {
  if (!isAlive(pid)) return false;
  if (startTime === undefined) return true;
  const st = procStat(pid);
  return st === null || st.startTime === startTime;
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Live direct children of `pid` (a postmaster's backends and auxiliary processes). */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return kids;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(Number(e));
    if (st && st.ppid === pid && st.state !== 'Z') kids.push(st.pid);
  }
  return kids;
}

/** Sends `signal`; false when the process does not exist. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs a process and its direct children (collected first: once the parent dies they are re-parented). */
export function killTree(pid: number): number[] {
  const all = [pid, ...childrenOf(pid)];
  for (const p of all) signalProcess(p, 'SIGKILL');
  return all;
}

/** Resolves true once none of `pids` is alive, false after `timeoutMs`. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    if (!pids.some(isAlive)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}
