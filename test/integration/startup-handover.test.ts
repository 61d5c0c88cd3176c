// Bytes a client sends between AuthenticationOk and ReadyForQuery (a pipelining client does not wait)
// arrive while pgshard's login still waits for a backend: they must be kept for the session, not lost.
import t from 'tap';
import { withShards } from '../helpers/shards.js';
import { pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { RawClient, rows, serialize } from '../helpers/raw-client.js';

const shards = await withShards(t, 1);

t.test('a query sent before the login finished is answered', async (t) => {
  const proxy = await startProxy(t, shards.clusters, { auth: { method: 'trust' }, pool: { size: 1, checkout_timeout_ms: 5000 } });
  // The pool's only connection is held in a transaction: the next login waits for it.
  const holder = await pgClient(proxy.port, { t });
  await holder.query('begin');
  await holder.query('select 1');

  const c = await RawClient.open(proxy.port);
  t.teardown(() => c.close());
  c.send(serialize.startup({ user: 'app', database: 'app' }));
  const auth = await c.readOne();
  t.match(auth, { type: 'R', authCode: 0 }, 'AuthenticationOk');
  await sleep(100); // pgshard's login is now waiting for the pool
  c.send(serialize.query('select 42 as answer'));
  await sleep(200);
  await holder.query('commit');

  const login = await c.readUntilReady(5000);
  t.equal(login.at(-1)?.type, 'Z', 'the login ends with ReadyForQuery');
  const answer = await c.readUntilReady(5000);
  t.same(rows(answer), [['42']], 'the query sent during the login is answered');
});
