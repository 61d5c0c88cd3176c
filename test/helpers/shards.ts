/**
 * Real Postgres shards for integration tests: `startShards(n)` starts n clusters in parallel, each
 * with the superuser role `app` (password `app`, scram-sha-256 over TCP) owning the database `app`,
 * max_prepared_transactions=100 and wal_level=logical. `withShards(t, n)` also stops them at the
 * end of the tap test. Data lives under os.tmpdir()/pgshard-test-*; set PGSHARD_KEEP_DATA=1 to keep it.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  PostgresCluster,
  type ClusterDatabase,
  type ClusterUser,
  type HbaMethod,
} from '../../src/embedded/cluster.js';

export const APP = { user: 'app', password: 'app', database: 'app' } as const;

export interface StartShardsOptions {
  /** Extra postgresql.conf settings for every shard. */
  settings?: Record<string, string | number>;
  /** pg_hba method for TCP connections (default scram-sha-256). */
  auth?: HbaMethod;
  /** Server bin directory (default: embedded 18.4, else system). */
  bin?: string;
  /** Roles and databases besides app/app. */
  users?: ClusterUser[];
  databases?: ClusterDatabase[];
  /** Keep the data directories after stop() (also PGSHARD_KEEP_DATA=1). */
  keepData?: boolean;
}

export interface Shards {
  clusters: PostgresCluster[];
  ports: number[];
  /** The directory holding `shard0`, `shard1`, … */
  root: string;
  /** Stops every shard (fast shutdown) and removes the data. Idempotent. */
  stop(): Promise<void>;
}

export async function startShards(n: number, opts: StartShardsOptions = {}): Promise<Shards> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'pgshard-test-'));
  await chmod(root, 0o755); // the Postgres OS user must reach its data directory below
  const keep = opts.keepData ?? process.env.PGSHARD_KEEP_DATA === '1';
  const removeRoot = (): Promise<void> => (keep ? Promise.resolve() : rm(root, { recursive: true, force: true }));

  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) =>
      PostgresCluster.start({
        dataDir: path.join(root, `shard${i}`),
        auth: opts.auth ?? 'scram-sha-256',
        bin: opts.bin,
        settings: { max_prepared_transactions: 100, wal_level: 'logical', ...opts.settings },
        users: [{ name: APP.user, password: APP.password, superuser: true }, ...(opts.users ?? [])],
        databases: [{ name: APP.database, owner: APP.user }, ...(opts.databases ?? [])],
      }),
    ),
  );
  const clusters = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(clusters.map((c) => c.stop()));
    await removeRoot();
    throw failed.reason;
  }

  let stopping: Promise<void> | undefined;
  return {
    clusters,
    ports: clusters.map((c) => c.port),
    root,
    stop: () =>
      (stopping ??= (async () => {
        await Promise.all(clusters.map((c) => c.stop()));
        await removeRoot();
      })()),
  };
}

/** The part of a tap `Test` that withShards needs. */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

/** startShards, with `t.teardown(stop)` registered. */
export async function withShards(t: Teardownable, n: number, opts?: StartShardsOptions): Promise<Shards> {
  const shards = await startShards(n, opts);
  t.teardown(() => shards.stop());
  return shards;
}
