/**
 * The commander wiring of `pgshard shards …` and `pgshard rebalance …` (logic in cli-admin.ts).
 */
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { AdminCliError, adminTarget, call, formatProgress, formatShards, waitForRebalance, type RebalanceView, type ShardView } from './cli-admin.js';

interface Common {
  config?: string;
  admin?: string;
  token?: string;
}

export function registerAdminCommands(program: Command, loadConfig: (file: string | undefined) => Config): void {
  const common = (c: Command) =>
    c
      .option('-c, --config <file>', 'configuration file: its admin section says where the API is (env PGSHARD_CONFIG)')
      .option('--admin <url>', 'admin API base URL, e.g. http://127.0.0.1:9187')
      .option('--token <token>', 'admin bearer token (env PGSHARD_ADMIN_TOKEN; default: admin.token of the configuration)');
  const target = (o: Common) => adminTarget(o, o.admin && !o.config && !process.env.PGSHARD_CONFIG ? null : loadConfig(o.config));
  const run = (fn: (o: never, ...a: never[]) => Promise<number>) => async (...args: unknown[]) => {
    try {
      process.exitCode = await (fn as (...a: unknown[]) => Promise<number>)(...args);
    } catch (e) {
      if (!(e instanceof AdminCliError)) throw e;
      console.error(`pgshard: ${e.message}`);
      process.exitCode = 1;
    }
  };
  const finish = (v: RebalanceView) => (v.state === 'done' ? 0 : 1);

  const shards = program.command('shards').description('list, add and remove shards (through the admin API)');
  common(shards.command('list').description('the shards, their health and status'))
    .option('--json', 'print JSON')
    .action(
      run(async (o: Common & { json?: boolean }) => {
        const list = await call<ShardView[]>(target(o), 'GET', '/shards');
        console.log(o.json ? JSON.stringify(list, null, 2) : formatShards(list));
        return 0;
      }),
    );
  common(shards.command('add').description('add a shard: its share of the rows moves to it while clients keep working'))
    .requiredOption('--id <id>', 'shard id (letters, digits, _ and -)')
    .requiredOption('--host <host>', 'shard host')
    .option('--port <port>', 'shard port', '5432')
    .requiredOption('--database <name>', 'database on the shard')
    .requiredOption('--user <name>', 'user pgshard connects as')
    .option('--password <password>', 'password (env PGSHARD_SHARD_PASSWORD)')
    .option('--weight <n>', 'relative share of the keyspace', '1')
    .option('--no-wait', 'return once the rebalance has started')
    .action(
      run(async (o: Common & { id: string; host: string; port: string; database: string; user: string; password?: string; weight: string; wait: boolean }) => {
        const t = target(o);
        const password = o.password ?? process.env.PGSHARD_SHARD_PASSWORD;
        await call(t, 'POST', '/shards', { id: o.id, host: o.host, port: Number(o.port), database: o.database, user: o.user, ...(password ? { password } : {}), weight: Number(o.weight) });
        if (!o.wait) {
          console.log(`adding shard ${o.id}: follow with pgshard rebalance status`);
          return 0;
        }
        return finish(await waitForRebalance(t, process.stdout));
      }),
    );
  common(shards.command('remove').description('remove a shard: its rows move to the others first').argument('<id>', 'shard id'))
    .option('--no-wait', 'return once the rebalance has started')
    .action(
      run(async (id: string, o: Common & { wait: boolean }) => {
        const t = target(o);
        await call(t, 'DELETE', `/shards/${encodeURIComponent(id)}`);
        if (!o.wait) {
          console.log(`removing shard ${id}: follow with pgshard rebalance status`);
          return 0;
        }
        return finish(await waitForRebalance(t, process.stdout));
      }),
    );

  const rebalance = program.command('rebalance').description('the running rebalance (through the admin API)');
  common(rebalance.command('status').description('state, rows copied, lag and cut-over pause'))
    .option('--json', 'print JSON')
    .option('--wait', 'wait until the rebalance ends (progress bar on a terminal)')
    .action(
      run(async (o: Common & { json?: boolean; wait?: boolean }) => {
        const t = target(o);
        if (o.wait) return finish(await waitForRebalance(t, process.stdout));
        const v = await call<RebalanceView>(t, 'GET', '/rebalance');
        console.log(o.json ? JSON.stringify(v, null, 2) : formatProgress(v));
        return 0;
      }),
    );
  common(rebalance.command('cancel').description('cancel the running rebalance before its cut-over (copies are rolled back)'))
    .option('--no-wait', 'return once cancelling has started')
    .action(
      run(async (o: Common & { wait: boolean }) => {
        const t = target(o);
        await call(t, 'POST', '/rebalance/cancel');
        if (!o.wait) {
          console.log('cancelling: follow with pgshard rebalance status');
          return 0;
        }
        const v = await waitForRebalance(t, process.stdout);
        return v.state === 'cancelled' ? 0 : 1;
      }),
    );
}
