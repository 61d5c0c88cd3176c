/** Routing hints from a leading comment. */
import t from 'tap';
import { leadingHint, parseHint } from '../../src/sql/hint.js';

t.same(leadingHint('/* pgshard: shard=s1 */ SELECT 1'), { shard: 's1' });
t.same(leadingHint('/* pgshard: key=42 */ SELECT 1'), { key: '42' });
t.same(leadingHint('/*pgshard:shard=s1,key=7*/SELECT 1'), { shard: 's1', key: '7' });
t.same(leadingHint("/* PgShard: shard='a b' key=\"x\"\"y\" */"), { shard: 'a b', key: 'x"y' });
t.same(leadingHint('\n  -- a line comment\n  /* other */ /* pgshard: shard=s2 */ SELECT 1'), { shard: 's2' }, 'after other leading comments');
t.same(leadingHint('/* outer /* nested */ still outer */ /* pgshard: shard=s3 */ SELECT 1'), { shard: 's3' }, 'nested comments are skipped whole');
t.equal(leadingHint('SELECT 1 /* pgshard: shard=s1 */'), null, 'only leading comments count');
t.equal(leadingHint("SELECT '/* pgshard: shard=s1 */'"), null, 'not inside a string');
t.equal(leadingHint('/* pgshard: */ SELECT 1'), null, 'empty hint');
t.equal(leadingHint('/* pgshard: nothing=1 */ SELECT 1'), null, 'unknown keys only');
t.equal(leadingHint('/* pgshard: shard=s1'), null, 'unterminated comment');
t.equal(leadingHint('-- pgshard: shard=s1\nSELECT 1'), null, 'line comments are not hints');
t.equal(leadingHint(''), null);
t.equal(parseHint('not a hint'), null);
t.same(parseHint(' pgshard: key= shard=s1'), { key: '', shard: 's1' });
