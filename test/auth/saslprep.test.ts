import t from 'tap';
import { saslprep, scramPreparePassword } from '../../src/auth/saslprep.js';

t.test('RFC 4013 section 3 examples, with Postgres leniency', async (t) => {
  t.equal(saslprep('I\u00ADX'), 'IX', 'soft hyphen mapped to nothing');
  t.equal(saslprep('user'), 'user');
  t.equal(saslprep('USER'), 'USER', 'case preserved');
  t.equal(saslprep('\u00AA'), 'a', 'NFKC');
  t.equal(saslprep('\u2168'), 'IX', 'NFKC');
  // RFC 4013 refuses U+0007, but Postgres passes any pure-ASCII password through untouched.
  t.equal(saslprep('\u0007'), '\u0007');
  t.equal(saslprep('\u0627\u0031'), null, 'bidi: RandALCat first but not last');
});

t.test('mapping', async (t) => {
  t.equal(saslprep('a\u00A0b\u3000c'), 'a b c', 'non-ASCII spaces become U+0020');
  t.equal(saslprep('a\u200Bb'), 'a b', 'U+200B is in C.1.2 and B.1; the space mapping wins, as in Postgres');
  t.equal(saslprep('\uFEFFpässwörd'), 'pässwörd');
  t.equal(saslprep('pa\u0308ss'), 'päss', 'composed by NFKC');
  t.equal(saslprep('\uFB01'), 'fi', 'ligature decomposed by NFKC');
});

t.test('refusals, and Postgres using the password as it is then', async (t) => {
  t.equal(saslprep('\u00AD'), null, 'empty after mapping');
  t.equal(saslprep('x\uE000'), null, 'private use (C.3)');
  t.equal(saslprep('é\u0001'), null, 'ASCII control in a non-ASCII password (C.2.1)');
  t.equal(saslprep('é\u200E'), null, 'LEFT-TO-RIGHT MARK (C.8)');
  t.equal(saslprep('\uFB01\u{1F600}'), null, 'unassigned in Unicode 3.2 (A.1)');
  t.equal(scramPreparePassword('\uFB01\u{1F600}'), '\uFB01\u{1F600}', 'so not NFKC-normalised');
  t.equal(saslprep('abcשלום'), null, 'bidi: RandALCat mixed with LCat');
  t.equal(saslprep('שלום'), 'שלום');
  t.equal(saslprep('\u0627\u0031\u0628'), '\u0627\u0031\u0628', 'RandALCat at both ends, a digit between');
  t.equal(saslprep('a\uD800b'), null, 'lone surrogate');
  t.equal(scramPreparePassword('\u2168'), 'IX');
});
