import t from 'tap';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import {
  formatScramVerifier,
  parseSASLInitialResponse,
  parseScramVerifier,
  ScramClientSession,
  ScramServerSession,
  scramVerifierFromPassword,
  type ScramVerifier,
} from '../../src/auth/scram.js';

// RFC 7677 section 3: user "user", password "pencil".
const RFC = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const b = (s: string) => Buffer.from(s, 'latin1');

function exchange(password: string, verifier: ScramVerifier | null, clientOpts = {}) {
  const client = new ScramClientSession(password, clientOpts);
  const server = new ScramServerSession(verifier, { user: 'u' });
  const first = server.handleClientFirst(client.clientFirst());
  if (!first.ok) return { stage: 'first', result: first, client, server } as const;
  const final = server.handleClientFinal(client.handleServerFirst(b(first.serverFirst)));
  return { stage: 'final', result: final, client, server } as const;
}

t.test('RFC 7677 test vector: client side', async (t) => {
  const client = new ScramClientSession(RFC.password, { user: 'user', nonce: RFC.clientNonce });
  t.equal(client.clientFirst().toString(), RFC.clientFirst);
  t.equal(client.handleServerFirst(b(RFC.serverFirst)).toString(), RFC.clientFinal);
  t.doesNotThrow(() => client.verifyServerFinal(b(RFC.serverFinal)));
});

t.test('RFC 7677 test vector: server side', async (t) => {
  const verifier = scramVerifierFromPassword(RFC.password, { salt: RFC.salt, iterations: 4096 });
  const server = new ScramServerSession(verifier, { nonce: RFC.serverNonce });
  t.same(server.handleClientFirst(b(RFC.clientFirst)), { ok: true, serverFirst: RFC.serverFirst });
  t.notOk(server.authenticated);
  t.same(server.handleClientFinal(b(RFC.clientFinal)), { ok: true, serverFinal: RFC.serverFinal });
  t.ok(server.authenticated);
});

