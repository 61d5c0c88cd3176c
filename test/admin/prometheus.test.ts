// A real Prometheus scrapes pgshard (three shards, a short load) every second; every PromQL expression of
// every shipped dashboard must then return data through Prometheus's HTTP API.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { openSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/embedded/cluster.js';
import { sleep } from '../helpers/proxy.js';
import { dashboardExpressions, expandGrafanaVariables, prometheusTools, runLoad, startStack } from './helpers.js';

const TOKEN = 'scrape-secret';

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value?: [number, string] }[] };
}

const tools = await prometheusTools();
const stack = await startStack(t, { token: TOKEN });

const dir = await mkdtemp(path.join(os.tmpdir(), 'pgshard-prometheus-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const promPort = await freePort();
const promUrl = `http://127.0.0.1:${promPort}`;
const configFile = path.join(dir, 'prometheus.yml');
await writeFile(
  configFile,
  `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pgshard
    scrape_interval: 1s
    scrape_timeout: 1s
    authorization:
      credentials: ${TOKEN}
    static_configs:
      - targets: ['127.0.0.1:${stack.admin.port}']
`,
);
const logFile = path.join(dir, 'prometheus.log');

async function query(expr: string): Promise<QueryResult> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as QueryResult;
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; Prometheus log:\n${(await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n')}`);
    await sleep(250);
  }
}

t.test('the configuration is accepted by promtool', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(tools.promtool, ['check', 'config', configFile], { encoding: 'utf8' });
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

t.test('every dashboard expression returns data from a real Prometheus', async (t) => {
  const log = openSync(logFile, 'a');
  const prom: ChildProcess = spawn(
    tools.prometheus,
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', log, log] },
  );
  const exited = new Promise<void>((r) => prom.once('exit', () => r()));
  t.teardown(async () => {
    if (prom.exitCode === null && prom.signalCode === null) {
      prom.kill('SIGTERM');
      const killer = setTimeout(() => prom.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
  });

  await until('Prometheus to be ready', 60_000, async () => (await fetch(`${promUrl}/-/ready`)).ok);
  await until('the first successful scrape of pgshard', 30_000, async () => {
    const r = await query('up{job="pgshard"} == 1');
    return r.data?.result.length === 1;
  });

  // A few seconds of load, so that rates over the last 30 s have several samples.
  let requests = 0;
  for (let i = 0; i < 5; i++) {
    requests += (await runLoad(stack, 12, 1 + i * 100)).requests;
    await sleep(600);
  }
  t.ok(requests >= 300, `${requests} requests through pgshard`);
  const expected = Number((await (await fetch(`${stack.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()).match(/^pgshard_parse_cache_hits_total (\S+)$/m)?.[1]);
  await until('Prometheus to scrape the end of the load', 15_000, async () => {
    const r = await query('pgshard_parse_cache_hits_total');
    return Number(r.data?.result[0]?.value?.[1]) >= expected;
  });

  const exprs = dashboardExpressions();
  t.ok(exprs.length >= 20, `${exprs.length} expressions`);
  for (const e of exprs) {
    const promql = expandGrafanaVariables(e.expr);
    const r = await query(promql);
    t.equal(r.status, 'success', `${e.panel}: ${promql}${r.error ? ` → ${r.error}` : ''}`);
    const values = (r.data?.result ?? []).map((x) => Number(x.value?.[1]));
    t.ok(values.length > 0, `${e.panel}: data for ${promql}`);
    t.ok(values.every(Number.isFinite), `${e.panel}: numbers, not NaN (${values.join(', ')})`);
  }

  // Numbers that must have moved under the load (not just exist).
  const value = async (expr: string) => Number((await query(expr)).data?.result[0]?.value?.[1] ?? NaN);
  t.ok((await value('sum(increase(pgshard_parse_cache_hits_total[1m]))')) > 0, 'parse cache hits rose');
  t.ok((await value('sum(pgshard_shard_up)')) === 3, 'three shards up');
  t.ok((await value('sum(pgshard_ring_keyspace_ratio)')) > 0.999, 'ring shares sum to 1');
  t.ok((await value('sum(rate(pgshard_queries_total[30s]))')) > 0, 'throughput is above 0 (needs the core wired to Metrics.query)');
  t.ok((await value('histogram_quantile(0.99, sum by (le) (rate(pgshard_query_duration_seconds_bucket[30s])))')) > 0, 'p99 latency is a number above 0 (needs the wiring)');
});
