import t from 'tap';
import { literalShape } from '../../src/sql/literal-shape.js';

const same = (shape: string, literals: string[]) => ({ shape, literals, key: shape });

t.same(literalShape('SELECT abalance FROM pgbench_accounts WHERE aid = 4217;'), same('SELECT abalance FROM pgbench_accounts WHERE aid = $1;', ['4217']));
t.same(literalShape("update users set name = 'O''Brien' where id = 7"), same('update users set name = $1 where id = $2', ["O'Brien", '7']));
t.same(literalShape("select date '2020-01-01', e'a', t2.c from t2 where id = 3"), same("select date '2020-01-01', e'a', t2.c from t2 where id = $1", ['3']), 'typed and E strings, identifiers with digits stay');
t.equal(literalShape('select $1'), null, 'dollar signs: left alone');
t.equal(literalShape("select 1 -- comment"), null, 'comments: left alone');
t.equal(literalShape("select 'a\\b'"), null, 'backslashes: left alone');
t.same(literalShape('select 1234567890123456789'), null, 'an integer of over 18 digits stays');
t.same(literalShape('select "weird 1" from x where id = 5'), same('select "weird 1" from x where id = $1', ['5']), 'quoted identifiers are skipped');
t.same(literalShape('select 1.x, t1.5, 2'), same('select 1.x, t1.5, $1', ['2']), 'a number glued to a name stays');

// Decimals are replaced, and the key says where they were: `id = 5.5` must not share the analysis of `id = 5`.
t.same(literalShape('update t set price = 12.50, qty = 3 where id = 7'), {
  shape: 'update t set price = $1, qty = $2 where id = $3',
  literals: ['12.50', '3', '7'],
  key: 'update t set price = $1, qty = $2 where id = $3\u00000',
});
t.same(literalShape('select 1e5, 2.5e-3, 5., 2'), {
  shape: 'select $1, $2, $3, $4',
  literals: ['1e5', '2.5e-3', '5.', '2'],
  key: 'select $1, $2, $3, $4\u00000,1,2',
});
t.not(literalShape('select * from t where id = 5.5')!.key, literalShape('select * from t where id = 5')!.key, 'a decimal and an integer in the same place: different keys');
t.equal(literalShape('select * from t where id = 5.5')!.key, literalShape('select * from t where id = 6.25')!.key, 'decimals in the same places: one key');
