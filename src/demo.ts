/**
 * `npm start`: three real Postgres shards (embedded binaries, data kept under the working directory and
 * reused on the next start), a demo schema, a few thousand rows loaded through pgshard, and pgshard on
 * port 6432 in front of them. Ctrl-C stops everything.
 */
import { mkdir, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { PostgresCluster } from './embedded/cluster.js';
import { validateConfig } from './config/load.js';
import { createLogger } from './log.js';
import { PgShardServer } from './server/server.js';
import { runUntilSignal } from './server/signals.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, country text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS orders (id bigint NOT NULL, user_id bigint NOT NULL, amount numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, id));
INSERT INTO countries VALUES ('de','Germany'),('fr','France'),('jp','Japan'),('br','Brazil'),('us','United States'),('in','India')
  ON CONFLICT DO NOTHING;
`;

const USERS = 3000;
const ORDERS_PER_USER = 2;

export async function runDemo(opts: { dir: string; port: number }): Promise<void> {
  const log = createLogger();
  const dir = path.resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o755);
  log.info({ dir }, 'starting three embedded Postgres shards');
  const clusters = await Promise.all(
    [0, 1, 2].map((i) =>
      PostgresCluster.start({
        dataDir: path.join(dir, `shard${i}`),
        reuse: true,
        settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' },
        users: [{ name: 'app', password: 'app', superuser: true }],
        databases: [{ name: 'app', owner: 'app' }],
      }),
    ),
  );
  const stopShards = async () => {
    await Promise.all(clusters.map((c) => c.stop()));
  };
  try {
    for (const c of clusters) await c.query(SCHEMA, 'app');
    const doc = {
      listen: { host: '127.0.0.1', port: opts.port },
      users: [{ name: 'app', password: 'app' }],
      shards: clusters.map((c, i) => ({ id: `s${i}`, host: '127.0.0.1', port: c.port, database: 'app', user: 'app', password: 'app' })),
      ring: { vnodes: 256 },
      tables: {
        users: { shard_key: 'id', key_type: 'bigint' },
        orders: { shard_key: 'user_id', key_type: 'bigint' },
        countries: { reference: true },
      },
    };
    const cfg = validateConfig(doc, 'demo');
    const cfgFile = path.join(dir, 'pgshard.yaml');
    await writeFile(cfgFile, (await import('yaml')).stringify(doc));
    const server = new PgShardServer(cfg, log);
    const port = await server.start();
    await loadDemoData(port, log);
    const shardList = clusters.map((c, i) => `s${i}=127.0.0.1:${c.port}`).join(', ');
    console.log(`
pgshard is running on 127.0.0.1:${port} in front of three Postgres ${clusters[0]!.version} shards (${shardList}).

  Connect:      psql "postgres://app:app@127.0.0.1:${port}/app"

  Try:
    -- one shard: the row's key decides where it is read
    SELECT id, name, inet_server_port() AS shard_port FROM users WHERE id = 42;
    -- every shard: rows of all three are concatenated
    SELECT user_id, id, amount, inet_server_port() AS shard_port FROM orders WHERE amount > 995;
    -- where a key lives (from another terminal)
    node dist/cli.js route --config ${path.relative(process.cwd(), cfgFile)} --table users --key 42

Data is kept in ${path.relative(process.cwd(), dir) || '.'} and reused next time. Ctrl-C stops pgshard and the shards.
`);
    await runUntilSignal(server, 2000, stopShards);
  } catch (e) {
    log.error({ err: (e as Error).message }, 'demo failed');
    await stopShards();
    process.exit(1);
  }
}

/** Loads users and orders through pgshard, one row per statement, so each lands on its key's shard. */
async function loadDemoData(port: number, log: ReturnType<typeof createLogger>): Promise<void> {
  const conn = { host: '127.0.0.1', port, user: 'app', password: 'app', database: 'app' };
  const probe = new pg.Client(conn);
  await probe.connect();
  const have = await probe.query(`SELECT id FROM users WHERE id = $1`, [USERS]);
  await probe.end();
  if (have.rowCount) return;
  log.info({ users: USERS, orders: USERS * ORDERS_PER_USER }, 'loading demo data through pgshard');
  const countries = ['de', 'fr', 'jp', 'br', 'us', 'in'];
  const workers = 8;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const c = new pg.Client(conn);
      await c.connect();
      for (let id = w + 1; id <= USERS; id += workers) {
        await c.query('INSERT INTO users (id, name, email, country) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [id, `user ${id}`, `user${id}@example.com`, countries[id % countries.length]]);
        for (let o = 1; o <= ORDERS_PER_USER; o++) {
          const amount = ((id * 7919 + o * 104729) % 100000) / 100;
          await c.query('INSERT INTO orders (id, user_id, amount) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [o, id, amount]);
        }
      }
      await c.end();
    }),
  );
}
