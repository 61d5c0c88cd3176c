/**
 * `pgshard shards list|add|remove` and `pgshard rebalance status|cancel`: the admin API from the command
 * line. The API's address and token come from flags, else from the configuration file's `admin` section.
 * Adding or removing waits for the rebalance, with a progress bar on a terminal.
 */
import type { Config } from '../config/schema.js';

export interface AdminTarget {
  url: string;
  token?: string;
}

export class AdminCliError extends Error {}

/** The admin API's base URL: `--admin URL` wins, else the configuration's admin.host/port. */
export function adminTarget(opts: { admin?: string; token?: string }, config: Config | null): AdminTarget {
  const token = opts.token ?? process.env.PGSHARD_ADMIN_TOKEN ?? config?.admin?.token;
  if (opts.admin) return { url: opts.admin.replace(/\/$/, ''), ...(token ? { token } : {}) };
  if (!config?.admin) throw new AdminCliError('no admin API to talk to: pass --admin http://HOST:PORT, or --config FILE whose configuration has an admin section');
  const host = config.admin.host === '0.0.0.0' || config.admin.host === '::' ? '127.0.0.1' : config.admin.host;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`, ...(token ? { token } : {}) };
}

export async function call<T = Record<string, unknown>>(target: AdminTarget, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${target.url}${path}`, {
      method,
      headers: { ...(target.token ? { authorization: `Bearer ${target.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (e) {
    throw new AdminCliError(`cannot reach the admin API at ${target.url} (${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}): is pgshard running with an admin section?`);
  }
  const data = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new AdminCliError(data.error ?? `${method} ${path} answered HTTP ${res.status}`);
  return data;
}

export interface RebalanceView {
  state: string;
  kind?: string;
  shard?: string;
  rows_copied?: number;
  rows_scanned?: number;
  rows_total?: number;
  rows_cleaned?: number;
  lag_bytes?: number;
  pause_ms?: number | null;
  error?: string | null;
}

export interface ShardView {
  id: string;
  host: string;
  port: number;
  database: string;
  weight: number;
  up: boolean | null;
  status: string;
  pool: { total: number; active: number; idle: number } | null;
}

export function formatShards(shards: readonly ShardView[]): string {
  const rows = [['ID', 'ADDRESS', 'DATABASE', 'WEIGHT', 'UP', 'STATUS', 'POOL (active/total)']];
  for (const s of shards)
    rows.push([s.id, `${s.host}:${s.port}`, s.database, String(s.weight), s.up === null ? '?' : s.up ? 'yes' : 'no', s.status, s.pool ? `${s.pool.active}/${s.pool.total}` : '-']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const TERMINAL = new Set(['done', 'failed', 'cancelled', 'none']);

/** One line of progress; with `width`, a bar of that many characters. */
export function formatProgress(v: RebalanceView, width = 0): string {
  if (v.state === 'none') return 'no rebalance has run';
  const total = v.rows_total ?? 0;
  const scanned = v.rows_scanned ?? 0;
  const frac = v.state === 'done' ? 1 : total > 0 ? Math.min(1, scanned / total) : 0;
  const bar = width > 0 ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}] ` : '';
  const parts = [`${v.kind} ${v.shard}: ${v.state}`, `rows ${scanned}/${total} read, ${v.rows_copied ?? 0} moved`];
  if (v.lag_bytes) parts.push(`lag ${v.lag_bytes} B`);
  if (v.pause_ms !== null && v.pause_ms !== undefined) parts.push(`cut-over pause ${v.pause_ms} ms`);
  if (v.rows_cleaned) parts.push(`cleaned ${v.rows_cleaned}`);
  if (v.error) parts.push(`error: ${v.error}`);
  return `${bar}${Math.round(frac * 100)}% ${parts.join(', ')}`;
}

/** Polls GET /rebalance until the rebalance ends; a bar redrawn in place on a TTY, a line per change elsewhere. */
export async function waitForRebalance(target: AdminTarget, out: NodeJS.WriteStream, intervalMs = 500): Promise<RebalanceView> {
  let last = '';
  for (;;) {
    const v = await call<RebalanceView>(target, 'GET', '/rebalance');
    const line = formatProgress(v, out.isTTY ? 30 : 0);
    if (out.isTTY) out.write(`\r${line}\x1b[K`);
    else if (line !== last && (v.state !== (last.match(/: (\w+),/)?.[1] ?? '') || TERMINAL.has(v.state))) out.write(`${line}\n`);
    last = line;
    if (TERMINAL.has(v.state)) {
      if (out.isTTY) out.write('\n');
      return v;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
