// MD5 password authentication as Postgres does it (AuthenticationMD5Password, code 5):
// the stored secret is 'md5' + hex(md5(password + user)); the client answers a 4-byte
// salt with 'md5' + hex(md5(hex(md5(password + user)) + salt)).

import { createHash, timingSafeEqual } from 'node:crypto';
import { parseScramVerifier } from './scram.js';

const MD5_HASH = /^md5[0-9a-f]{32}$/;

/** Whether `s` is a stored MD5 secret as Postgres recognises one: 'md5' and 32 lowercase hex digits. */
export function isMd5Hash(s: string): boolean {
  return MD5_HASH.test(s);
}

function md5Hex(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** The stored form: 'md5' + hex(md5(password + user)), as pg_authid holds it. */
export function md5PasswordHash(user: string, password: string): string {
  return 'md5' + md5Hex(Buffer.from(password + user, 'utf8'));
}

/**
 * The PasswordMessage answer to AuthenticationMD5Password: 'md5' + hex(md5(hex + salt)),
 * where hex is the stored hash without its prefix. Give the hash, or the plain password.
 */
export function md5Response(storedOrPlain: { user: string; password?: string; md5Hash?: string }, salt: Buffer): string {
  let stored = storedOrPlain.md5Hash;
  if (stored === undefined) {
    if (storedOrPlain.password === undefined) throw new Error('md5 authentication needs a password or an md5 hash');
    stored = md5PasswordHash(storedOrPlain.user, storedOrPlain.password);
  } else if (!isMd5Hash(stored)) {
    throw new Error('not an md5 password hash');
  }
  if (salt.length !== 4) throw new RangeError('the md5 salt is 4 bytes');
  return 'md5' + md5Hex(Buffer.concat([Buffer.from(stored.slice(3), 'latin1'), salt]));
}

/**
 * The stored MD5 hash a user can be checked against, or null. `password` is read as
 * Postgres reads pg_authid: an md5 hash, a SCRAM verifier (which cannot do md5: null),
 * or a plain password.
 */
function storedMd5(user: { name: string; password?: string | null; md5Hash?: string | null }): string | null {
  if (user.md5Hash) return isMd5Hash(user.md5Hash) ? user.md5Hash : null;
  const p = user.password;
  if (p === undefined || p === null || p === '') return null;
  if (isMd5Hash(p)) return p;
  if (parseScramVerifier(p)) return null;
  return md5PasswordHash(user.name, p);
}

/**
 * Checks a client's PasswordMessage against a user, in constant time. Takes a config
 * user ({name, password}) or UserCredentials ({name, md5Hash}). False when the user has
 * no md5-usable secret (no password, or only a SCRAM verifier: Postgres then runs SCRAM
 * instead, see UserCredentials.md5Hash), and when the answer is wrong.
 */
export function md5Check(
  user: { name: string; password?: string | null; md5Hash?: string | null },
  salt: Buffer,
  clientResponse: string | Buffer,
): boolean {
  const stored = storedMd5(user);
  if (stored === null) return false;
  let got = typeof clientResponse === 'string' ? Buffer.from(clientResponse, 'utf8') : clientResponse;
  if (got.length > 0 && got[got.length - 1] === 0) got = got.subarray(0, -1); // the String's terminator, if left on
  const expected = Buffer.from(md5Response({ user: user.name, md5Hash: stored }, salt), 'latin1');
  return got.length === expected.length && timingSafeEqual(got, expected);
}
