/**
 * For the admin tests: three real shards with pgshard in front, the Metrics and the admin API on a free
 * port (`startStack`), a short mixed load through pgshard (`runLoad`), the PromQL expressions of the
 * shipped dashboards (`dashboardExpressions`), and Prometheus's own tools (`prometheusTools`: promtool
 * and prometheus, installed from Debian's `prometheus` package when missing).
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { PgShardServer as PgShardServerType } from '../../src/server/server.js';
import type { Metrics as MetricsType, MetricsOptions } from '../../src/admin/metrics.js';
import type { AdminServer } from '../../src/admin/http.js';
import { initHash } from '../../src/routing/hash.js';
import { routeKey } from '../../src/routing/route-cli.js';
import { withShards, type Shards, type Teardownable } from '../helpers/shards.js';
import { closeClient, pgClient, proxyConfigDoc, testLogger } from '../helpers/proxy.js';

// test/helpers/proxy.ts registers the module hook the server's graph needs under tap; load it after.
const { PgShardServer } = await import('../../src/server/server.js');
const { Metrics } = await import('../../src/admin/metrics.js');
const { startAdmin } = await import('../../src/admin/http.js');

const run = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const TABLES = {
  users: { shard_key: 'id', key_type: 'bigint' },
  countries: { reference: true },
} as const;

const SCHEMA = `
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO countries VALUES ('de', 'Germany'), ('fr', 'France');
`;

export interface Stack {
  shards: Shards;
  server: PgShardServerType;
  config: Config;
  metrics: MetricsType;
  admin: AdminServer;
  /** pgshard's client port. */
  port: number;
  /** http://127.0.0.1:<admin port> */
  adminUrl: string;
}

export interface StackOptions {
  token?: string;
  /** Where the admin API listens (default 127.0.0.1). */
  adminHost?: string;
  metrics?: MetricsOptions;
  log?: Logger;
}

/** Three shards with the schema, pgshard with the metrics as its observer, the admin API on a free port. */
export async function startStack(t: Teardownable, opts: StackOptions = {}): Promise<Stack> {
  await initHash();
  const shards = await withShards(t, 3);
  for (const c of shards.clusters) await c.query(SCHEMA, 'app');
  const config = validateConfig(proxyConfigDoc(shards.clusters, { tables: TABLES }), 'admin test config');
  const metrics = new Metrics({ healthIntervalMs: 1000, ...opts.metrics });
  const server = new PgShardServer(config, opts.log ?? testLogger());
  // The core reports requests to `server.observer` once it is wired (see src/admin/observer.ts); until
  // then the assignment has no effect and only what metrics read from the server's state moves.
  (server as unknown as { observer?: unknown }).observer = metrics;
  const port = await server.start();
  t.teardown(() => server.stop(0));
  const admin = await startAdmin(server, metrics, { host: opts.adminHost ?? '127.0.0.1', port: 0, ...(opts.token ? { token: opts.token } : {}) }, opts.log ?? testLogger());
  t.teardown(async () => {
    await admin.close();
    metrics.close();
  });
  return { shards, server, config, metrics, admin, port, adminUrl: `http://127.0.0.1:${admin.port}` };
}

export interface LoadSummary {
  /** Requests sent (each statement of the loop is one). */
  requests: number;
  /** Requests that failed (a syntax error, a refused cross-shard write, …). */
  errors: number;
  /** Transactions that wrote on two shards and committed (0 while pgshard refuses them). */
  twoPhaseCommits: number;
}

/**
 * A mixed load through pgshard: single-shard reads and writes (simple and extended protocol), reads of a
 * reference table, reads on several and on all shards, committed and rolled-back transactions, a
 * transaction writing on two shards, and statements that fail (a syntax error, a write pgshard refuses).
 */
export async function runLoad(stack: Pick<Stack, 'port' | 'config'>, rounds: number, firstId = 1): Promise<LoadSummary> {
  const c = await pgClient(stack.port);
  const summary: LoadSummary = { requests: 0, errors: 0, twoPhaseCommits: 0 };
  const q = async (sql: string, params?: unknown[]) => {
    summary.requests++;
    try {
      return await c.query(sql, params);
    } catch (e) {
      summary.errors++;
      throw e;
    }
  };
  const fails = async (sql: string) => {
    const ok = await q(sql).then(
      () => true,
      () => false,
    );
    if (ok) throw new Error(`expected "${sql}" to fail`);
  };
  const owner = (id: number) => routeKey(stack.config, 'users', String(id)).shard;
  try {
    for (let i = 0; i < rounds; i++) {
      const id = firstId + i;
      await q(`INSERT INTO users VALUES (${id}, 'u${id}') ON CONFLICT (id) DO UPDATE SET name = excluded.name`);
      await q('SELECT name FROM users WHERE id = $1', [id]);
      await q(`SELECT name FROM users WHERE id = ${id}`);
      await q('UPDATE users SET name = $2 WHERE id = $1', [id, `v${id}`]);
      await q('SELECT name FROM countries WHERE code = $1', ['de']);
      await q(`SELECT id FROM users WHERE id IN (${id}, ${id + 1})`);
      await q('SELECT count(*) FROM users');
      await q('SELECT 1');
      await q('BEGIN');
      await q(`DELETE FROM users WHERE id = ${id + 1_000_000}`);
      await q(i % 2 ? 'COMMIT' : 'ROLLBACK');
      if (i % 10 === 0) {
        await fails('SELEC 1');
        await fails(`SELECT * FROM users WHERE id = 'not a number'`);
        // A transaction writing on two shards: two-phase commit where pgshard supports it, refused where not.
        const a = id + 2_000_000;
        let b = a + 1;
        while (owner(b) === owner(a)) b++;
        await q('BEGIN');
        try {
          await q(`INSERT INTO users VALUES (${a}, 'a') ON CONFLICT DO NOTHING`);
          await q(`INSERT INTO users VALUES (${b}, 'b') ON CONFLICT DO NOTHING`);
          await q('COMMIT');
          summary.twoPhaseCommits++;
        } catch {
          await q('ROLLBACK');
        }
      }
    }
  } finally {
    await closeClient(c);
  }
  return summary;
}

