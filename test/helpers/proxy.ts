/**
 * pgshard in-process for integration tests. `startProxy(t, shards, overrides)` builds a config document
 * (listen 127.0.0.1 port 0, user app/app, shards s0..sN as app/app on database app, no tables), validates
 * it, starts a `PgShardServer` and stops it at the end of the tap test. Logs are silent unless
 * PGSHARD_TEST_LOG=<level> is set (then they go to stderr).
 */
import type { Server, Socket } from 'node:net';
import pino, { type Logger } from 'pino';
import pg from 'pg';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { PgShardServer } from '../../src/server/server.js';
import { APP, type Teardownable } from './shards.js';

export interface Proxy {
  port: number;
  server: PgShardServer;
  config: Config;
  /** postgres://app:app@127.0.0.1:port/app */
  url: string;
}

type Doc = Record<string, unknown>;

/** Overrides merge into the document; plain objects (pool, limits, auth, …) merge one level deep. */
export function proxyConfigDoc(shards: readonly { port: number }[], overrides: Doc = {}): Doc {
  const doc: Doc = {
    listen: { host: '127.0.0.1', port: 0 },
    users: [{ name: APP.user, password: APP.password }],
    shards: shards.map((s, i) => ({ id: `s${i}`, host: '127.0.0.1', port: s.port, database: APP.database, user: APP.user, password: APP.password })),
    tables: {},
  };
  for (const [k, v] of Object.entries(overrides)) {
    const cur = doc[k];
    doc[k] = isPlainObject(cur) && isPlainObject(v) ? { ...cur, ...v } : v;
  }
  return doc;
}

function isPlainObject(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function testLogger(): Logger {
  const level = process.env.PGSHARD_TEST_LOG;
  return level ? pino({ level }, pino.destination(2)) : pino({ level: 'silent' });
}

/** Client connections the listener holds open (sessions and connections still in startup or being refused). */
export function openConnections(proxy: Proxy): Promise<number> {
  const listener = (proxy.server as unknown as { server: Server | null }).server;
  return new Promise((resolve, reject) => (listener ? listener.getConnections((e, n) => (e ? reject(e) : resolve(n))) : resolve(0)));
}

export async function startProxy(t: Teardownable, shards: readonly { port: number }[], overrides: Doc = {}): Promise<Proxy> {
  const config = validateConfig(proxyConfigDoc(shards, overrides), 'test config');
  const server = new PgShardServer(config, testLogger());
  const port = await server.start();
  // Every client socket, so that teardown can end them if stop() does not (a stuck stop must not hang the suite;
  // the tests that are about stop() assert on it themselves).
  const sockets = new Set<Socket>();
  const listener = (server as unknown as { server: Server | null }).server;
  listener?.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  t.teardown(async () => {
    const stopping = server.stop(0);
    const done = await Promise.race([stopping.then(() => true), sleep(3000).then(() => false)]);
    if (!done) {
      process.stderr.write(`# pgshard stop(0) still waiting after 3 s with ${sockets.size} client socket(s) open; destroying them\n`);
      for (const s of sockets) s.destroy();
      await stopping;
    }
  });
  return { port, server, config, url: `postgres://${APP.user}:${APP.password}@127.0.0.1:${port}/${APP.database}` };
}

export type PgClientOptions = Omit<pg.ClientConfig, 'port'> & {
  /** Register `client.end()` as a teardown of this test (default: true when `t` is given). */
  t?: Teardownable;
};

/**
 * A connected node-postgres client (app/app on database app). Connection-level errors after connect
 * (the proxy or a shard going away) are recorded in `client.errors` instead of crashing the test.
 */
export async function pgClient(port: number, opts: PgClientOptions = {}): Promise<pg.Client & { errors: Error[] }> {
  const { t, ...cfg } = opts;
  const client = new pg.Client({
    host: '127.0.0.1',
    user: APP.user,
    password: APP.password,
    database: APP.database,
    connectionTimeoutMillis: 10_000,
    ...cfg,
    port,
  }) as pg.Client & { errors: Error[] };
  client.errors = [];
  client.on('error', (e) => client.errors.push(e));
  await client.connect();
  t?.teardown(() => closeClient(client));
  return client;
}

/** Ends a node-postgres client; one whose connection broke may never finish end(), so its socket is destroyed after 1 s. */
export async function closeClient(client: pg.Client): Promise<void> {
  await Promise.race([client.end().catch(() => undefined), sleep(1000)]);
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

/** A client connected straight to a shard, as app/app (the reference for "what Postgres says"). */
export function directClient(shard: { port: number }, opts: PgClientOptions = {}): Promise<pg.Client & { errors: Error[] }> {
  return pgClient(shard.port, opts);
}

/** Runs `fn` and returns the error it throws (or null), for comparing failures with direct Postgres. */
export async function errorOf(fn: () => Promise<unknown>): Promise<(Error & { code?: string; severity?: string }) | null> {
  try {
    await fn();
    return null;
  } catch (e) {
    return e as Error & { code?: string };
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
