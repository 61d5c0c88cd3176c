#!/usr/bin/env node
/**
 * The `pgshard` command: start (with a config file), demo (three embedded shards, no config), route
 * (where a key lives), check-config.
 */
import { Command } from 'commander';
import { PGSHARD_VERSION } from './version.js';
import { ConfigError, loadConfig } from './config/load.js';
import { createLogger } from './log.js';
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { instanceId, PgShardServer } from './server/server.js';
import { Primary } from './cluster/primary.js';
import { WorkerLink } from './cluster/worker-link.js';
import { workerInstance } from './cluster/messages.js';
import { initHash } from './routing/hash.js';
import { routeKey } from './routing/route-cli.js';
import { runUntilSignal } from './server/signals.js';
import { loadCredentials } from './auth/credentials.js';
import { Metrics } from './admin/metrics.js';
import { startAdmin, type AdminServer } from './admin/http.js';

const program = new Command();
program.name('pgshard').description('A Postgres sharding proxy').version(PGSHARD_VERSION);

function configPath(opt: string | undefined): string {
  const p = opt ?? process.env.PGSHARD_CONFIG;
  if (!p) {
    console.error('pgshard: no configuration file: pass --config FILE or set PGSHARD_CONFIG (see config/pgshard.example.yaml)');
    process.exit(2);
  }
  return p;
}

function load(file: string) {
  try {
    return loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
}

program
  .command('start')
  .description('run pgshard with a configuration file')
  .option('-c, --config <file>', 'configuration file (env PGSHARD_CONFIG)')
  .option('--grace <ms>', 'how long SIGTERM waits for open transactions', '10000')
  .action(async (opts: { config?: string; grace: string }) => {
    const cfg = load(configPath(opts.config));
    let log = createLogger(process.env.PGSHARD_LOG_LEVEL ?? cfg.log.level);
    if (cfg.workers > 1 && cluster.isPrimary) {
      const primary = new Primary(cfg, log, { instance: instanceId(cfg), graceMs: Number(opts.grace) });
      primary.start();
      const stop = (sig: NodeJS.Signals) => void primary.stop(sig).then(() => setTimeout(() => process.exit(0), 50));
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      return;
    }
    let link: WorkerLink | null = null;
    if (cluster.isWorker) {
      const index = Number(process.env.PGSHARD_WORKER_INDEX);
      link = new WorkerLink(workerInstance(instanceId(cfg), index), index);
      log = log.child({ worker: index });
    }
    const server = new PgShardServer(cfg, log, link ? { worker: { link } } : {});
    const metrics = cfg.admin ? new Metrics() : null;
    if (metrics) server.observer = metrics;
    if (metrics && link) {
      // The primary asks every worker for its registry and answers /metrics with the combination.
      AggregatorRegistry.setRegistries([metrics.registry]);
      new AggregatorRegistry();
      metrics.aggregate = () => link.clusterMetrics();
    }
    let admin: AdminServer | null = null;
    try {
      await server.start();
      if (cfg.admin && metrics) admin = await startAdmin(server, metrics, cfg.admin, log);
    } catch (e) {
      log.fatal({ err: (e as Error).message }, 'could not start');
      process.exit(1);
    }
    await runUntilSignal(server, Number(opts.grace), async () => {
      await admin?.close();
      metrics?.close();
    });
    // A worker whose primary is gone (even SIGKILLed) stops: nobody would keep its topology in step.
    if (link) process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  });

program
  .command('check-config')
  .description('validate a configuration file and exit (0 when valid)')
  .argument('<file>')
  .action((file: string) => {
    const cfg = load(file);
    try {
      loadCredentials(cfg.users, { iterations: 1 }); // checks SCRAM verifiers and md5 hashes parse
    } catch (e) {
      console.error(`invalid configuration in ${file}:\n  - users: ${(e as Error).message}`);
      process.exit(2);
    }
    console.log(`${file}: valid (${cfg.shards.length} shard(s), ${Object.keys(cfg.tables).length} table(s), listening on ${cfg.listen.host}:${cfg.listen.port})`);
  });

program
  .command('route')
  .description('print the shard that owns a key of a sharded table')
  .option('-c, --config <file>', 'configuration file (env PGSHARD_CONFIG)')
  .requiredOption('-t, --table <name>', 'sharded table')
  .requiredOption('-k, --key <value>', 'shard key value')
  .action(async (opts: { config?: string; table: string; key: string }) => {
    const cfg = load(configPath(opts.config));
    await initHash();
    try {
      const r = routeKey(cfg, opts.table, opts.key);
      console.log(`${r.shard}\t(table ${r.table}, ${r.keyType} key ${r.canonical})`);
    } catch (e) {
      console.error(`pgshard route: ${(e as Error).message}`);
      process.exit(1);
    }
  });

program
  .command('demo', { isDefault: false })
  .description('start three embedded Postgres shards with a demo schema and run pgshard in front of them')
  .option('--dir <path>', 'where the shards keep their data', '.pgshard/demo')
  .option('--port <port>', 'port pgshard listens on', '6432')
  .action(async (opts: { dir: string; port: string }) => {
    const { runDemo } = await import('./demo.js');
    await runDemo({ dir: opts.dir, port: Number(opts.port) });
  });

// shards list|add|remove, rebalance status|cancel: the admin API (src/admin/cli-admin.ts).
const { registerAdminCommands } = await import('./admin/cli-commands.js');
registerAdminCommands(program, (file) => load(configPath(file)));

program.parseAsync(process.argv).catch((e) => {
  console.error(`pgshard: ${(e as Error).message}`);
  process.exit(1);
});
