// Failed logins slow down further attempts from the same address, without holding up anyone else.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { withShards } from '../helpers/shards.js';
import { pgClient, startProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';

const shards = await withShards(t, 1);
const BASE = 500;
const proxy = await startProxy(t, shards.clusters, { auth: { login_delay_after_failures: 2, login_delay_base_ms: BASE, login_delay_max_ms: 8 * BASE } });

/** A login from a given loopback source address; resolves with how it ended and when. */
async function login(password: string, from = '127.0.0.1'): Promise<{ ok: boolean; code?: string; ms: number; start: number; at: number }> {
  const t0 = performance.now();
  const s = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: from });
  await once(s, 'connect');
  const c = new RawClient(s);
  try {
    await c.login({ password, timeoutMs: 30_000 });
    await c.query('select 1');
    await c.terminate();
    return { ok: true, ms: performance.now() - t0, start: t0, at: performance.now() };
  } catch (e) {
    c.close();
    return { ok: false, code: (e as { code?: string }).code, ms: performance.now() - t0, start: t0, at: performance.now() };
  }
}

t.test('spacing grows per failure, other addresses and sessions go on, success resets', async (t) => {
  const app = await pgClient(proxy.port, { t }); // connected before the failures
  t.match(await login('wrong'), { ok: false, code: '28P01' });
  const second = await login('wrong');
  t.equal(second.code, '28P01');
  // Attempts are spaced from the previous failure, which the server saw after that attempt started.
  const third = await login('wrong');
  t.equal(third.code, '28P01');
  t.ok(third.at - second.start >= BASE, `the third answer came ${BASE} ms after the second failure at least (${Math.round(third.at - second.start)} ms)`);
  const fourth = await login('wrong');
  t.ok(fourth.at - third.start >= 2 * BASE, `the fourth waited twice as long (${Math.round(fourth.at - third.start)} ms)`);

  // The next attempt from 127.0.0.1 waits 4 × BASE; meanwhile another address and an open session are served.
  const slow = login('app');
  const other = await login('app', '127.0.0.2');
  const query = await app.query('select 2 as two');
  const otherAt = performance.now();
  const penalized = await slow;
  t.ok(other.ok, 'a client from another address logs in');
  t.same(query.rows, [{ two: 2 }], 'an open session from the same address keeps working');
  t.ok(other.at < penalized.at && otherAt < penalized.at, 'both finished before the penalized attempt');
  t.ok(penalized.ok, 'the right password still works once its turn comes');
  t.ok(penalized.at - fourth.start >= 4 * BASE, `it waited (${Math.round(penalized.at - fourth.start)} ms)`);

  // The success reset the address: two failures are free again, without waiting.
  const again = await login('wrong');
  t.equal(again.code, '28P01');
  t.ok(again.ms < 4 * BASE, `no wait after the reset (${Math.round(again.ms)} ms)`);
});
