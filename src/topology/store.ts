/**
 * The topology store for one instance: a JSON file, replaced atomically (write a temporary file, fsync,
 * rename, fsync the directory) so that a crash leaves either the old or the new topology, never half of one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { TopologyState } from './types.js';

export class TopologyFileError extends Error {}

export class FileTopologyStore {
  constructor(readonly file: string) {}

  /** The stored topology, or null when the file does not exist yet. */
  load(): TopologyState | null {
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
    return { version: s.version, vnodes: s.vnodes, shards: s.shards, rebalance: s.rebalance ?? null };
  }

  save(state: TopologyState): void {
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
function persistable(state: TopologyState): TopologyState {
  return {
    ...state,
    shards: state.shards.map((s) => {
      if (s.password_env === undefined && s.password_file === undefined) return s;
      const { password: _secret, ...rest } = s;
      return rest;
    }),
  };
}
