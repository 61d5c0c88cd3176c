// The metrics: the hot-path API, the exposition under load passing `promtool check metrics`, label
// cardinality, and every metric a shipped dashboard queries being exported.
import t from 'tap';
import { Counter, Histogram, Registry } from 'prom-client';
import { Metrics } from '../../src/admin/metrics.js';
import { noopObserver, routeKindOf, statementTypeOf } from '../../src/admin/observer.js';
import { dashboardExpressions, expandGrafanaVariables, metricNames, prometheusTools, promtoolCheckMetrics, runLoad, startStack } from './helpers.js';

/** Samples of an exposition: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const sum = (text: string, name: string, where: Record<string, string> = {}): number =>
  samples(text)
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);

t.test('hot-path calls land in the right series', async (t) => {
  const m = new Metrics({ processMetrics: false });
  m.query('s1', 'single', 'select', 0.0007);
  m.query('s1', 'single', 'select', 0.003);
  m.query(['s0', 's1', 's2'], 'all', 'select', 0.02);
  m.query('none', 'admin', 'other', 0);
  m.error('42601');
  m.error('0A000');
  m.error('0A000');
  m.error('bogus');
  m.transaction('single_shard', 'commit');
  m.checkoutWait('s0', 0.002);
  const text = await m.text();
  t.equal(sum(text, 'pgshard_queries_total', { shard: 's1', route: 'single', statement: 'select' }), 2);
  t.equal(sum(text, 'pgshard_queries_total', { route: 'all' }), 3, 'a request on three shards counts on each');
  t.equal(sum(text, 'pgshard_queries_total', { shard: 'none', route: 'admin' }), 1);
  t.equal(sum(text, 'pgshard_query_duration_seconds_count', { route: 'single' }), 2);
  t.equal(sum(text, 'pgshard_query_duration_seconds_count', { route: 'all' }), 1, 'latency is observed once per request');
  t.equal(sum(text, 'pgshard_query_duration_seconds_bucket', { route: 'single', le: '0.001' }), 1, 'buckets are cumulative');
  t.equal(sum(text, 'pgshard_query_duration_seconds_bucket', { route: 'single', le: '0.005' }), 2);
  t.equal(sum(text, 'pgshard_query_duration_seconds_bucket', { route: 'single', le: '+Inf' }), 2);
  t.ok(Math.abs(sum(text, 'pgshard_query_duration_seconds_sum', { route: 'single' }) - 0.0037) < 1e-12);
  t.equal(sum(text, 'pgshard_errors_total', { class: '42' }), 1);
  t.equal(sum(text, 'pgshard_errors_total', { class: '0A' }), 2);
  t.equal(sum(text, 'pgshard_errors_total', { class: 'XX' }), 1, 'a malformed SQLSTATE counts as XX, never as its own label value');
  t.equal(sum(text, 'pgshard_transactions_total', { kind: 'single_shard', outcome: 'commit' }), 1);
  t.equal(samples(text).filter((s) => s.name === 'pgshard_transactions_total').length, 4, 'every kind × outcome is exported, at 0 until it happens');
  t.equal(sum(text, 'pgshard_pool_checkout_wait_seconds_count', { shard: 's0' }), 1);
  for (const name of ['pgshard_transactions_in_doubt', 'pgshard_rebalance_rows_copied_total', 'pgshard_rebalance_lag_bytes', 'pgshard_rebalance_cutover_pause_seconds'])
    t.ok(samples(text).some((s) => s.name === name && s.value === 0), `${name} is exported at 0 before its feature exists`);
});

t.test('the hot path is cheaper than prom-client label children', async (t) => {
  // Relative, best of 5 runs, so that a busy machine slows both sides alike.
  const m = new Metrics({ processMetrics: false });
  const r = new Registry();
  const counter = new Counter({ name: 'c_total', help: 'c', labelNames: ['shard', 'route', 'statement'], registers: [r] }).labels('s1', 'single', 'select');
  const histogram = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['route'], registers: [r] }).labels('single');
  const n = 50_000;
  const best = (f: () => void): number => {
    let min = Infinity;
    for (let run = 0; run < 5; run++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) f();
      min = Math.min(min, ((performance.now() - t0) * 1e6) / n);
    }
    return min;
  };
  const ours = best(() => m.query('s1', 'single', 'select', 0.0004));
  const theirs = best(() => {
    counter.inc();
    histogram.observe(0.0004);
  });
  t.ok(ours * 3 < theirs, `query() costs ${ours.toFixed(0)} ns; prom-client's labels().inc() + observe() ${theirs.toFixed(0)} ns`);
  noopObserver.query('s1', 'single', 'select', 0);
});

t.test('route kinds and statement types', async (t) => {
  const st = (type: 'keys' | 'reference' | 'none', tag = 'SELECT') =>
    ({ tag, route: type === 'keys' ? { type, table: 'users', keys: [] } : type === 'reference' ? { type, tables: ['countries'], write: false } : { type } }) as never;
  t.equal(routeKindOf({ kind: 'shard', shard: 's1' }, st('keys'), 3), 'single');
  t.equal(routeKindOf({ kind: 'home' }, st('reference'), 3), 'reference');
  t.equal(routeKindOf({ kind: 'home' }, st('none'), 3), 'home');
  t.equal(routeKindOf({ kind: 'scatter', shards: ['s0', 's1'] }, st('keys'), 3), 'multi');
  t.equal(routeKindOf({ kind: 'scatter', shards: ['s0', 's1', 's2'] }, undefined, 3), 'all');
  t.same(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'COPY', undefined].map(statementTypeOf), ['select', 'insert', 'update', 'delete', 'other', 'other']);
});

t.test('metric names are read out of PromQL', async (t) => {
  t.same(metricNames('histogram_quantile(0.99, sum by (le, shard) (rate(pgshard_pool_checkout_wait_seconds_bucket[$__rate_interval])))'), ['pgshard_pool_checkout_wait_seconds_bucket']);
  t.same(metricNames('sum by (shard) (pgshard_pool_connections{state="active"}) / on (shard) group_left sum without (x) (pgshard_pool_connections_max)'), [
    'pgshard_pool_connections',
    'pgshard_pool_connections_max',
  ]);
  t.same(metricNames('sum(rate(a_total[5m] offset 1h)) / clamp_min(sum(rate(b_total[5m])), 1e-9) > bool 0.5 or vector(0)'), ['a_total', 'b_total']);
  t.equal(expandGrafanaVariables('rate(x[$__rate_interval])'), 'rate(x[30s])');
});

t.test('under load through three shards', async (t) => {
  const tools = await prometheusTools();
  const stack = await startStack(t);
  const load = await runLoad(stack, 30);
  const res = await fetch(`${stack.adminUrl}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();

  t.test('promtool check metrics finds nothing to complain about', async (t) => {
    const r = await promtoolCheckMetrics(tools.promtool, text);
    t.equal(r.output, '', 'no lint findings');
    t.equal(r.code, 0, 'promtool exit code');
  });

  t.test('labels come from small fixed sets', async (t) => {
    const allowed: Record<string, RegExp> = {
      shard: /^(s[0-2]|none)$/,
      route: /^(single|multi|all|reference|admin|home)$/,
      statement: /^(select|insert|update|delete|other)$/,
      class: /^[0-9A-Z]{2}$/,
      kind: /^(single_shard|two_phase)$/,
      outcome: /^(commit|rollback)$/,
      state: /^(idle|active|creating)$/,
      version: /^\d+\.\d+\.\d+/,
      le: /^([0-9.e+-]+|\+Inf)$/,
    };
    const own = samples(text).filter((s) => s.name.startsWith('pgshard_') && !/^pgshard_(nodejs|process)_/.test(s.name));
    t.ok(own.length > 100, `${own.length} pgshard samples`);
    const bad = own.flatMap((s) => Object.entries(s.labels).filter(([k, v]) => !allowed[k]?.test(v)).map(([k, v]) => `${s.name}{${k}="${v}"}`));
    t.same(bad, [], 'no label outside the fixed sets (no statement text, key value or user name)');
    t.ok(own.length < 1000, `series stay bounded: ${own.length}`);
  });

  t.test('every metric a dashboard queries is exported', async (t) => {
    const exported = new Set(samples(text).map((s) => s.name));
    const exprs = dashboardExpressions();
    t.ok(exprs.length >= 20, `${exprs.length} dashboard expressions`);
    const missing = exprs.flatMap((e) => metricNames(e.expr).filter((n) => !exported.has(n)).map((n) => `${e.file} "${e.panel}": ${n}`));
    t.same(missing, [], 'metric names in expressions that /metrics does not export');
    t.ok(exprs.every((e) => metricNames(e.expr).every((n) => n.startsWith('pgshard_'))), 'dashboards query pgshard metrics only');
  });

  t.test('what the server state says is exported', async (t) => {
    t.equal(sum(text, 'pgshard_shard_up'), 3, 'three shards up');
    t.equal(samples(text).filter((s) => s.name === 'pgshard_ring_points').length, 3);
    t.equal(sum(text, 'pgshard_ring_points'), 3 * stack.config.ring.vnodes, 'ring points sum to shards × vnodes');
    t.ok(Math.abs(sum(text, 'pgshard_ring_keyspace_ratio') - 1) < 1e-9, 'keyspace shares sum to 1');
    t.ok(sum(text, 'pgshard_parse_cache_hits_total') > 0 && sum(text, 'pgshard_parse_cache_misses_total') > 0, 'parse cache hits and misses');
    t.equal(sum(text, 'pgshard_pool_connections_max'), 3 * stack.config.pool.size);
    t.ok(sum(text, 'pgshard_nodejs_eventloop_lag_seconds') >= 0 && text.includes('pgshard_nodejs_eventloop_lag_seconds '), 'event-loop lag is exported');
    t.ok(samples(text).some((s) => s.name === 'pgshard_build_info' && s.value === 1));
  });

  t.test('what the core reports is counted (needs the wiring of src/admin/observer.ts)', async (t) => {
    const queries = sum(text, 'pgshard_queries_total');
    t.ok(queries >= load.requests, `pgshard_queries_total is ${queries} after ${load.requests} requests`);
    t.ok(sum(text, 'pgshard_queries_total', { route: 'single' }) > 0, 'single-shard requests');
    t.ok(sum(text, 'pgshard_queries_total', { route: 'reference' }) > 0, 'reference reads');
    t.ok(sum(text, 'pgshard_queries_total', { route: 'all' }) > 0, 'requests on all shards');
    t.ok(sum(text, 'pgshard_queries_total', { route: 'multi' }) > 0, 'requests on some shards');
    t.ok(sum(text, 'pgshard_queries_total', { route: 'admin' }) > 0, 'requests pgshard answered itself');
    t.ok(sum(text, 'pgshard_queries_total', { statement: 'insert' }) > 0 && sum(text, 'pgshard_queries_total', { statement: 'update' }) > 0, 'statement types');
    t.ok(sum(text, 'pgshard_query_duration_seconds_count') >= load.requests - load.errors, 'latency observed');
    t.equal(sum(text, 'pgshard_errors_total'), load.errors, 'one error per failed request');
    t.ok(sum(text, 'pgshard_errors_total', { class: '42' }) > 0 && sum(text, 'pgshard_errors_total', { class: '22' }) > 0, 'by SQLSTATE class');
    t.ok(sum(text, 'pgshard_transactions_total', { kind: 'single_shard', outcome: 'commit' }) > 0, 'commits');
    t.ok(sum(text, 'pgshard_transactions_total', { kind: 'single_shard', outcome: 'rollback' }) > 0, 'rollbacks');
    t.equal(sum(text, 'pgshard_transactions_total', { kind: 'two_phase', outcome: 'commit' }), load.twoPhaseCommits, `two-phase commits (${load.twoPhaseCommits} in the load)`);
    t.ok(sum(text, 'pgshard_pool_checkout_wait_seconds_count') > 0, 'checkouts');
    t.ok(sum(text, 'pgshard_client_received_bytes_total') > 1000 && sum(text, 'pgshard_client_sent_bytes_total') > 1000, 'client bytes in and out');
    const fromShards = sum(text, 'pgshard_shard_received_bytes_total');
    const toShards = sum(text, 'pgshard_shard_sent_bytes_total');
    t.ok(toShards > 1000 && fromShards > 1000, `shard bytes in and out (${fromShards} received, ${toShards} sent)`);
    t.ok(sum(text, 'pgshard_shard_received_bytes_total', { shard: 's1' }) > 0, 'counted per shard');
  });
});
