// `npm run soak`: mixed load through pgshard over three real shards for PGSHARD_SOAK_SECONDS (default 600)
// while faults are injected in a cycle (latency, reset and blackhole through a relay in front of s2,
// SIGSTOP of s1, a kill and restart of s1). Every PGSHARD_SOAK_SAMPLE_MS (default 5000) it records RSS,
// heap and event-loop lag; it fails on an upward memory trend, on a request that waited without end, or
// when the shards are not all served again at the end. Writes bench/results/soak-<time>.{json,svg}.
// Run through tap for its TypeScript loader (as bench/fuzz.ts), not part of `npm test`.
import t from 'tap';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withShards } from '../test/helpers/shards.js';
import { directClient, pgClient, sleep, startProxy } from '../test/helpers/proxy.js';
import { startFaultRelay } from '../test/helpers/fault-relay.js';
import { childrenOf, signalProcess } from '../src/embedded/processes.js';
import { memoryTrend, soakChart, type Sample } from './soak-report.js';

const seconds = Number(process.env.PGSHARD_SOAK_SECONDS ?? 600);
const sampleMs = Number(process.env.PGSHARD_SOAK_SAMPLE_MS ?? 5000);
const clients = Number(process.env.PGSHARD_SOAK_CLIENTS ?? 8);
const HANG_MS = 20_000;