t.test('RFC 7677 verifier, computed from the definitions with node:crypto directly', async (t) => {
  const salted = pbkdf2Sync('pencil', RFC.salt, 4096, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const s = `SCRAM-SHA-256$4096:${RFC.salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
  t.equal(
    s,
    'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=',
  );
  t.equal(formatScramVerifier(scramVerifierFromPassword('pencil', { salt: RFC.salt })), s);
  const parsed = parseScramVerifier(s);
  t.ok(parsed);
  t.equal(formatScramVerifier(parsed!), s);
});

t.test('parseScramVerifier refuses what is not a verifier', async (t) => {
  const good = formatScramVerifier(scramVerifierFromPassword('x', { iterations: 1 }));
  t.ok(parseScramVerifier(good));
  for (const bad of [
    '',
    'pencil',
    'md5e8a48653851e28c69d0506508fb27fc5',
    good.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
    good.replace('$1:', '$0:'),
    good.replace('$1:', '$x:'),
    good + 'A',
    good.slice(0, -2),
    good.replace(/:[^:]+$/, ':' + Buffer.alloc(31).toString('base64')),
    good.replace(/\$1:[^$]+\$/, '$1:!!!!$'),
    good + ':extra',
  ]) {
    t.equal(parseScramVerifier(bad), null, JSON.stringify(bad));
  }
});

t.test('scramVerifierFromPassword defaults: 4096 iterations, 16-byte random salt', async (t) => {
  const a = scramVerifierFromPassword('secret');
  const c = scramVerifierFromPassword('secret');
  t.equal(a.iterations, 4096);
  t.equal(a.salt.length, 16);
  t.equal(a.storedKey.length, 32);
  t.equal(a.serverKey.length, 32);
  t.not(a.salt.toString('hex'), c.salt.toString('hex'));
});

t.test('round trips with random passwords, unicode included', async (t) => {
  const passwords = [
    'a',
    'correct horse battery staple',
    ',=,=n,,p=',
    'pässwörd',
    'パスワード',
    '密码🔑',
    'I\u00ADX', // soft hyphen: mapped to nothing by SASLprep
    '\u2168', // ROMAN NUMERAL NINE: NFKC gives "IX"
    'שלום', // right-to-left
    'abcשלום', // bad bidi: SASLprep refuses it, used as it is
    randomBytes(24).toString('base64'),
    Array.from(randomBytes(12), (x) => String.fromCodePoint(0xa1 + x * 3)).join(''),
  ];
  for (const password of passwords) {
    const verifier = scramVerifierFromPassword(password, { iterations: 64 });
    const r = exchange(password, verifier);
    t.equal(r.stage, 'final', password);
    t.ok(r.result.ok, `password ${JSON.stringify(password)} authenticates`);
    const result = r.result;
    if (result.ok && 'serverFinal' in result) t.doesNotThrow(() => r.client.verifyServerFinal(b(result.serverFinal)));
  }
  // SASLprep makes equivalent spellings equal.
  t.ok(exchange('IX', scramVerifierFromPassword('\u2168', { iterations: 64 })).result.ok);
  t.ok(exchange('I\u00A0X', scramVerifierFromPassword('I X', { iterations: 64 })).result.ok);
});

t.test('wrong password fails with 28P01, and the exchange is over', async (t) => {
  const r = exchange('wrong', scramVerifierFromPassword('right', { iterations: 64 }));
  t.equal(r.stage, 'final');
  t.same(r.result, { ok: false, message: 'password authentication failed', sqlstate: '28P01' });
  t.notOk(r.server.authenticated);
  t.equal(r.server.handleClientFinal(b('c=biws,r=x,p=x')).ok, false);
});

t.test('unknown user: mock exchange, fails at client-final like a wrong password, without throwing', async (t) => {
  const r = exchange('anything', null);
  t.equal(r.stage, 'final', 'server-first is sent as for a real user');
  t.same(r.result, { ok: false, message: 'password authentication failed', sqlstate: '28P01' });
  // The mock salt is stable for a given user name and looks like a real one.
  const salts = [1, 2].map(() => {
    const s = new ScramServerSession(null, { user: 'ghost' });
    const first = s.handleClientFirst(b('n,,n=*,r=abc'));
    t.ok(first.ok);
    return first.ok ? /,s=([^,]+),i=4096$/.exec(first.serverFirst)![1] : '';
  });
  t.equal(salts[0], salts[1]);
  t.equal(Buffer.from(salts[0]!, 'base64').length, 16);
  const other = new ScramServerSession(null, { user: 'phantom' }).handleClientFirst(b('n,,n=*,r=abc'));
  t.ok(other.ok && !other.serverFirst.includes(salts[0]!));
});

t.test('tampered messages fail', async (t) => {
  const verifier = scramVerifierFromPassword('pw', { iterations: 64 });
  const run = (tamper: (clientFinal: string, serverFirst: string) => string) => {
    const client = new ScramClientSession('pw');
    const server = new ScramServerSession(verifier);
    const first = server.handleClientFirst(client.clientFirst());
    if (!first.ok) throw new Error('unexpected');
    const final = client.handleServerFirst(b(first.serverFirst)).toString('latin1');
    return server.handleClientFinal(b(tamper(final, first.serverFirst)));
  };
  t.ok(run((f) => f).ok);
  const nonceTampered = run((f) => f.replace(/,r=([^,]+)/, (_m, n: string) => `,r=${n.slice(0, -1)}${n.endsWith('A') ? 'B' : 'A'}`));
  t.match(nonceTampered, { ok: false, sqlstate: '08P01', message: /nonce does not match/ });
  t.match(run((f) => f.replace('c=biws', 'c=eSws')), { ok: false, sqlstate: '08P01', message: /channel-binding/ });
  t.match(run((f) => f.replace(/p=.*$/, 'p=' + Buffer.alloc(32).toString('base64'))), { ok: false, sqlstate: '28P01' });
  t.match(run((f) => f.replace(/p=.*$/, 'p=AAAA')), { ok: false, sqlstate: '08P01', message: /proof/ });
  t.match(run((f) => f.replace(',p=', ',x=1,p=')), { ok: false, sqlstate: '28P01' }, 'an extension is parsed, and covered by the proof');
  t.match(run((f) => f + ',x=1'), { ok: false, message: /proof must come last/ });
  t.match(run((f) => f.replace(/,p=/, ',p=AA,p=')), { ok: false, message: /proof must come last/ });

  // The client refuses a server nonce that does not extend its own.
  const client = new ScramClientSession('pw', { nonce: 'abc' });
  client.clientFirst();
  t.throws(() => client.handleServerFirst(b('r=xyz123,s=QUFB,i=4096')), /nonce/);
  const client2 = new ScramClientSession('pw', { nonce: 'abc' });
  client2.clientFirst();
  t.throws(() => client2.handleServerFirst(b('r=abc,s=QUFB,i=4096')), /nonce/);
});

t.test('client-first parsing', async (t) => {
  const v = scramVerifierFromPassword('pw', { iterations: 64 });
  const first = (s: string) => new ScramServerSession(v).handleClientFirst(b(s));
  t.ok(first('n,,n=*,r=abc').ok);
  t.ok(first('n,,n=,r=abc').ok, 'libpq sends an empty user name');
  t.ok(first('y,,n=someone,r=abc').ok, 'y: client could bind but thinks we cannot');
  t.ok(first('n,,n=*,r=abc,x=ext').ok);
  t.match(first('p=tls-server-end-point,,n=*,r=abc'), { ok: false, sqlstate: '08P01', message: /channel binding/ });
  t.match(first('n,a=admin,n=*,r=abc'), { ok: false, message: /authorization identity/ });
  t.match(first('n,,m=ext,n=*,r=abc'), { ok: false, message: /extension/ });
  t.match(first('x,,n=*,r=abc'), { ok: false, sqlstate: '08P01' });
  t.match(first('n,,r=abc'), { ok: false, sqlstate: '08P01' });
  t.match(first('n,,n=*'), { ok: false, sqlstate: '08P01' });
  t.match(first('n,,n=*,r='), { ok: false, sqlstate: '08P01' });
  t.match(first('n,,n=*,r=a\0b'), { ok: false, sqlstate: '08P01' });
  t.match(first(''), { ok: false, sqlstate: '08P01' });

  // y,, must be answered with c=eSws.
  const client = new ScramClientSession('pw');
  const server = new ScramServerSession(v);
  const cf = client.clientFirst().toString('latin1').replace(/^n,,/, 'y,,');
  const sf = server.handleClientFirst(b(cf));
  t.ok(sf.ok);
  if (!sf.ok) return;
  const final = client.handleServerFirst(b(sf.serverFirst)).toString('latin1');
  t.match(server.handleClientFinal(b(final)), { ok: false, message: /channel-binding/ });

  // Out of order.
  const s2 = new ScramServerSession(v);
  t.match(s2.handleClientFinal(b('c=biws,r=abc,p=AAAA')), { ok: false, sqlstate: '08P01' });
});

t.test('client refuses a bad server-final, honours maxIterations', async (t) => {
  const v = scramVerifierFromPassword('pw', { iterations: 64 });
  const setup = () => {
    const client = new ScramClientSession('pw');
    const server = new ScramServerSession(v);
    const first = server.handleClientFirst(client.clientFirst());
    if (!first.ok) throw new Error('unexpected');
    const final = server.handleClientFinal(client.handleServerFirst(b(first.serverFirst)));
    if (!final.ok) throw new Error('unexpected');
    return { client, serverFinal: final.serverFinal };
  };
  const a = setup();
  t.throws(() => a.client.verifyServerFinal(b('v=' + Buffer.alloc(32).toString('base64'))), /invalid server signature/);
  t.throws(() => setup().client.verifyServerFinal(b('e=invalid-proof')), /invalid-proof/);
  t.throws(() => setup().client.verifyServerFinal(b('v=!!')), /malformed/);
  const ok = setup();
  ok.client.verifyServerFinal(b(ok.serverFinal));
  t.throws(() => ok.client.verifyServerFinal(b(ok.serverFinal)), /unexpected/);

  const greedy = new ScramClientSession('pw', { maxIterations: 10_000 });
  const nonce = /r=(.*)$/.exec(greedy.clientFirst().toString())![1];
  t.throws(() => greedy.handleServerFirst(b(`r=${nonce}xyz,s=QUFB,i=10001`)), /iterations/);
});

t.test('parseSASLInitialResponse', async (t) => {
  const data = Buffer.from('n,,n=*,r=abc');
  const len = Buffer.alloc(4);
  len.writeInt32BE(data.length);
  const body = Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, data]);
  const parsed = parseSASLInitialResponse(body);
  t.equal(parsed?.mechanism, 'SCRAM-SHA-256');
  t.equal(parsed?.data.toString(), 'n,,n=*,r=abc');
  t.equal(parseSASLInitialResponse(body.subarray(0, -1)), null, 'length mismatch');
  t.equal(parseSASLInitialResponse(Buffer.from('SCRAM-SHA-256')), null, 'no terminator');
  t.equal(parseSASLInitialResponse(Buffer.from('SCRAM-SHA-256\0\0\0')), null, 'short length');
  const none = parseSASLInitialResponse(Buffer.from('SCRAM-SHA-256\0\xff\xff\xff\xff', 'latin1'));
  t.equal(none?.data.length, 0, '-1: no data');
});
