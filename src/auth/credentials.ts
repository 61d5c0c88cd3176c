// Client credentials, derived once when the config is loaded: a plain password in the
// config gets its SCRAM verifier (4096 PBKDF2 iterations) computed here, not at every login.

import { isMd5Hash, md5PasswordHash } from './md5.js';
import {
  parseScramVerifier,
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_SHA_256,
  scramVerifierFromPassword,
  type ScramVerifier,
} from './scram.js';

export interface UserCredentials {
  name: string;
  /** For SCRAM-SHA-256 logins. Null: the user has no password, or only an md5 hash (the exchange then runs as a mock and fails). */
  scram: ScramVerifier | null;
  /** 'md5' + 32 hex. Null: no password, or only a SCRAM verifier — as Postgres, offer SCRAM instead of md5 then. */
  md5Hash: string | null;
  /** The plain password, when the config gives one (for cleartext password auth). */
  plain: string | null;
}

export interface CredentialOptions {
  /** PBKDF2 iterations for verifiers made from plain passwords. Default 4096, as Postgres. */
  iterations?: number;
}

/**
 * Reads a config user's `password`: a SCRAM verifier (`SCRAM-SHA-256$…`, as in pg_authid),
 * an md5 hash (`md5` + 32 lowercase hex, made with this user's name) or a plain password.
 * No password, or an empty one (which Postgres refuses to store), gives no credentials.
 * Throws on a malformed SCRAM verifier rather than take it for a plain password.
 */
export function userCredentials(user: { name: string; password?: string }, opts: CredentialOptions = {}): UserCredentials {
  const { name, password } = user;
  if (password === undefined || password === '') return { name, scram: null, md5Hash: null, plain: null };
  if (password.startsWith(`${SCRAM_SHA_256}$`)) {
    const scram = parseScramVerifier(password);
    if (!scram) throw new Error(`user "${name}": password looks like a SCRAM-SHA-256 verifier but is malformed`);
    return { name, scram, md5Hash: null, plain: null };
  }
  if (isMd5Hash(password)) return { name, scram: null, md5Hash: password, plain: null };
  return {
    name,
    scram: scramVerifierFromPassword(password, { iterations: opts.iterations }),
    md5Hash: md5PasswordHash(name, password),
    plain: password,
  };
}

/**
 * Credentials for every configured user, by name. On a reload, pass the previous map:
 * a user whose password did not change keeps its entry (and its verifier) without
 * paying PBKDF2 again.
 */
export function loadCredentials(
  users: readonly { name: string; password?: string }[],
  opts: CredentialOptions & { previous?: ReadonlyMap<string, UserCredentials> } = {},
): Map<string, UserCredentials> {
  const out = new Map<string, UserCredentials>();
  for (const user of users) {
    const prev = opts.previous?.get(user.name);
    const reusable =
      prev !== undefined &&
      prev.plain !== null &&
      prev.plain === user.password &&
      prev.scram?.iterations === (opts.iterations ?? SCRAM_DEFAULT_ITERATIONS);
    out.set(user.name, reusable ? prev : userCredentials(user, opts));
  }
  return out;
}
