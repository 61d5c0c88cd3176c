// SCRAM-SHA-256 (RFC 5802, RFC 7677) as Postgres speaks it: the verifier format of
// pg_authid, the server side of the exchange (clients logging in to pgshard) and the
// client side (pgshard logging in to a backend). Message level only: the session code
// carries the bytes in AuthenticationSASL / SASLContinue / SASLFinal and 'p' messages.
//
// Wire strings are handled as latin1 "byte strings" (one char per byte) so that the
// AuthMessage we sign is byte for byte what the peer sent, whatever its encoding.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { scramPreparePassword } from './saslprep.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_DEFAULT_ITERATIONS = 4096;
export const SCRAM_DEFAULT_SALT_LENGTH = 16;
/** The most iterations ScramClientSession accepts from a server unless told otherwise. */
export const SCRAM_DEFAULT_MAX_ITERATIONS = 1_000_000;

const KEY_LENGTH = 32; // SHA-256 output
const RAW_NONCE_LENGTH = 18; // as Postgres: 18 random bytes, base64 → 24 printable chars

export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

// ---------------------------------------------------------------------------
// Primitives

function hmac(key: Buffer, data: Buffer | string): Buffer {
  return createHmac('sha256', key).update(typeof data === 'string' ? Buffer.from(data, 'latin1') : data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Hi() of RFC 5802: PBKDF2-HMAC-SHA-256 of the SASLprep'd password (Postgres leniency applies). */
export function scramSaltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(scramPreparePassword(password), 'utf8'), salt, iterations, KEY_LENGTH, 'sha256');
}

interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