export async function getText(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { headers });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

export async function getJson<T = unknown>(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: (await res.json()) as T };
}

// ------------------------------------------------------------------------------------ dashboards

export const DASHBOARD_DIR = path.join(ROOT, 'grafana/dashboards');

export interface DashboardExpr {
  file: string;
  panel: string;
  expr: string;
}

/** Every `expr` of every panel (and row, and template) of every dashboard under grafana/dashboards. */
export function dashboardExpressions(): DashboardExpr[] {
  const out: DashboardExpr[] = [];
  for (const file of readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json'))) {
    const doc = JSON.parse(readFileSync(path.join(DASHBOARD_DIR, file), 'utf8')) as unknown;
    const walk = (o: unknown, panel: string): void => {
      if (Array.isArray(o)) for (const v of o) walk(v, panel);
      else if (o && typeof o === 'object') {
        const rec = o as Record<string, unknown>;
        const title = typeof rec.title === 'string' && Array.isArray(rec.targets) ? rec.title : panel;
        for (const [k, v] of Object.entries(rec)) {
          if (k === 'expr' && typeof v === 'string') out.push({ file, panel: title, expr: v });
          else walk(v, title);
        }
      }
    };
    walk(doc, '(dashboard)');
  }
  return out;
}

const PROMQL_KEYWORDS = /^(by|without|on|ignoring|group_left|group_right|bool|and|or|unless|offset|atan2|inf|nan)$/i;

/** The metric names an expression selects (every identifier that is not a function, keyword or label). */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ') // label lists
    .replace(/(?<![A-Za-z0-9_:.])\d+(?:ms|[smhdwy])\b/g, ' ') // durations (offset 5m)
    .replace(/(?<![A-Za-z0-9_:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g, ' '); // numbers
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(') || PROMQL_KEYWORDS.test(m[0])) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Grafana's interval variables, replaced by windows that hold several 1 s scrapes. */
export function expandGrafanaVariables(expr: string, rangeWindow = '30s'): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range|\$\{__rate_interval\}|\$\{__interval\}/g, rangeWindow);
}

// ------------------------------------------------------------------------------------ Prometheus

export interface PrometheusTools {
  promtool: string;
  prometheus: string;
}

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/**
 * promtool and prometheus. When either is missing, installs Debian's `prometheus` package (it ships both)
 * as root with apt-get, with service starts denied by policy-rc.d so that the package's own Prometheus does
 * not start; a service it started anyway is stopped. Throws, saying what to do, when that is not possible.
 */
export async function prometheusTools(): Promise<PrometheusTools> {
  const found = () => {
    const promtool = which('promtool');
    const prometheus = which('prometheus');
    return promtool && prometheus ? { promtool, prometheus } : null;
  };
  const have = found();
  if (have) return have;
  const hint = 'install the Debian package "prometheus" (apt-get install prometheus), or put promtool and prometheus on PATH';
  if (process.getuid?.() !== 0) throw new Error(`promtool/prometheus are missing and the tests are not running as root, so they cannot install them: ${hint}`);
  if (!which('apt-get')) throw new Error(`promtool/prometheus are missing and there is no apt-get here: ${hint}`);

  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# written by the pgshard admin tests while installing prometheus\nexit 101\n', { mode: 0o755 });
  const apt = (args: string[]) =>
    run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20, timeout: 900_000 });
  try {
    try {
      await apt(['install', '-y', '--no-install-recommends', 'prometheus']);
    } catch {
      await apt(['update', '-qq']);
      await apt(['install', '-y', '--no-install-recommends', 'prometheus']);
    }
  } catch (e) {
    throw new Error(`could not install promtool/prometheus: apt-get install prometheus failed (${(e as Error).message.split('\n').slice(-3).join(' ')}); ${hint}`);
  } finally {
    if (ownPolicy) unlinkSync(policy);
  }
  // The package's service must not be left running.
  const svc = spawnSync('sh', ['-c', 'pgrep -x prometheus -u prometheus'], { encoding: 'utf8' });
  if (svc.status === 0) spawnSync('sh', ['-c', '(systemctl stop prometheus || service prometheus stop || invoke-rc.d prometheus stop) >/dev/null 2>&1'], {});
  const now = found();
  if (!now) throw new Error(`apt-get installed prometheus but promtool/prometheus are still not on PATH: ${hint}`);
  return now;
}

/** `promtool check metrics` on an exposition: its complaints ('' when none) and exit code. */
export async function promtoolCheckMetrics(promtool: string, text: string): Promise<{ code: number; output: string }> {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}`.trim() };
}
