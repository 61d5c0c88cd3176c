/**
 * Secrets that the configuration file names instead of holding: `password_env: NAME` / `password_file:
 * path` for users and shards, `token_env` / `token_file` for the admin API. They are resolved once, when
 * the configuration is validated, into `password` / `token`, so nothing else needs to know where a secret
 * came from. A file's content is taken without its trailing newline (as Docker and Kubernetes secrets
 * are usually written). Relative paths are relative to the working directory.
 */
import { readFileSync } from 'node:fs';
import type { Config } from './schema.js';

export interface SecretSource {
  env: NodeJS.ProcessEnv;
  readFile(path: string): string;
}

export const processSecrets: SecretSource = { env: process.env, readFile: (p) => readFileSync(p, 'utf8') };

/** Fills `password`/`token` from their _env/_file sources; problems name the key path, never a value. */
export function resolveSecrets(cfg: Config, src: SecretSource = processSecrets): { config: Config; problems: string[] } {
  const problems: string[] = [];
  const resolve = (path: string, kind: string, envName: string | undefined, file: string | undefined): string | undefined => {
    if (envName !== undefined) {
      const v = src.env[envName];
      if (v === undefined || v === '') problems.push(`${path}.${kind}_env: the environment variable ${envName} is not set (or empty)`);
      return v;
    }
    if (file !== undefined) {
      try {
        return src.readFile(file).replace(/\r?\n$/, '');
      } catch (e) {
        problems.push(`${path}.${kind}_file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    return undefined;
  };
  const users = cfg.users.map((u, i) => {
    const password = resolve(`users[${i}]`, 'password', u.password_env, u.password_file);
    return password === undefined ? u : { ...u, password };
  });
  const shards = cfg.shards.map((s, i) => {
    const password = resolve(`shards[${i}]`, 'password', s.password_env, s.password_file);
    return password === undefined ? s : { ...s, password };
  });
  let metadata = cfg.metadata;
  if (metadata) {
    const password = resolve('metadata', 'password', metadata.password_env, metadata.password_file);
    if (password !== undefined) metadata = { ...metadata, password };
  }
  let admin = cfg.admin;
  if (admin) {
    const token = resolve('admin', 'token', admin.token_env, admin.token_file);
    if (token !== undefined) admin = { ...admin, token };
  }
  return { config: { ...cfg, users, shards, ...(admin ? { admin } : {}), ...(metadata ? { metadata } : {}) }, problems };
}

/** A shard's password from its _env/_file source now (undefined: none, or not readable). */
export function shardPassword(s: { password?: string | undefined; password_env?: string | undefined; password_file?: string | undefined }, src: SecretSource = processSecrets): string | undefined {
  if (s.password_env !== undefined) return src.env[s.password_env] || undefined;
  if (s.password_file !== undefined) {
    try {
      return src.readFile(s.password_file).replace(/\r?\n$/, '');
    } catch {
      return undefined;
    }
  }
  return s.password;
}
