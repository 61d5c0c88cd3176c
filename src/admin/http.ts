/**
 * The admin HTTP API: metrics for Prometheus, liveness and readiness for orchestrators, and read-only views
 * of the shards, the ring and where a key lives. Every answer but /metrics is JSON; every error is
 * `{"error": "<what happened and what to do>"}`.
 *
 * Access: with `admin.token` set, every route but /health needs `Authorization: Bearer <token>`; without
 * one, only loopback clients are answered. /health says nothing but "ok", so that container health checks
 * and load balancers need no secret.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { PgShardServer } from '../server/server.js';
import { routeKey, RouteKeyError } from '../routing/route-cli.js';
import { KeyValueError } from '../routing/canonical.js';
import { initHash } from '../routing/hash.js';
import type { Metrics } from './metrics.js';
import { currentRing } from './metrics.js';
import { probePool } from './health.js';
import { openApiDocument, type RouteDoc } from './openapi.js';
import { shardSchema, type ShardConfig } from '../config/schema.js';
import { RebalanceError } from '../rebalance/engine.js';
import { TopologyConflict } from '../topology/topology.js';

export interface AdminConfig {
  host: string;
  port: number;
  token?: string;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

/** How long /ready waits for a connection from each shard pool. */
export const READY_TIMEOUT_MS = 2000;

interface Reply {
  status: number;
  /** JSON-encoded unless `text` is set. */
  body: unknown;
  text?: { contentType: string };
  headers?: Record<string, string>;
}

interface Request {
  url: URL;
  /** Path parameters (`{id}` of `/shards/{id}`). */
  params: Record<string, string>;
  /** The JSON body of a POST, parsed (undefined when none was sent). */
  body: unknown;
}

interface Route extends RouteDoc {
  handle(url: URL, req: Request): Promise<Reply> | Reply;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const json = (status: number, body: unknown): Reply => ({ status, body });

class MethodError extends HttpError {
  constructor(
    readonly methods: string[],
    message: string,
  ) {
    super(405, message);
  }
}

/** The Allow header: GET brings HEAD along. */
function allowed(methods: readonly string[]): string {
  return methods.flatMap((m) => (m === 'get' ? ['GET', 'HEAD'] : [m.toUpperCase()])).join(', ');
}

/** A request body as JSON (at most 64 KiB); 400 with what to send when it is not. */
async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 65536) throw new HttpError(400, 'the request body is larger than 64 KiB: send a JSON object');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `the request body is not valid JSON (${(e as Error).message}): send a JSON object with Content-Type: application/json`);
  }
}

