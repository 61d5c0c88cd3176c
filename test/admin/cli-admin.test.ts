import t from 'tap';
import { adminTarget, formatProgress, formatShards } from '../../src/admin/cli-admin.js';
import { validateConfig } from '../../src/config/load.js';

const cfg = (admin?: object) =>
  validateConfig({ users: [{ name: 'a', password: 'a' }], shards: [{ id: 's0', host: 'h', database: 'd', user: 'u' }], ...(admin ? { admin } : {}) });

t.test('where the admin API is', async (t) => {
  t.same(adminTarget({}, cfg({ host: '127.0.0.1', port: 9187, token: 'tk' })), { url: 'http://127.0.0.1:9187', token: 'tk' });
  t.same(adminTarget({}, cfg({ host: '0.0.0.0', port: 9, token: 'tk' })), { url: 'http://127.0.0.1:9', token: 'tk' }, 'a wildcard listen address is reached on loopback');
  t.same(adminTarget({ admin: 'http://x:1/', token: 'flag' }, cfg({ host: 'h', port: 2, token: 'file' })), { url: 'http://x:1', token: 'flag' }, 'flags win');
  t.throws(() => adminTarget({}, cfg()), /no admin API to talk to/);
  t.throws(() => adminTarget({}, null), /pass --admin http:\/\/HOST:PORT, or --config FILE/);
});

t.test('progress lines', async (t) => {
  t.equal(formatProgress({ state: 'none' }), 'no rebalance has run');
  t.equal(
    formatProgress({ state: 'copying', kind: 'add', shard: 's3', rows_copied: 12, rows_scanned: 50, rows_total: 200, lag_bytes: 0, pause_ms: null }, 10),
    '[###-------] 25% add s3: copying, rows 50/200 read, 12 moved',
  );
  t.equal(
    formatProgress({ state: 'done', kind: 'remove', shard: 's1', rows_copied: 3, rows_scanned: 10, rows_total: 10, rows_cleaned: 3, lag_bytes: 0, pause_ms: 180 }),
    '100% remove s1: done, rows 10/10 read, 3 moved, cut-over pause 180 ms, cleaned 3',
  );
  t.match(formatProgress({ state: 'failed', kind: 'add', shard: 's3', rows_copied: 0, rows_total: 0, error: 'boom' }), /error: boom$/);
});

t.test('the shard table', async (t) => {
  const out = formatShards([
    { id: 's0', host: '127.0.0.1', port: 5432, database: 'app', weight: 1, up: true, status: 'active', pool: { total: 3, active: 1, idle: 2 } },
    { id: 'new', host: 'db', port: 6000, database: 'app', weight: 2, up: null, status: 'adding', pool: null },
  ]);
  t.equal(
    out,
    [
      'ID   ADDRESS         DATABASE  WEIGHT  UP   STATUS  POOL (active/total)',
      's0   127.0.0.1:5432  app       1       yes  active  1/3',
      'new  db:6000         app       2       ?    adding  -',
    ].join('\n'),
  );
});
