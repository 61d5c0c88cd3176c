/**
 * Recording real client sessions for the protocol fuzzer. A recording relay (client → relay → pgshard)
 * keeps every byte each client sends, startup packet included; the workloads below drive psql, pgbench,
 * node-postgres and postgres.js through it. pgshard runs with `auth: { method: 'trust' }`, so the
 * recorded streams hold no password exchange and replay against any trust-configured pgshard.
 */
import net from 'node:net';
import pg from 'pg';
import postgres from 'postgres';
import { APP } from '../helpers/shards.js';
import { pgbench, psql } from '../helpers/tools.js';

export interface Recording {
  /** Workload and connection number, e.g. `pgbench-prepared#0`. */
  name: string;
  /** Everything the client sent on that connection, in order. */
  bytes: Buffer;
}

/** The tables the workloads use; created on the shard directly before recording and before replaying. */
export const SHARD_SETUP_SQL = `
drop table if exists pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, fuzz_kv;
create table pgbench_branches (bid int primary key, bbalance int, filler char(88));
create table pgbench_tellers (tid int primary key, bid int, tbalance int, filler char(84));
create table pgbench_accounts (aid int primary key, bid int, abalance int, filler char(84));
create table pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
insert into pgbench_branches select 1, 0;
insert into pgbench_tellers select g, 1, 0 from generate_series(1, 10) g;
insert into pgbench_accounts select g, 1, 0, '' from generate_series(1, 100000) g;
create table fuzz_kv (k int primary key, v text);
insert into fuzz_kv select g, 'v' || g from generate_series(1, 100) g;
`;

/** A TCP relay to `target` that records the client→server stream of every connection. */
export class RecordingRelay {
  private server: net.Server;
  private sockets = new Set<net.Socket>();
  readonly streams: { label: string; chunks: Buffer[] }[] = [];
  label = 'unlabelled';
  port = 0;

  constructor(private readonly target: number) {
    this.server = net.createServer((client) => {
      const rec = { label: this.label, chunks: [] as Buffer[] };
      this.streams.push(rec);
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.on('data', (c: Buffer) => {
        rec.chunks.push(Buffer.from(c));
        upstream.write(c);
      });
      upstream.on('data', (c: Buffer) => client.write(c));
      client.on('close', () => upstream.end());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  recordings(): Recording[] {
    const count = new Map<string, number>();
    return this.streams
      .filter((s) => s.chunks.length > 0)
      .map((s) => {
        const n = count.get(s.label) ?? 0;
        count.set(s.label, n + 1);
        return { name: `${s.label}#${n}`, bytes: Buffer.concat(s.chunks) };
      });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs every workload through the relay; throws when a client tool fails. */
export async function recordWorkloads(relay: RecordingRelay): Promise<void> {
  const port = relay.port;
  // Trust authentication: the tools must not need a password (PGPASSWORD is set to nothing).
  const noPassword = { password: '', env: { PGPASSWORD: '', PGSSLMODE: 'prefer' } };
  const check = (what: string, r: { code: number | null; stderr: string }) => {
    if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.slice(-500)}`);
  };

  relay.label = 'psql';
  check('psql -c', await psql(port, '', { ...noPassword, args: ['-c', 'select k, v from fuzz_kv where k < 5 order by k'] }));
  relay.label = 'psql-multi';
  check('psql script', await psql(port, "begin;\nupdate fuzz_kv set v = 'x' where k = 1;\ncommit;\nselect count(*) from fuzz_kv;\n", noPassword));

  for (const mode of ['simple', 'extended', 'prepared']) {
    relay.label = `pgbench-${mode}`;
    check(`pgbench -M ${mode}`, await pgbench(port, ['-n', '-t', '5', '-M', mode, '--random-seed=1'], { ...noPassword, timeoutMs: 60_000 }));
  }

  relay.label = 'pg';
  const client = new pg.Client({ host: '127.0.0.1', port, user: APP.user, database: APP.database, password: '' });
  await client.connect();
  await client.query('select 1 as one');
  await client.query('select k, v from fuzz_kv where k = $1', [3]);
  await client.query('select $1::text as a, $2::int as b', ['hello', 42]);
  await client.query('begin');
  await client.query('update fuzz_kv set v = $1 where k = $2', ['y', 2]);
  await client.query('commit');
  await client.query('select 1/0').catch(() => undefined);
  await client.query({ name: 'named-stmt', text: 'select v from fuzz_kv where k = $1', values: [4] });
  await client.query({ name: 'named-stmt', text: 'select v from fuzz_kv where k = $1', values: [5] });
  await client.end();

  relay.label = 'postgres.js';
  const sql = postgres({ host: '127.0.0.1', port, user: APP.user, database: APP.database, max: 1, onnotice: () => undefined, fetch_types: false });
  await Promise.all([
    sql`select ${1}::int as i`,
    sql`select k, v from fuzz_kv where k = ${7}`,
    sql`select ${'x'}::text || 'y' as s`,
    sql`select 1/0`.catch(() => undefined),
    sql`select ${2}::int as i`,
  ]);
  await sql.begin(async (tx) => {
    await tx`update fuzz_kv set v = ${'z'} where k = ${8}`;
  });
  await sql.end({ timeout: 1 });
  await sleep(100); // let the relay see the last bytes (Terminate)
}
