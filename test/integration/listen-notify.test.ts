// LISTEN/NOTIFY through pgshard under transaction pooling: pgshard listens on its own connection to every
// shard, so a NOTIFY is delivered to the listening clients wherever its statement ran, between their
// transactions, and only when the notifying transaction commits — as one Postgres does.
import t from 'tap';
import postgres from 'postgres';
import type pg from 'pg';
import { APP } from '../helpers/shards.js';
import { errorOf, pgClient } from '../helpers/proxy.js';
import { withSharded } from '../helpers/three-shards.js';

const s = await withSharded(t);

type Note = { channel: string; payload: string | undefined };

function collect(c: pg.Client): Note[] {
  const got: Note[] = [];
  c.on('notification', (n) => got.push({ channel: n.channel, payload: n.payload }));
  return got;
}

async function until(f: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (f()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return f();
}

/** Keys owned by each shard, so that a NOTIFY can be sent from a transaction on a chosen shard. */
function keyOn(shard: string): number {
  for (let k = 1; k < 10_000; k++) if (s.owner('users', k) === shard) return k;
  throw new Error(`no key on ${shard}`);
}

t.test('a NOTIFY reaches the listener wherever it ran, with its payload', async (t) => {
  const listener = await pgClient(s.proxy.port, { t });
  const sender = await pgClient(s.proxy.port, { t });
  const got = collect(listener);
  t.equal((await listener.query('LISTEN jobs')).command, 'LISTEN');
  await sender.query("NOTIFY jobs, 'plain'");
  await sender.query("select pg_notify('jobs', 'by function')");
  // From a transaction on each shard: the shard's own commit delivers it.
  for (const shard of ['s0', 's1', 's2']) {
    await sender.query('begin');
    await sender.query('select 1 from users where id = $1', [keyOn(shard)]);
    await sender.query(`NOTIFY jobs, 'from ${shard}'`);
    await sender.query('commit');
  }
  t.ok(await until(() => got.length >= 5), `five notifications arrived (${got.length})`);
  t.same(
    got.map((n) => n.payload).sort(),
    ['by function', 'from s0', 'from s1', 'from s2', 'plain'],
    'each once, with its payload',
  );
  t.ok(got.every((n) => n.channel === 'jobs'));
  t.same((await listener.query('select 1 as one')).rows, [{ one: 1 }], 'the listening session keeps working');
});

t.test('a rolled-back NOTIFY is never delivered; a committed one only at commit', async (t) => {
  const listener = await pgClient(s.proxy.port, { t });
  const sender = await pgClient(s.proxy.port, { t });
  const got = collect(listener);
  await listener.query('LISTEN tx_chan');
  await sender.query('begin');
  await sender.query("NOTIFY tx_chan, 'rolled back'");
  await sender.query('rollback');
  await sender.query('begin');
  await sender.query("NOTIFY tx_chan, 'committed'");
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [], 'nothing before the commit');
  await sender.query('commit');
  t.ok(await until(() => got.length >= 1));
  await new Promise((r) => setTimeout(r, 200));
  t.same(got.map((n) => n.payload), ['committed']);
});

t.test('a listener in a transaction gets its notifications when the transaction ends', async (t) => {
  const listener = await pgClient(s.proxy.port, { t });
  const sender = await pgClient(s.proxy.port, { t });
  const got = collect(listener);
  await listener.query('LISTEN busy_chan');
  await listener.query('begin');
  await listener.query('select 1 from users where id = $1', [keyOn('s1')]);
  await sender.query("NOTIFY busy_chan, 'while busy'");
  await new Promise((r) => setTimeout(r, 300));
  await listener.query('select 2');
  t.same(got, [], 'held while the listener is in its transaction');
  await listener.query('commit');
  t.ok(await until(() => got.length === 1), 'delivered after COMMIT');
});

t.test('UNLISTEN, UNLISTEN *, quoted channel names, and several listeners', async (t) => {
  const a = await pgClient(s.proxy.port, { t });
  const b = await pgClient(s.proxy.port, { t });
  const sender = await pgClient(s.proxy.port, { t });
  const gotA = collect(a);
  const gotB = collect(b);
  await a.query('LISTEN "Mixed Case"');
  await a.query('LISTEN other');
  await b.query('LISTEN "Mixed Case"');
  await sender.query(`NOTIFY "Mixed Case", 'one'`);
  t.ok(await until(() => gotA.length === 1 && gotB.length === 1), 'both listeners get it');
  t.equal(gotA[0]!.channel, 'Mixed Case', 'the channel name keeps its case');
  t.equal((await a.query('UNLISTEN "Mixed Case"')).command, 'UNLISTEN');
  await sender.query(`NOTIFY "Mixed Case", 'two'`);
  await sender.query(`NOTIFY other, 'three'`);
  t.ok(await until(() => gotB.length === 2 && gotA.length === 2));
  t.same(gotA.map((n) => n.payload), ['one', 'three'], 'a no longer hears "Mixed Case" but still hears other');
  await a.query('UNLISTEN *');
  await b.end();
  await sender.query(`NOTIFY other, 'four'`);
  await sender.query(`NOTIFY "Mixed Case", 'five'`);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(gotA.length, 2, 'nothing after UNLISTEN *');
  t.same((await a.query('select 1 as ok')).rows, [{ ok: 1 }]);
});

t.test('LISTEN inside a transaction block is refused plainly and the session goes on', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await c.query('begin');
  await c.query('select 1 from users where id = 1');
  const err = await errorOf(() => c.query('LISTEN in_tx'));
  t.equal(err?.code, '0A000');
  t.match(err?.message, /inside a transaction block/);
  await c.query('rollback');
  t.equal((await c.query('LISTEN in_tx')).command, 'LISTEN', 'fine outside the transaction');
});

t.test('postgres.js listen/notify (extended protocol)', async (t) => {
  const opts = { host: '127.0.0.1', port: s.proxy.port, user: APP.user, password: APP.password, database: APP.database, onnotice: () => undefined, connect_timeout: 10 };
  const sql = postgres({ ...opts, max: 2 });
  t.teardown(() => sql.end({ timeout: 1 }));
  const got: string[] = [];
  await sql.listen('pjs', (payload) => got.push(payload));
  await sql.notify('pjs', 'hello from postgres.js');
  await sql`select pg_notify('pjs', ${'with a parameter'})`;
  t.ok(await until(() => got.length === 2), `both arrived (${got.length})`);
  t.same(got.sort(), ['hello from postgres.js', 'with a parameter']);
});

t.test('pgshard keeps one listening connection per shard and lets go of channels nobody listens on', async (t) => {
  const c = await pgClient(s.proxy.port, { t });
  await c.query('LISTEN gone_soon');
  const listening = async () => {
    let n = 0;
    for (const shard of ['s0', 's1', 's2']) {
      const rows = await s.direct(shard, "select count(*)::int as n from pg_stat_activity where application_name = 'pgshard-listen'");
      n += (rows as { n: number }[])[0]!.n;
    }
    return n;
  };
  t.equal(await listening(), 3, 'one listening connection on each shard');
  await c.query('UNLISTEN gone_soon');
  const other = await pgClient(s.proxy.port, { t });
  const got = collect(other);
  await other.query('LISTEN still_here');
  await c.query(`NOTIFY gone_soon, 'nobody'`);
  await c.query(`NOTIFY still_here, 'somebody'`);
  t.ok(await until(() => got.length === 1));
  t.same(got.map((n) => n.payload), ['somebody']);
});