t.test(`soak for ${seconds} s`, { timeout: (seconds + 300) * 1000 }, async (t) => {
  const shards = await withShards(t, 3);
  const [s0, s1, s2] = shards.clusters as [(typeof shards.clusters)[number], (typeof shards.clusters)[number], (typeof shards.clusters)[number]];
  for (const s of shards.clusters) await s.query('create table if not exists soak_kv (k bigint primary key, v bigint not null default 0)', 'app');
  const relay = await startFaultRelay({ port: s2.port });
  t.teardown(() => relay.close());
  const proxy = await startProxy(t, [s0, s1, { port: relay.port }], {
    tables: { soak_kv: { shard_key: 'k', key_type: 'bigint' } },
    limits: { statement_timeout_ms: 2000, idle_in_transaction_timeout_ms: 10_000 },
    pool: { size: 10, connect_timeout_ms: 1000, checkout_timeout_ms: 3000, keepalive_idle_ms: 2000 },
  });
  const seed = await pgClient(proxy.port);
  await seed.query(`insert into soak_kv (k) values ${Array.from({ length: 1000 }, (_, i) => `(${i + 1})`).join(',')} on conflict do nothing`);
  await seed.end();

  const started = Date.now();
  const stats = { ok: 0, errors: 0, slowest: 0, hangs: [] as string[], codes: new Map<string, number>() };
  let running = true;
  const worker = async (w: number) => {
    let n = 0;
    while (running) {
      let c: Awaited<ReturnType<typeof pgClient>> | null = null;
      try {
        c = await pgClient(proxy.port, { query_timeout: HANG_MS, connectionTimeoutMillis: HANG_MS });
        // Each connection runs a while, then reconnects: logins are part of the load.
        for (let i = 0; i < 200 && running; i++, n++) {
          const k = 1 + ((w * 7919 + n * 104729) % 1000);
          const t0 = Date.now();
          try {
            switch (n % 6) {
              case 0:
                await c.query('select v from soak_kv where k = $1', [k]);
                break;
              case 1:
                await c.query({ name: 'bump', text: 'update soak_kv set v = v + 1 where k = $1', values: [k] });
                break;
              case 2:
                await c.query('select count(*) from soak_kv');
                break;
              case 3:
                await c.query('begin');
                await c.query('update soak_kv set v = v + 1 where k = $1', [k]);
                await c.query('update soak_kv set v = v - 1 where k = $1', [1 + ((k + 500) % 1000)]);
                await c.query('commit');
                break;
              case 4:
                await c.query(`select k, v from soak_kv where k in (${k}, ${1 + ((k + 1) % 1000)}, ${1 + ((k + 2) % 1000)}) order by k`);
                break;
              default:
                await c.query("select repeat('x', 2000) from generate_series(1, 200)");
            }
            stats.ok++;
          } catch (e) {
            stats.errors++;
            const code = (e as { code?: string }).code ?? 'none';
            stats.codes.set(code, (stats.codes.get(code) ?? 0) + 1);
            if (/timeout/i.test((e as Error).message) && !(e as { code?: string }).code) {
              stats.hangs.push(`worker ${w}: request kind ${n % 6} from ${((t0 - started) / 1000).toFixed(1)} s: ${(e as Error).message}`);
              break; // that connection is stuck: the next one is new
            }
            await c.query('rollback').catch(() => undefined);
            if ((c as unknown as { errors: Error[] }).errors.length) break;
          }
          stats.slowest = Math.max(stats.slowest, Date.now() - t0);
        }
      } catch {
        stats.errors++;
        await sleep(200);
      } finally {
        if (c) await Promise.race([c.end().catch(() => undefined), sleep(1000)]);
      }
    }
  };

  // The fault cycle: 60 s, one fault at a time, then time to recover.
  const faults = async () => {
    const steps: [string, () => Promise<void>][] = [
      ['latency 50 ms on s2', async () => { relay.latencyMs = 50; await sleep(8000); relay.latencyMs = 0; }],
      ['reset s2 connections', async () => relay.reset()],
      ['blackhole s2 for 4 s', async () => { relay.mode = 'blackhole'; await sleep(4000); relay.mode = 'pass'; }],
      ['SIGSTOP s1 for 4 s', async () => {
        const pids = [s1.pid!, ...childrenOf(s1.pid!)];
        pids.forEach((p) => signalProcess(p, 'SIGSTOP'));
        await sleep(4000);
        pids.forEach((p) => signalProcess(p, 'SIGCONT'));
      }],
      ['kill and restart s1', async () => { await s1.kill(); await sleep(1000); await s1.restart(); }],
    ];
    let i = 0;
    while (running) {
      const [name, run] = steps[i++ % steps.length]!;
      t.comment(`${new Date().toISOString()} fault: ${name}`);
      await run();
      for (let w = 0; w < 24 && running; w++) await sleep(500); // 12 s to recover
    }
  };

  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const samples: Sample[] = [];
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    samples.push({ t: (Date.now() - started) / 1000, rssMb: m.rss / 2 ** 20, heapMb: m.heapUsed / 2 ** 20, lagP99Ms: lag.percentile(99) / 1e6, lagMaxMs: lag.max / 1e6, ok: stats.ok, errors: stats.errors });
    lag.reset();
  }, sampleMs);

  const work = [...Array.from({ length: clients }, (_, w) => worker(w)), faults()];
  await sleep(seconds * 1000);
  running = false;
  clearInterval(sampler);
  lag.disable();
  await Promise.all(work);

  // After the faults: every shard serves, nothing is left open on them.
  const check = await pgClient(proxy.port);
  const counts = await check.query('select count(*)::int as n from soak_kv');
  await check.end();
  t.same(counts.rows, [{ n: 1000 }], 'every shard answers at the end (and no row was lost or duplicated)');
  for (const s of [s0, s1, s2]) {
    const d = await directClient(s);
    const stuck = await d.query("select count(*)::int as n from pg_stat_activity where usename = 'app' and state like 'idle in transaction%' and state_change < now() - interval '15 s'");
    await d.end();
    t.same(stuck.rows, [{ n: 0 }], `no backend of ${s.port} is left idle in a transaction`);
  }

  const trend = memoryTrend(samples);
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const summary = { seconds, sampleMs, clients, ok: stats.ok, errors: stats.errors, codes: Object.fromEntries(stats.codes), slowestMs: stats.slowest, hangs: stats.hangs.length, trend, samples };
  writeFileSync(path.join(out, `soak-${stamp}.json`), JSON.stringify(summary, null, 1));
  writeFileSync(path.join(out, `soak-${stamp}.svg`), soakChart(samples, `pgshard soak, ${seconds} s, ${clients} clients, faults every 12 s`));
  t.comment(`${stats.ok} requests ok, ${stats.errors} failed (${JSON.stringify(summary.codes)}), slowest ${stats.slowest} ms; rss slope ${trend.slopeMbPerMin.toFixed(2)} MB/min over the last ${trend.window} samples; lag p99 max ${Math.max(...samples.map((s) => s.lagP99Ms)).toFixed(1)} ms; chart bench/results/soak-${stamp}.svg`);
  t.ok(stats.ok > 0, 'requests were served');
  t.same(stats.hangs, [], `no request waited without end (${HANG_MS} ms client bound)`);
  t.ok(samples.length >= 4, `enough samples (${samples.length})`);
  t.notOk(trend.rising, `no upward memory trend (${trend.slopeMbPerMin.toFixed(2)} MB/min, ${trend.growthMb.toFixed(1)} MB over the measured window)`);
});