function routes(server: PgShardServer, metrics: Metrics, openapi: () => unknown): Route[] {
  return [
    {
      path: '/metrics',
      summary: 'Prometheus metrics (text exposition format 0.0.4)',
      produces: 'text/plain',
      handle: async () => ({ status: 200, body: await metrics.text(), text: { contentType: metrics.contentType } }),
    },
    {
      path: '/health',
      summary: 'Liveness: 200 while the process serves HTTP. Needs no token.',
      public: true,
      handle: () => json(200, { status: 'ok' }),
    },
    {
      path: '/ready',
      summary: `Readiness: 200 when every shard pool hands out a connection within ${READY_TIMEOUT_MS} ms, else 503 naming the shards that did not`,
      responses: { '503': 'Some shards are unreachable; `shards` says which and why.' },
      handle: async () => {
        const results = await Promise.all([...server.pools.values()].map((p) => probePool(p, READY_TIMEOUT_MS)));
        for (const r of results) metrics.health?.record(r.shard, r.ok, r.error ?? null);
        const shards = results.map((r) => ({ id: r.shard, ok: r.ok, seconds: round(r.seconds), ...(r.error ? { error: r.error } : {}) }));
        const down = results.filter((r) => !r.ok);
        if (!down.length) return json(200, { status: 'ready', shards });
        return json(503, {
          error: `not ready: no connection to shard${down.length > 1 ? 's' : ''} ${down.map((r) => `"${r.shard}" (${r.error})`).join(', ')}; check that the shard is running and reachable from pgshard with the host, port, user and password of its entry under "shards"`,
          shards,
        });
      },
    },
    {
      path: '/shards',
      summary: 'The shards: address, weight, health, pool state (no passwords), and whether a rebalance is adding or removing it',
      handle: () =>
        json(
          200,
          server.topology.shards.map((s) => {
            const rb = server.rebalancer.active ? server.rebalancer.record : null;
            const pool = server.pools.get(s.id);
            const st = pool?.stats();
            const h = metrics.health?.get(s.id);
            return {
              id: s.id,
              host: s.host,
              port: s.port,
              database: s.database,
              weight: s.weight,
              up: h?.up ?? null,
              last_error: pool?.lastError ?? h?.lastError ?? null,
              pool: st ? { size: server.config.pool.size, total: st.total, idle: st.idle, active: st.active, creating: st.creating, waiting: st.waiting } : null,
              status: rb?.kind === 'remove' && rb.shard === s.id ? 'removing' : 'active',
            };
          }).concat(server.rebalancer.active && server.rebalancer.record?.kind === 'add' ? [adding(server)] : []),
        ),
    },
    ...rebalanceRoutes(server),
    {
      path: '/ring',
      summary: 'The consistent-hash ring: points and keyspace share per shard',
      handle: () => {
        const ring = currentRing(server);
        const view = metrics.ringView();
        const points = view?.ring === ring ? view.points : new Map(ring.shardIds.map((id) => [id, ring.points().filter((p) => p.shard === id).length]));
        const shares = view?.ring === ring ? view.shares : ring.shares();
        return json(200, {
          vnodes: ring.vnodes,
          points: ring.size,
          shards: ring.shards.map((s) => ({ id: s.id, weight: s.weight, points: points.get(s.id) ?? 0, share: shares.get(s.id) ?? 0 })),
        });
      },
    },
    {
      path: '/route',
      summary: 'The shard that owns a key of a sharded table (what `pgshard route` prints)',
      params: [
        { name: 'table', description: 'A sharded table named under "tables" in the configuration', required: true },
        { name: 'key', description: 'A shard key value, as text (e.g. 42, or a uuid)', required: true },
      ],
      responses: { '400': 'A parameter is missing, the table is not sharded, or the key is not of the key type.' },
      handle: async (url) => {
        const table = url.searchParams.get('table');
        const key = url.searchParams.get('key');
        if (!table || key === null)
          throw new HttpError(400, `/route needs the parameters table and key, e.g. /route?table=users&key=42 (missing: ${[!table && 'table', key === null && 'key'].filter(Boolean).join(', ')})`);
        await initHash();
        try {
          return json(200, routeKey({ ...server.config, shards: [...server.topology.shards] }, table, key));
        } catch (e) {
          if (e instanceof RouteKeyError) throw new HttpError(400, e.message);
          if (e instanceof KeyValueError) throw new HttpError(400, `${e.message}${e.hint ? ` (${e.hint})` : ''}`);
          throw e;
        }
      },
    },
    {
      path: '/openapi.json',
      summary: 'This description of the admin API (OpenAPI 3.0)',
      handle: () => json(200, openapi()),
    },
  ];
}

/** The shard a running rebalance is adding (not on the ring yet). */
function adding(server: PgShardServer): ReturnType<typeof shardView> {
  const r = server.rebalancer.record!;
  const s = r.to.find((x) => x.id === r.shard)!;
  return shardView(s, 'adding');
}

function shardView(s: ShardConfig, status: string) {
  return { id: s.id, host: s.host, port: s.port, database: s.database, weight: s.weight, up: null, last_error: null, pool: null, status };
}

// The configuration's shard, less the secret indirections that only make sense in a file on the host.
const shardBody = shardSchema
  .omit({ password_env: true, password_file: true })
  .refine((b) => !(b.sslmode === 'verify-ca' || b.sslmode === 'verify-full') || b.sslrootcert !== undefined, {
    message: 'sslmode verify-ca and verify-full need sslrootcert (a PEM CA file on the pgshard host)',
    path: ['sslrootcert'],
  });

