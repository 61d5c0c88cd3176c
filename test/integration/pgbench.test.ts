// pgbench through pgshard: every query mode, no failed transaction, the pool bound held, and the
// TPC-B invariant intact on the shard afterwards.
import t from 'tap';
import { withShards } from '../helpers/shards.js';
import { startProxy, sleep } from '../helpers/proxy.js';
import { pgbench } from '../helpers/tools.js';

const POOL_SIZE = 10;
const shards = await withShards(t, 1, { settings: { max_connections: 100 } });
const shard = shards.clusters[0]!;
const proxy = await startProxy(t, shards.clusters, { pool: { size: POOL_SIZE, checkout_timeout_ms: 20_000 } });

/** The numbers pgbench reports. */
function report(stdout: string) {
  const num = (re: RegExp) => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : null;
  };
  return {
    processed: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/) ?? 0,
  };
}

t.test('pgbench -i directly on the shard', async (t) => {
  const r = await pgbench(shard.port, ['-i', '-s', '1', '-q']);
  t.equal(r.code, 0, r.code ? r.stderr : 'initialized');
});

for (const mode of ['simple', 'extended', 'prepared']) {
  t.test(`-M ${mode}: select-only and TPC-B`, async (t) => {
    for (const script of [['-S'], []]) {
      const name = script.length ? 'select-only' : 'TPC-B';
      const r = await pgbench(proxy.port, [...script, '-M', mode, '-c', '4', '-j', '2', '-t', '200', '-n'], { timeoutMs: 120_000 });
      t.equal(r.code, 0, `${name}: pgbench exits 0${r.code ? '\n' + r.stderr.slice(-2000) : ''}`);
      const rep = report(r.stdout);
      t.equal(rep.processed, 800, `${name}: 800 transactions processed`);
      t.equal(rep.failed, 0, `${name}: no failed transaction`);
    }
  });
}

t.test('40 clients share a pool of 10 backends', async (t) => {
  let max = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const r = await shard.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where backend_type = 'client backend' and usename = 'app'`,
      );
      max = Math.max(max, r[0]!.n);
      samples++;
      await sleep(50);
    }
  })();
  const r = await pgbench(proxy.port, ['-S', '-M', 'prepared', '-c', '40', '-j', '4', '-T', '5', '-n'], { timeoutMs: 120_000 });
  sampling = false;
  await sampler;
  t.equal(r.code, 0, r.code ? r.stderr.slice(-2000) : 'pgbench exits 0');
  const rep = report(r.stdout);
  t.ok((rep.processed ?? 0) > 0, `${rep.processed} transactions`);
  t.equal(rep.failed, 0, 'no failed transaction');
  t.ok(samples > 10, `${samples} samples of pg_stat_activity`);
  t.ok(max > 0, 'the backends were seen');
  t.ok(max <= POOL_SIZE, `at most ${POOL_SIZE} backends of role app on the shard (saw ${max})`);
});

t.test('the TPC-B invariant holds on the shard', async (t) => {
  const [sums] = await shard.query<{ a: string; b: string; tl: string; h: string; n: string }>(
    `select (select sum(abalance) from pgbench_accounts) as a, (select sum(bbalance) from pgbench_branches) as b,
            (select sum(tbalance) from pgbench_tellers) as tl, (select sum(delta) from pgbench_history) as h,
            (select count(*) from pgbench_history) as n`,
    'app',
  );
  t.equal(Number(sums!.n), 3 * 800, 'one history row per TPC-B transaction');
  t.equal(sums!.a, sums!.h, 'sum(abalance) = sum(delta)');
  t.equal(sums!.b, sums!.h, 'sum(bbalance) = sum(delta)');
  t.equal(sums!.tl, sums!.h, 'sum(tbalance) = sum(delta)');
});
