/**
 * A registry of the clusters this machine's pgshard processes started, so that a postmaster left
 * behind by a SIGKILLed owner (a crashed test, a killed demo) is stopped by the next one to start.
 * One JSON file per cluster: `os.tmpdir()/pgshard-clusters/<owner pid>-<port>.json`.
 */
import { chmodSync, mkdirSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isPostgresProcess, stopPostmaster } from './postmaster.js';
import { isSameProcess, procStat } from './processes.js';

export interface RegistryEntry {
  ownerPid: number;
  /** The owner's start time (clock ticks since boot), so that a recycled pid is not taken for the owner. */
  ownerStartTime?: number;
  postmasterPid: number;
  postmasterStartTime?: number;
  port: number;
  dataDir: string;
  startedAt: string;
}

export function registryDir(): string {
  return path.join(os.tmpdir(), 'pgshard-clusters');
}

function entryFile(ownerPid: number, port: number): string {
  return path.join(registryDir(), `${ownerPid}-${port}.json`);
}

/** Records a running cluster owned by this process (written atomically). */
export function registerCluster(e: { postmasterPid: number; port: number; dataDir: string }): RegistryEntry {
  const entry: RegistryEntry = {
    ownerPid: process.pid,
    ownerStartTime: procStat(process.pid)?.startTime,
    postmasterPid: e.postmasterPid,
    postmasterStartTime: procStat(e.postmasterPid)?.startTime,
    port: e.port,
    dataDir: e.dataDir,
    startedAt: new Date().toISOString(),
  };
  // shared by every user's pgshard processes, like /tmp itself
  if (mkdirSync(registryDir(), { recursive: true }) !== undefined) chmodSync(registryDir(), 0o1777);
  const file = entryFile(entry.ownerPid, entry.port);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(entry, null, 2) + '\n');
  renameSync(tmp, file);
  return entry;
}

/** Removes this process's entry for `port` (synchronous: also used from the exit handler). */
export function unregisterCluster(port: number, ownerPid = process.pid): void {
  try {
    unlinkSync(entryFile(ownerPid, port));
  } catch {
    // already gone
  }
}

export async function listRegistry(): Promise<{ file: string; entry: RegistryEntry | null }[]> {
  let names: string[];
  try {
    names = readdirSync(registryDir()).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  return Promise.all(
    names.map(async (n) => {
      const file = path.join(registryDir(), n);
      try {
        return { file, entry: JSON.parse(await readFile(file, 'utf8')) as RegistryEntry };
      } catch {
        return { file, entry: null };
      }
    }),
  );
}

/**
 * Stops every registered postmaster whose owner process is gone (fast shutdown, SIGKILL after 5 s)
 * and drops its entry. Resolves to the entries it stopped.
 */
export async function cleanStaleClusters(): Promise<RegistryEntry[]> {
  const stopped: RegistryEntry[] = [];
  await Promise.all(
    (await listRegistry()).map(async ({ file, entry }) => {
      if (!entry) {
        await unlink(file).catch(() => undefined); // unreadable; its writer renames atomically, so it is junk
        return;
      }
      if (isSameProcess(entry.ownerPid, entry.ownerStartTime)) return;
      if (isSameProcess(entry.postmasterPid, entry.postmasterStartTime) && isPostgresProcess(entry.postmasterPid)) {
        await stopPostmaster(entry.postmasterPid, 'fast', 5_000);
        stopped.push(entry);
      }
      await unlink(file).catch(() => undefined);
    }),
  );
  return stopped;
}
