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

interface Route extends RouteDoc {
  handle(url: URL): Promise<Reply> | Reply;
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
      summary: 'The shards: address, weight, health and pool state (no passwords)',
      handle: () =>
        json(
          200,
          server.topology.shards.map((s) => {
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
            };
          }),
        ),
    },
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
  const table: Route[] = routes(server, metrics, () => document);
  const byPath = new Map(table.map((r) => [r.path, r]));
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
    const route = byPath.get(url.pathname);
    if (!route) throw new HttpError(404, `no such admin route ${url.pathname}: the admin API serves ${table.map((r) => r.path).join(', ')}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${route.path} answers GET (and HEAD) only, not ${req.method}`);
    const denied = authorize(req, route);
    if (denied) throw denied;
    return route.handle(url);
  };

  const httpServer = http.createServer((req, res) => {
    const t0 = performance.now();
    const path = (req.url ?? '/').split('?')[0]; // never the query string: /route carries key values
    handle(req)
      .catch((e: unknown): Reply => {
        if (e instanceof HttpError) {
          const headers: Record<string, string> = {};
          if (e.status === 401) headers['WWW-Authenticate'] = 'Bearer realm="pgshard admin"';
          if (e.status === 405) headers.Allow = 'GET, HEAD';
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
