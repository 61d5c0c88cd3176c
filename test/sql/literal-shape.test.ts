import t from 'tap';
import { literalShape } from '../../src/sql/literal-shape.js';

t.same(literalShape('SELECT abalance FROM pgbench_accounts WHERE aid = 4217;'), { shape: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;', literals: ['4217'] });
t.same(literalShape("update users set name = 'O''Brien' where id = 7"), { shape: 'update users set name = $1 where id = $2', literals: ["O'Brien", '7'] });
t.same(literalShape('select * from t1 where x = 1.5'), null, 'a number with a point stays; nothing else to replace');
t.same(literalShape("select date '2020-01-01', e'a', t2.c from t2 where id = 3"), { shape: "select date '2020-01-01', e'a', t2.c from t2 where id = $1", literals: ['3'] }, 'typed and E strings, identifiers with digits stay');
t.equal(literalShape('select $1'), null, 'dollar signs: left alone');
t.equal(literalShape("select 1 -- comment"), null, 'comments: left alone');
t.equal(literalShape("select 'a\\b'"), null, 'backslashes: left alone');
t.same(literalShape('select 1234567890123456789'), null, 'over 18 digits stays');
t.same(literalShape('select "weird 1" from x where id = 5'), { shape: 'select "weird 1" from x where id = $1', literals: ['5'] }, 'quoted identifiers are skipped');
t.same(literalShape('select 1e5, 2'), { shape: 'select 1e5, $1', literals: ['2'] }, 'exponents stay');