/** The rebalance's progress as the API, the CLI and the console show it. */
export function rebalanceView(server: PgShardServer): object {
  const r = server.rebalancer.record;
  if (!r) return { state: 'none' };
  return {
    id: r.id,
    state: r.phase,
    kind: r.kind,
    shard: r.shard,
    rows_copied: r.rowsCopied,
    rows_scanned: r.rowsScanned,
    rows_total: r.rowsTotal,
    rows_cleaned: r.rowsCleaned,
    lag_bytes: server.rebalancer.active ? server.rebalancer.lagBytes : 0,
    pause_ms: r.pauseMs,
    cutover_attempts: r.cutoverAttempts,
    instance: r.owner ?? null,
    cancel_requested: r.cancelRequested === true,
    retrying: r.phase === 'failed' && r.pending ? r.pending.action : null,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    error: r.error,
    topology_version: server.topology.version,
  };
}

function rebalanceRoutes(server: PgShardServer): Route[] {
  const refused = (e: unknown): never => {
    if (e instanceof RebalanceError) throw new HttpError(e.status, e.message);
    if (e instanceof TopologyConflict) throw new HttpError(409, e.message);
    throw e;
  };
  return [
    {
      path: '/shards',
      method: 'post',
      summary: 'Add a shard: its share of the rows is copied to it while clients keep working, then the ring switches (202; follow GET /rebalance)',
      body: { id: 'string', host: 'string', port: 'integer', database: 'string', user: 'string', password: 'string', weight: 'integer', sslmode: 'string', sslrootcert: 'string', sslcert: 'string', sslkey: 'string' },
      responses: { '202': 'The rebalance started.', '400': 'The body is not a valid shard.', '409': 'A rebalance is already running, or the id is taken.' },
      handle: async (_url, req) => {
        const parsed = shardBody.safeParse(req.body ?? null);
        if (!parsed.success)
          throw new HttpError(
            400,
            `POST /shards needs a JSON body {id, host, port, database, user, password, weight}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
          );
        try {
          await server.rebalancer.addShard(parsed.data);
        } catch (e) {
          refused(e);
        }
        return json(202, rebalanceView(server));
      },
    },
    {
      path: '/shards/{id}',
      method: 'delete',
      summary: "Remove a shard: its rows move to the others first, then the ring switches (202; follow GET /rebalance)",
      pathParams: [{ name: 'id', description: 'The shard id' }],
      responses: { '202': 'The rebalance started.', '404': 'No such shard.', '409': 'A rebalance is already running, or it is the only shard.' },
      handle: async (_url, req) => {
        try {
          await server.rebalancer.removeShard(req.params.id!);
        } catch (e) {
          refused(e);
        }
        return json(202, rebalanceView(server));
      },
    },
    {
      path: '/instances',
      summary: 'The pgshard instances routing on this topology (several share a metadata database): heartbeat age and whether a cut-over waits for them',
      handle: async () => json(200, { topology: server.topology.where, topology_version: server.topology.version, instances: (await server.peers.list()).map((p) => ({ id: p.id, address: p.address, heartbeat_age_ms: p.heartbeatAgeMs, alive: p.alive, self: p.id === server.peers.instance })) }),
    },
    {
      path: '/rebalance',
      summary: 'The running (or last) rebalance: state, rows copied and total, replication lag, cut-over pause',
      handle: () => json(200, rebalanceView(server)),
    },
    {
      path: '/rebalance/cancel',
      method: 'post',
      summary: 'Cancel the running rebalance before its cut-over: copies are deleted, slots dropped, the ring stays',
      responses: { '202': 'Cancelling; GET /rebalance shows "cancelled" once rolled back.', '409': 'No rebalance is running, or it has already switched the ring.' },
      handle: async () => {
        try {
          await server.rebalancer.cancel();
        } catch (e) {
          refused(e);
        }
        return json(202, rebalanceView(server));
      },
    },
  ];
}

function round(s: number): number {
  return Math.round(s * 1e6) / 1e6;
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\./.test(v4);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Starts the admin API on cfg.host:cfg.port (0: any free port). */
export async function startAdmin(server: PgShardServer, metrics: Metrics, cfg: AdminConfig, log: Logger): Promise<AdminServer> {
  metrics.attach(server);
  server.rebalanceMetrics = metrics;
  const table: Route[] = routes(server, metrics, () => document);
  const patterns = table.map((r) => ({ route: r, re: new RegExp(`^${r.path.replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`) }));
  const document = openApiDocument(table, { tokenConfigured: cfg.token !== undefined });
  const tokenDigest = cfg.token !== undefined ? digest(cfg.token) : null;
  const alog = log.child({ component: 'admin' });

  const authorize = (req: http.IncomingMessage, route: Route): HttpError | null => {
    if (route.public) return null;
    if (tokenDigest) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
      if (m && timingSafeEqual(digest(m[1]!.trim()), tokenDigest)) return null;
      return new HttpError(
        401,
        m
          ? 'wrong bearer token: send the admin.token of the configuration as "Authorization: Bearer <token>"'
          : 'this admin API needs a token: send the admin.token of the configuration as "Authorization: Bearer <token>"',
      );
    }
    if (isLoopback(req.socket.remoteAddress)) return null;
    return new HttpError(
      403,
      'without admin.token in the configuration the admin API answers loopback clients only: connect from this host, or set admin.token and send it as "Authorization: Bearer <token>"',
    );
  };

  const handle = async (req: http.IncomingMessage): Promise<Reply> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const matches = patterns.flatMap(({ route, re }) => {
      const m = re.exec(url.pathname);
      return m ? [{ route, params: Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)])) }] : [];
    });
    if (!matches.length) throw new HttpError(404, `no such admin route ${url.pathname}: the admin API serves ${[...new Set(table.map((r) => r.path))].join(', ')}`);
    const method = req.method === 'HEAD' ? 'get' : (req.method ?? 'GET').toLowerCase();
    const match = matches.find((m) => (m.route.method ?? 'get') === method);
    if (!match) throw new MethodError(matches.map((m) => m.route.method ?? 'get'), `${url.pathname} answers ${allowed(matches.map((m) => m.route.method ?? 'get'))} only, not ${req.method}`);
    const route = match.route;
    const denied = authorize(req, route);
    if (denied) throw denied;
    const body = method === 'post' ? await readJson(req) : undefined;
    return route.handle(url, { url, params: match.params, body });
  };

  const httpServer = http.createServer((req, res) => {
    const t0 = performance.now();
    const path = (req.url ?? '/').split('?')[0]; // never the query string: /route carries key values
    handle(req)
      .catch((e: unknown): Reply => {
        if (e instanceof HttpError) {
          const headers: Record<string, string> = {};
          if (e.status === 401) headers['WWW-Authenticate'] = 'Bearer realm="pgshard admin"';
          if (e instanceof MethodError) headers.Allow = allowed(e.methods);
          return { status: e.status, body: { error: e.message }, headers };
        }
        alog.error({ err: e, path }, 'admin request failed');
        return json(500, { error: `internal error while answering ${path}: ${(e as Error).message}; see pgshard's log` });
      })
      .then((reply) => {
        const text = reply.text ? String(reply.body) : `${JSON.stringify(reply.body, null, 2)}\n`;
        res.writeHead(reply.status, {
          'Content-Type': reply.text?.contentType ?? 'application/json; charset=utf-8',
          'Content-Length': Buffer.byteLength(text),
          'Cache-Control': 'no-store',
          ...reply.headers,
        });
        res.end(req.method === 'HEAD' ? undefined : text);
        alog.debug({ method: req.method, path, status: reply.status, ms: Math.round(performance.now() - t0) }, 'admin request');
      })
      .catch((e: unknown) => {
        alog.error({ err: e, path }, 'admin response failed');
        res.destroy();
      });
  });
  httpServer.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(cfg.port, cfg.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  httpServer.on('error', (e) => alog.error({ err: e }, 'admin listener error'));
  const port = (httpServer.address() as AddressInfo).port;
  alog.info({ host: cfg.host, port, auth: tokenDigest ? 'bearer token' : 'loopback only' }, 'admin API listening');

  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      }),
  };
}
