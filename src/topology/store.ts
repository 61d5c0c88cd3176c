/**
 * Where the topology lives. One instance: a JSON file, replaced atomically (write a temporary file, fsync,
 * rename, fsync the directory) so that a crash leaves either the old or the new topology, never half of one.
 * Several instances: a Postgres database (pg-store.ts), with the same interface.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { TopologyState } from './types.js';

export class TopologyFileError extends Error {}

export interface TopologyStore {
  /** Where it is, for logs and the admin API. */
  readonly where: string;
  /** The stored topology, or null when nothing was stored yet. */
  load(): Promise<TopologyState | null>;
  /** Stores `next` when the stored revision is still `expectedRev` (or nothing is stored and it is 0); false when another instance wrote first. */
  save(next: TopologyState, expectedRev: number): Promise<boolean>;
  /** Calls `fn` with the stored state whenever another instance may have changed it. */
  watch(fn: (state: TopologyState) => void): void;
  close(): Promise<void>;
}

/** The file store: one instance owns it, so compare-and-set only guards against this process's own mistakes. */
export class FileTopologyStore implements TopologyStore {
  constructor(readonly file: string) {}

  get where(): string {
    return this.file;
  }

  async load(): Promise<TopologyState | null> {
    return this.loadSync();
  }

  async save(next: TopologyState, expectedRev: number): Promise<boolean> {
    const cur = this.loadSync();
    if ((cur?.rev ?? 0) !== expectedRev) return false;
    this.saveSync(next);
    return true;
  }

  watch(): void {}

  async close(): Promise<void> {}

  /** The stored topology, or null when the file does not exist yet. */
  loadSync(): TopologyState | null {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new TopologyFileError(`cannot read the topology file ${this.file}: ${(e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new TopologyFileError(`the topology file ${this.file} is not valid JSON (${(e as Error).message}): restore it from a backup, or remove it to start again from the configuration's shards`);
    }
    const s = doc as Partial<TopologyState>;
    if (typeof s.version !== 'number' || !Array.isArray(s.shards) || typeof s.vnodes !== 'number')
      throw new TopologyFileError(`the topology file ${this.file} lacks version, vnodes or shards: restore it from a backup, or remove it to start again from the configuration's shards`);
    return { version: s.version, rev: s.rev ?? s.version, vnodes: s.vnodes, shards: s.shards, rebalance: s.rebalance ?? null };
  }

  saveSync(state: TopologyState): void {
    const dir = path.dirname(this.file);
    mkdirSync(dir, { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    // Passwords of shards are in here (as in the configuration): readable by the owner only.
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(persistable(state), null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

/**
 * What is written: a password that came from an environment variable or a file stays there (the store
 * keeps where to find it, and it is read again at start), so the file never holds such a secret.
 */
export function persistable(state: TopologyState): TopologyState {
  return {
    ...state,
    shards: state.shards.map((s) => {
      if (s.password_env === undefined && s.password_file === undefined) return s;
      const { password: _secret, ...rest } = s;
      return rest;
    }),
  };
}
