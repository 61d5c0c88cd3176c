import t from 'tap';
import { loadCredentials, userCredentials } from '../../src/auth/credentials.js';
import { md5Check, md5PasswordHash, md5Response } from '../../src/auth/md5.js';
import {
  formatScramVerifier,
  ScramClientSession,
  ScramServerSession,
  scramVerifierFromPassword,
  type ScramVerifier,
} from '../../src/auth/scram.js';

function scramLogin(password: string, verifier: ScramVerifier | null) {
  const client = new ScramClientSession(password);
  const server = new ScramServerSession(verifier);
  const first = server.handleClientFirst(client.clientFirst());
  if (!first.ok) return false;
  return server.handleClientFinal(client.handleServerFirst(Buffer.from(first.serverFirst))).ok;
}

t.test('plain password: SCRAM verifier and md5 hash derived once', async (t) => {
  const c = userCredentials({ name: 'app', password: 'secret' }, { iterations: 32 });
  t.equal(c.name, 'app');
  t.equal(c.plain, 'secret');
  t.equal(c.md5Hash, md5PasswordHash('app', 'secret'));
  t.equal(c.scram?.iterations, 32);
  t.ok(scramLogin('secret', c.scram));
  t.notOk(scramLogin('Secret', c.scram));
  t.ok(md5Check(c, Buffer.from('salt'), md5Response({ user: 'app', password: 'secret' }, Buffer.from('salt'))));
  t.equal(userCredentials({ name: 'app', password: 'secret' }).scram?.iterations, 4096);
});

t.test('SCRAM verifier: SCRAM only', async (t) => {
  const s = formatScramVerifier(scramVerifierFromPassword('secret', { iterations: 32 }));
  const c = userCredentials({ name: 'app', password: s });
  t.same({ md5Hash: c.md5Hash, plain: c.plain }, { md5Hash: null, plain: null });
  t.equal(formatScramVerifier(c.scram!), s);
  t.ok(scramLogin('secret', c.scram));
  t.throws(() => userCredentials({ name: 'app', password: 'SCRAM-SHA-256$4096:bad' }), /user "app".*malformed/);
});

t.test('md5 hash: md5 only', async (t) => {
  const h = md5PasswordHash('app', 'secret');
  t.same(userCredentials({ name: 'app', password: h }), { name: 'app', scram: null, md5Hash: h, plain: null });
});

t.test('no password or an empty one: nothing', async (t) => {
  const none = { name: 'app', scram: null, md5Hash: null, plain: null };
  t.same(userCredentials({ name: 'app' }), none);
  t.same(userCredentials({ name: 'app', password: '' }), none);
});

t.test('loadCredentials keeps unchanged entries on reload', async (t) => {
  const first = loadCredentials(
    [
      { name: 'a', password: 'pa' },
      { name: 'b', password: 'pb' },
      { name: 'c', password: md5PasswordHash('c', 'pc') },
    ],
    { iterations: 16 },
  );
  t.equal(first.size, 3);
  const second = loadCredentials(
    [
      { name: 'a', password: 'pa' },
      { name: 'b', password: 'changed' },
      { name: 'c', password: md5PasswordHash('c', 'pc') },
    ],
    { iterations: 16, previous: first },
  );
  t.equal(second.get('a'), first.get('a'), 'same object, verifier not recomputed');
  t.not(second.get('b'), first.get('b'));
  t.equal(second.get('b')?.plain, 'changed');
  const third = loadCredentials([{ name: 'a', password: 'pa' }], { iterations: 32, previous: second });
  t.not(third.get('a'), second.get('a'), 'recomputed when the iteration count changes');
  t.equal(third.get('a')?.scram?.iterations, 32);
});
