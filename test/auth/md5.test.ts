import t from 'tap';
import { createHash } from 'node:crypto';
import { isMd5Hash, md5Check, md5PasswordHash, md5Response } from '../../src/auth/md5.js';
import { formatScramVerifier, scramVerifierFromPassword } from '../../src/auth/scram.js';

const md5 = (s: string | Buffer) => createHash('md5').update(s).digest('hex');
const salt = Buffer.from([0x01, 0x02, 0x03, 0xff]);

t.test('md5PasswordHash follows the documented formula', async (t) => {
  t.equal(md5PasswordHash('app', 'app'), 'md5' + md5('appapp'));
  t.equal(md5PasswordHash('app', 'app'), 'md5fe63fea7be31b0200b496d08bc6b517d');
  // PQencryptPassword("1234", "postgres"), as libpq computes it.
  t.equal(md5PasswordHash('postgres', '1234'), 'md524bb002702969490e41e26e1a454036c');
  t.equal(md5PasswordHash('ü', 'pä'), 'md5' + md5(Buffer.from('päü', 'utf8')), 'UTF-8 bytes');
  t.ok(isMd5Hash(md5PasswordHash('a', 'b')));
  t.notOk(isMd5Hash('md5' + 'A'.repeat(32)), 'lowercase hex only, as Postgres');
  t.notOk(isMd5Hash('md5abc'));
});

t.test('md5Response: md5(hex without prefix + salt)', async (t) => {
  const inner = md5('appapp');
  const expected = 'md5' + md5(Buffer.concat([Buffer.from(inner), salt]));
  t.equal(md5Response({ user: 'app', password: 'app' }, salt), expected);
  t.equal(md5Response({ user: 'app', md5Hash: 'md5' + inner }, salt), expected);
  t.throws(() => md5Response({ user: 'app' }, salt));
  t.throws(() => md5Response({ user: 'app', md5Hash: 'nope' }, salt));
  t.throws(() => md5Response({ user: 'app', password: 'app' }, Buffer.alloc(3)));
});

t.test('md5Check', async (t) => {
  const answer = md5Response({ user: 'app', password: 'app' }, salt);
  t.ok(md5Check({ name: 'app', password: 'app' }, salt, answer), 'config user, plain password');
  t.ok(md5Check({ name: 'app', password: md5PasswordHash('app', 'app') }, salt, answer), 'config user, md5 hash');
  t.ok(md5Check({ name: 'app', md5Hash: md5PasswordHash('app', 'app') }, salt, answer), 'credentials');
  t.ok(md5Check({ name: 'app', password: 'app' }, salt, Buffer.from(answer + '\0')), 'with the String terminator');
  t.notOk(md5Check({ name: 'app', password: 'other' }, salt, answer), 'wrong password');
  t.notOk(md5Check({ name: 'app', password: 'app' }, Buffer.from([9, 9, 9, 9]), answer), 'other salt');
  t.notOk(md5Check({ name: 'other', password: 'app' }, salt, answer), 'the user name is part of the hash');
  t.notOk(md5Check({ name: 'app', password: 'app' }, salt, answer.slice(0, -1)), 'short answer');
  t.notOk(md5Check({ name: 'app', password: 'app' }, salt, ''), 'empty answer');
  t.notOk(md5Check({ name: 'app' }, salt, answer), 'no password');
  t.notOk(md5Check({ name: 'app', password: '' }, salt, md5Response({ user: 'app', password: '' }, salt)), 'empty password');
  const scram = formatScramVerifier(scramVerifierFromPassword('app', { iterations: 16 }));
  t.notOk(md5Check({ name: 'app', password: scram }, salt, answer), 'a SCRAM verifier cannot do md5');
  t.notOk(md5Check({ name: 'app', md5Hash: null, password: null }, salt, answer), 'credentials with only SCRAM');
});