function keysFromSaltedPassword(salted: Buffer): ScramKeys {
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (Buffer.from(…, 'base64') accepts anything). */
function decodeBase64(s: string): Buffer | null {
  return BASE64.test(s) ? Buffer.from(s, 'base64') : null;
}

/** printable = %x21-2B / %x2D-7E (RFC 5802): the nonce alphabet. */
function isPrintable(s: string): boolean {
  return /^[\x21-\x2b\x2d-\x7e]+$/.test(s);
}

function newNonce(): string {
  return randomBytes(RAW_NONCE_LENGTH).toString('base64');
}

// ---------------------------------------------------------------------------
// Verifiers (pg_authid.rolpassword)

export function scramVerifierFromPassword(password: string, opts: { salt?: Buffer; iterations?: number } = {}): ScramVerifier {
  const salt = opts.salt ?? randomBytes(SCRAM_DEFAULT_SALT_LENGTH);
  const iterations = opts.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError('SCRAM iteration count must be a positive integer');
  if (salt.length === 0) throw new RangeError('SCRAM salt must not be empty');
  const { storedKey, serverKey } = keysFromSaltedPassword(scramSaltedPassword(password, salt, iterations));
  return { iterations, salt: Buffer.from(salt), storedKey, serverKey };
}

const VERIFIER = /^SCRAM-SHA-256\$([1-9][0-9]*):([^$:]+)\$([^$:]+):([^$:]+)$/;

/** Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`; null if it is not one. */
export function parseScramVerifier(s: string): ScramVerifier | null {
  const m = VERIFIER.exec(s);
  if (!m) return null;
  const iterations = Number(m[1]);
  const salt = decodeBase64(m[2]!);
  const storedKey = decodeBase64(m[3]!);
  const serverKey = decodeBase64(m[4]!);
  if (!Number.isSafeInteger(iterations) || iterations > 0x7fffffff) return null;
  if (!salt || salt.length === 0) return null;
  if (storedKey?.length !== KEY_LENGTH || serverKey?.length !== KEY_LENGTH) return null;
  return { iterations, salt, storedKey, serverKey };
}

export function formatScramVerifier(v: ScramVerifier): string {
  return (
    `${SCRAM_SHA_256}$${v.iterations}:${v.salt.toString('base64')}` +
    `$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`
  );
}

// ---------------------------------------------------------------------------
// Attribute lists: `a=value,b=value,…`

interface Attr {
  name: string;
  value: string;
  /** Offset of the attribute name in the message. */
  start: number;
}

/** Splits an attribute list; null if some part is not `<letter>=<value>`. */
function parseAttrs(s: string, offset = 0): Attr[] | null {
  const attrs: Attr[] = [];
  let start = 0;
  for (const part of s.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return null;
    attrs.push({ name: part[0]!, value: part.slice(2), start: offset + start });
    start += part.length + 1;
  }
  return attrs;
}

// ---------------------------------------------------------------------------
// SASLInitialResponse

/**
 * Splits the body of a SASLInitialResponse 'p' message (after the 5-byte header):
 * String mechanism, Int32 length of the data (-1: none), the data. Null if malformed.
 * "No data" (-1) comes back as an empty Buffer, which handleClientFirst refuses.
 */
export function parseSASLInitialResponse(body: Buffer): { mechanism: string; data: Buffer } | null {
  const nul = body.indexOf(0);
  if (nul < 0 || body.length < nul + 5) return null;
  const mechanism = body.toString('utf8', 0, nul);
  const len = body.readInt32BE(nul + 1);
  const data = body.subarray(nul + 5);
  if (len === -1) return data.length === 0 ? { mechanism, data: Buffer.alloc(0) } : null;
  if (len !== data.length) return null;
  return { mechanism, data };
}

// ---------------------------------------------------------------------------
// Server side

/** 08P01: the client broke the SCRAM protocol. 28P01: wrong password (or unknown user). */
export interface ScramFailure {
  ok: false;
  message: string;
  sqlstate: '08P01' | '28P01';
}

export const SCRAM_AUTH_FAILED = 'password authentication failed';

function malformed(detail: string): ScramFailure {
  return { ok: false, message: `malformed SCRAM message: ${detail}`, sqlstate: '08P01' };
}

/** Per-process secret behind mock salts, so an unknown user's salt is stable but unguessable. */
const MOCK_SECRET = randomBytes(32);

function mockVerifier(user: string, iterations: number): ScramVerifier {
  const salt = createHmac('sha256', MOCK_SECRET).update(user, 'utf8').digest().subarray(0, SCRAM_DEFAULT_SALT_LENGTH);
  return { iterations, salt, storedKey: randomBytes(KEY_LENGTH), serverKey: randomBytes(KEY_LENGTH) };
}

export interface ScramServerOptions {
  /** The user name from the startup message: seeds the mock salt when the verifier is null, so it is the same on every attempt. */
  user?: string;
  /** Iteration count a mock exchange announces; make it match real users'. Default 4096. */
  mockIterations?: number;
  /** The server's part of the nonce. Tests only: the default is random. */
  nonce?: string;
}

type ServerState =
  | { step: 'client-first' }
  | { step: 'client-final'; gs2Header: string; nonce: string; authPrefix: string }
  | { step: 'done' };

/**
 * The server side of one SCRAM-SHA-256 exchange. Pass null for an unknown user (or one
 * with no SCRAM secret): the exchange then runs against a mock verifier and fails at
 * client-final with the same answer as a wrong password, as Postgres does.
 */
export class ScramServerSession {
  readonly #verifier: ScramVerifier;
  readonly #doomed: boolean;
  readonly #serverNonce: string;
  #state: ServerState = { step: 'client-first' };
  #authenticated = false;

  constructor(verifier: ScramVerifier | null, opts: ScramServerOptions = {}) {
    this.#doomed = verifier === null;
    this.#verifier = verifier ?? mockVerifier(opts.user ?? '', opts.mockIterations ?? SCRAM_DEFAULT_ITERATIONS);
    this.#serverNonce = opts.nonce ?? newNonce();
    if (!isPrintable(this.#serverNonce)) throw new RangeError('SCRAM nonce must be printable ASCII without commas');
  }

  /** True once a client-final message has been verified. */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** `msg`: the data of the SASLInitialResponse. On success, send serverFirst in AuthenticationSASLContinue. */
  handleClientFirst(msg: Buffer): { ok: true; serverFirst: string } | ScramFailure {
    if (this.#state.step !== 'client-first') return this.#fail(malformed('unexpected client-first-message'));
    const s = msg.toString('latin1');
    if (s.length === 0 || s.includes('\0')) return this.#fail(malformed('empty or NUL in client-first-message'));

    // gs2-header = gs2-cbind-flag "," [authzid] ","
    const flag = s[0];
    if (flag === 'p') {
      return this.#fail(
        malformed('the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data'),
      );
    }
    if ((flag !== 'n' && flag !== 'y') || s[1] !== ',') return this.#fail(malformed('unexpected channel-binding flag in client-first-message'));
    if (s[2] === 'a') return this.#fail(malformed('client uses authorization identity, but it is not supported'));
    if (s[2] !== ',') return this.#fail(malformed('unexpected attribute in client-first-message'));
    const gs2Header = s.slice(0, 3);
    const bare = s.slice(3);

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    const attrs = parseAttrs(bare);
    if (!attrs) return this.#fail(malformed('attribute expected in client-first-message'));
    if (attrs[0]!.name === 'm') return this.#fail(malformed('client requires an unsupported SCRAM extension'));
    // The user name is ignored, as Postgres does: the startup message named the user (psql sends "n=", pg "n=*").
    if (attrs[0]!.name !== 'n') return this.#fail(malformed('user name expected in client-first-message'));
    const nonceAttr = attrs[1];
    if (nonceAttr?.name !== 'r') return this.#fail(malformed('nonce expected in client-first-message'));
    if (!isPrintable(nonceAttr.value)) return this.#fail(malformed('invalid client nonce'));
    // Further attributes are extensions, which we do not use.

    const nonce = nonceAttr.value + this.#serverNonce;
    const v = this.#verifier;
    const serverFirst = `r=${nonce},s=${v.salt.toString('base64')},i=${v.iterations}`;
    this.#state = { step: 'client-final', gs2Header, nonce, authPrefix: `${bare},${serverFirst},` };
    return { ok: true, serverFirst };
  }

  /** `msg`: the data of the SASLResponse. On success, send serverFinal in AuthenticationSASLFinal, then AuthenticationOk. */
  handleClientFinal(msg: Buffer): { ok: true; serverFinal: string } | ScramFailure {
    const state = this.#state;
    if (state.step !== 'client-final') return this.#fail(malformed('unexpected client-final-message'));
    const s = msg.toString('latin1');
    if (s.length === 0 || s.includes('\0')) return this.#fail(malformed('empty or NUL in client-final-message'));

    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const attrs = parseAttrs(s);
    if (!attrs) return this.#fail(malformed('attribute expected in client-final-message'));
    const [cb, nonce] = attrs;
    if (cb?.name !== 'c') return this.#fail(malformed('channel binding expected in client-final-message'));
    if (decodeBase64(cb.value)?.toString('latin1') !== state.gs2Header) {
      return this.#fail(malformed('unexpected SCRAM channel-binding attribute in client-final-message'));
    }
    if (nonce?.name !== 'r') return this.#fail(malformed('nonce expected in client-final-message'));
    if (nonce.value !== state.nonce) return this.#fail(malformed('nonce does not match'));
    const proofAttr = attrs[attrs.length - 1]!;
    if (attrs.length < 3 || proofAttr.name !== 'p' || attrs.slice(2, -1).some((a) => a.name === 'p')) {
      return this.#fail(malformed('the proof must come last in client-final-message'));
    }
    const proof = decodeBase64(proofAttr.value);
    if (proof?.length !== KEY_LENGTH) return this.#fail(malformed('malformed proof in client-final-message'));

    const authMessage = state.authPrefix + s.slice(0, proofAttr.start - 1);
    const v = this.#verifier;
    // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client knew the password if H(ClientKey) = StoredKey.
    const clientKey = xor(proof, hmac(v.storedKey, authMessage));
    const proofOk = timingSafeEqual(sha256(clientKey), v.storedKey);
    if (!proofOk || this.#doomed) return this.#fail({ ok: false, message: SCRAM_AUTH_FAILED, sqlstate: '28P01' });

    this.#state = { step: 'done' };
    this.#authenticated = true;
    return { ok: true, serverFinal: `v=${hmac(v.serverKey, authMessage).toString('base64')}` };
  }

  #fail(f: ScramFailure): ScramFailure {
    this.#state = { step: 'done' };
    return f;
  }
}

// ---------------------------------------------------------------------------
// Client side

export interface ScramClientOptions {
  /** The user name put in client-first (escaped as saslname). Default "*", as node-postgres; Postgres ignores it. */
  user?: string;
  /** Refuse a server asking for more PBKDF2 iterations than this. Default SCRAM_DEFAULT_MAX_ITERATIONS. */
  maxIterations?: number;
  /** The client nonce. Tests only: the default is random. */
  nonce?: string;
}

/**
 * Salted passwords by (password, salt, iterations): a backend role's salt and iteration
 * count do not change between connections, so a pool pays PBKDF2 once per role, not
 * once per connection. Keyed by a hash, holding what the password already gives.
 */
const saltedCache = new Map<string, ScramKeys>();
const SALTED_CACHE_MAX = 64;

function cachedKeys(password: string, salt: Buffer, iterations: number): ScramKeys {
  const key = createHash('sha256')
    .update(`${iterations}:${salt.toString('base64')}:`)
    .update(password, 'utf8')
    .digest('base64');
  let keys = saltedCache.get(key);
  if (keys) {
    saltedCache.delete(key);
  } else {
    keys = keysFromSaltedPassword(scramSaltedPassword(password, salt, iterations));
    if (saltedCache.size >= SALTED_CACHE_MAX) saltedCache.delete(saltedCache.keys().next().value!);
  }
  saltedCache.set(key, keys);
  return keys;
}

function saslname(user: string): string {
  return Buffer.from(user.replace(/=/g, '=3D').replace(/,/g, '=2C'), 'utf8').toString('latin1');
}

/** The client side of one SCRAM-SHA-256 exchange, without channel binding. Methods throw on any failure. */
export class ScramClientSession {
  readonly #password: string;
  readonly #clientNonce: string;
  readonly #clientFirstBare: string;
  readonly #maxIterations: number;
  #step: 'start' | 'server-first' | 'server-final' | 'done' = 'start';
  #serverSignature: Buffer | null = null;

  constructor(password: string, opts: ScramClientOptions = {}) {
    this.#password = password;
    this.#clientNonce = opts.nonce ?? newNonce();
    if (!isPrintable(this.#clientNonce)) throw new RangeError('SCRAM nonce must be printable ASCII without commas');
    this.#clientFirstBare = `n=${saslname(opts.user ?? '*')},r=${this.#clientNonce}`;
    this.#maxIterations = opts.maxIterations ?? SCRAM_DEFAULT_MAX_ITERATIONS;
  }

  /** The data of the SASLInitialResponse: `n,,n=*,r=<nonce>`. */
  clientFirst(): Buffer {
    if (this.#step !== 'start') throw new Error('SCRAM: client-first-message already sent');
    this.#step = 'server-first';
    return Buffer.from(`n,,${this.#clientFirstBare}`, 'latin1');
  }

  /** Takes the data of AuthenticationSASLContinue; returns the data of the SASLResponse. */
  handleServerFirst(data: Buffer): Buffer {
    if (this.#step !== 'server-first') throw new Error('SCRAM: unexpected server-first-message');
    this.#step = 'done';
    const serverFirst = data.toString('latin1');
    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
    const attrs = parseAttrs(serverFirst);
    if (!attrs) throw new Error('SCRAM: malformed server-first-message');
    if (attrs[0]!.name === 'm') throw new Error('SCRAM: server requires an unsupported SCRAM extension');
    const [r, s, i] = attrs;
    if (r?.name !== 'r' || s?.name !== 's' || i?.name !== 'i') throw new Error('SCRAM: malformed server-first-message');
    if (!isPrintable(r.value) || !r.value.startsWith(this.#clientNonce) || r.value.length === this.#clientNonce.length) {
      throw new Error('SCRAM: invalid nonce in server-first-message');
    }
    const salt = decodeBase64(s.value);
    if (!salt || salt.length === 0) throw new Error('SCRAM: invalid salt in server-first-message');
    if (!/^[1-9][0-9]*$/.test(i.value)) throw new Error('SCRAM: invalid iteration count in server-first-message');
    const iterations = Number(i.value);
    if (iterations > this.#maxIterations) {
      throw new Error(`SCRAM: server asks for ${i.value} iterations, more than the limit of ${this.#maxIterations}`);
    }

    const { clientKey, storedKey, serverKey } = cachedKeys(this.#password, salt, iterations);
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${r.value}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(storedKey, authMessage));
    this.#serverSignature = hmac(serverKey, authMessage);
    this.#step = 'server-final';
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'latin1');
  }

  /** Takes the data of AuthenticationSASLFinal; throws unless it proves the server knew the verifier. */
  verifyServerFinal(data: Buffer): void {
    if (this.#step !== 'server-final' || !this.#serverSignature) throw new Error('SCRAM: unexpected server-final-message');
    this.#step = 'done';
    const attrs = parseAttrs(data.toString('latin1'));
    const first = attrs?.[0];
    if (first?.name === 'e') throw new Error(`SCRAM: the server refused the exchange: ${first.value}`);
    const signature = first?.name === 'v' ? decodeBase64(first.value) : null;
    if (!signature) throw new Error('SCRAM: malformed server-final-message');
    if (signature.length !== KEY_LENGTH || !timingSafeEqual(signature, this.#serverSignature)) {
      throw new Error('SCRAM: invalid server signature');
    }
  }
}
