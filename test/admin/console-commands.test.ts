// The console's pure parts: splitting and reading query strings, and turning views into rows.
import t from 'tap';
import { parseQuery, showClients, showRebalance, showShards, splitRemote, splitStatements } from '../../src/admin/console-commands.js';
import { PgError } from '../../src/protocol/errors.js';
import { IDLE_REBALANCE } from '../../src/admin/rebalance-status.js';

t.test('splitStatements keeps quoted semicolons and drops comments', async (t) => {
  t.same(splitStatements('SHOW RING; SHOW POOLS;'), ['SHOW RING', 'SHOW POOLS']);
  t.same(splitStatements("select ';' ; show ring"), ["select ';'", 'show ring']);
  t.same(splitStatements('show /* a; b */ ring -- c;\n; show x'), ['show   ring', 'show x']);
  t.same(splitStatements('select $q$;$q$; select "a;b"'), ['select $q$;$q$', 'select "a;b"']);
  t.same(splitStatements('/* nested /* ; */ still; */ SHOW HELP'), ['SHOW HELP']);
  t.same(splitStatements(''), ['']);
  t.same(splitStatements(';'), ['']);
});

t.test('parseQuery: commands, case and blanks; everything else is a PgError with a SQLSTATE', async (t) => {
  t.same(parseQuery('show shards'), [{ kind: 'show', command: 'SHARDS' }]);
  t.same(parseQuery('  SHOW\n\tClients ; '), [{ kind: 'show', command: 'CLIENTS' }]);
  t.same(parseQuery('-- nothing'), [{ kind: 'empty' }]);
  const code = (sql: string) => {
    try {
      parseQuery(sql);
      return null;
    } catch (e) {
      return e instanceof PgError ? e.code : 'not a PgError';
    }
  };
  t.equal(code('SELECT 1'), '0A000');
  t.equal(code('SHOW'), '42601');
  t.equal(code('SHOW RING NOW'), '42601');
  t.equal(code('SHOW search_path'), '0A000');
  t.equal(code('SHOW RING; DROP TABLE x'), '0A000', 'one bad statement refuses the whole string');
});

t.test('rows', async (t) => {
  t.same(splitRemote('::ffff:127.0.0.1:5555'), { address: '127.0.0.1', port: 5555 });
  t.same(splitRemote('::1:40000'), { address: '::1', port: 40000 });
  t.same(splitRemote('undefined:undefined'), { address: 'undefined', port: null });
  const shards = showShards([{ id: 'a', host: 'h', port: 5432, database: 'd', weight: 2, up: false, lastError: 'refused', share: 2 / 3 }]);
  t.same(shards.rows, [['a', 'h', '5432', 'd', '2', 'down', '0.666666667', 'refused']]);
  t.equal(shards.columns.length, shards.rows[0]!.length);
  const at = new Date('2026-03-04T05:06:07.089Z');
  const clients = showClients([
    { id: 9, user: 'u', database: 'app', applicationName: '', remote: '10.0.0.1:1234', state: 'idle', connectedAt: at, shards: [] },
    { id: 2, user: 'u', database: 'app', applicationName: 'x', remote: '10.0.0.2:99', state: 'idle in transaction', connectedAt: at, shards: ['s0', 's2'] },
  ]);
  t.same(clients.rows, [
    ['2', 'u', 'app', 'x', '10.0.0.2', '99', 'idle in transaction', '2026-03-04 05:06:07.089+00', 's0,s2'],
    ['9', 'u', 'app', '', '10.0.0.1', '1234', 'idle', '2026-03-04 05:06:07.089+00', null],
  ]);
  t.same(showRebalance(IDLE_REBALANCE).rows, [['idle', null, null, null, null, null, null, null]]);
});
