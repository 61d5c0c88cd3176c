// Cross-checks against real implementations, in memory (no sockets): node-postgres's
// SCRAM client and md5 helper against our server side, and our client against a
// verifier string built as Postgres builds pg_authid entries.
import t from 'tap';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { md5Check, md5Response } from '../../src/auth/md5.js';
import { parseScramVerifier, ScramClientSession, ScramServerSession, scramVerifierFromPassword, type ScramVerifier } from '../../src/auth/scram.js';

// pg's internal helpers are CommonJS without types; require() them and type what we use.
const require = createRequire(import.meta.url);
interface PgSaslSession {
  mechanism: string;
  response: string;
}
const pgSasl = require('pg/lib/crypto/sasl.js') as {
  startSession(mechanisms: string[], stream?: unknown): PgSaslSession;
  continueSession(session: PgSaslSession, password: string, serverData: string, stream?: unknown): Promise<void>;
  finalizeSession(session: PgSaslSession, serverData: string): void;
};
const pgUtils = require('pg/lib/crypto/utils.js') as {
  postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string>;
};

/** node-postgres's client against our server: returns the server's verdict on client-final. */
async function pgClientLogin(password: string, verifier: ScramVerifier | null) {
  const session = pgSasl.startSession(['SCRAM-SHA-256']);
  t.equal(session.mechanism, 'SCRAM-SHA-256');
  const server = new ScramServerSession(verifier, { user: 'app' });
  const first = server.handleClientFirst(Buffer.from(session.response, 'utf8'));
  if (!first.ok) return first;
  await pgSasl.continueSession(session, password, first.serverFirst);
  const final = server.handleClientFinal(Buffer.from(session.response, 'utf8'));
  if (final.ok) pgSasl.finalizeSession(session, final.serverFinal); // throws if our signature is wrong
  return final;
}

/**
 * A pg_authid SCRAM entry built straight from RFC 5802 / Postgres's scram_build_secret, not from
 * our code. SASLprep here is only its mapping and NFKC steps: enough for the passwords below.
 */
function postgresVerifierString(password: string, salt: Buffer, iterations: number): string {
  const prepped = password
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
    .replace(/[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g, '')
    .normalize('NFKC');
  const salted = pbkdf2Sync(Buffer.from(prepped, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

const passwords = ['app', 'correct horse battery staple', 'pässwörd', 'パスワード', '\u2168', 'I\u00ADX', randomBytes(30).toString('base64')];

t.test("node-postgres's SCRAM client authenticates against ScramServerSession", async (t) => {
  for (const password of passwords) {
    const verifier = scramVerifierFromPassword(password, { iterations: 4096 });
    t.match(await pgClientLogin(password, verifier), { ok: true }, JSON.stringify(password));
  }
  const verifier = scramVerifierFromPassword('right');
  t.match(await pgClientLogin('wrong', verifier), { ok: false, sqlstate: '28P01' }, 'wrong password');
  t.match(await pgClientLogin('anything', null), { ok: false, sqlstate: '28P01' }, 'unknown user');
});

t.test('ScramClientSession against a Postgres-format verifier string', async (t) => {
  for (const password of passwords) {
    const s = postgresVerifierString(password, randomBytes(16), 4096);
    const verifier = parseScramVerifier(s);
    t.ok(verifier, s);
    t.match(await pgClientLogin(password, verifier), { ok: true }, 'node-postgres agrees');

    const client = new ScramClientSession(password);
    const server = new ScramServerSession(verifier);
    const first = server.handleClientFirst(client.clientFirst());
    t.ok(first.ok);
    if (!first.ok) continue;
    const final = server.handleClientFinal(client.handleServerFirst(Buffer.from(first.serverFirst)));
    t.ok(final.ok, JSON.stringify(password));
    if (final.ok) t.doesNotThrow(() => client.verifyServerFinal(Buffer.from(final.serverFinal)));
  }
});

t.test("md5 agrees with node-postgres's postgresMd5PasswordHash", async (t) => {
  for (const [user, password] of [
    ['app', 'app'],
    ['postgres', '1234'],
    ['ünïcode', 'pässwörd'],
  ] as const) {
    const salt = randomBytes(4);
    const theirs = await pgUtils.postgresMd5PasswordHash(user, password, salt);
    t.equal(md5Response({ user, password }, salt), theirs);
    t.ok(md5Check({ name: user, password }, salt, theirs));
  }
});
