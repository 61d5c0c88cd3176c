import { z } from 'zod';

/**
 * The configuration file's shape. Keys are snake_case because they are written by people in YAML;
 * every default lives here so that the rest of the code reads one resolved object.
 */

const authMethod = z.enum(['trust', 'md5', 'scram-sha-256']);
export type AuthMethod = z.infer<typeof authMethod>;

const user = z
  .object({
    name: z.string().min(1),
    /** Plain password, or an `md5…` hash, or a `SCRAM-SHA-256$…` verifier as stored by Postgres in pg_authid. */
    password: z.string().optional(),
    /** The password from an environment variable or a file instead (see config/secrets.ts). */
    password_env: z.string().min(1).optional(),
    password_file: z.string().min(1).optional(),
    /** Overrides the top-level `auth.method` for this user. */
    auth: authMethod.optional(),
  })
  .strict();

/** One shard, as the configuration lists it (also the body of the admin API's POST /shards). */
export const shardSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_-]+$/, 'shard ids are letters, digits, _ and -'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1),
    user: z.string().min(1),
    password: z.string().optional(),
    password_env: z.string().min(1).optional(),
    password_file: z.string().min(1).optional(),
    /** Relative share of the keyspace: the shard gets vnodes × weight points on the ring. */
    weight: z.number().int().min(1).max(100).default(1),
    /** TLS to the shard, as libpq's sslmode; verify-ca and verify-full need sslrootcert (PEM CA file). */
    sslmode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).default('prefer'),
    sslrootcert: z.string().optional(),
    /** A client certificate and key (PEM) for shards that ask for one. */
    sslcert: z.string().optional(),
    sslkey: z.string().optional(),
  })
  .strict();

const keyType = z.enum(['bigint', 'int', 'text', 'uuid']);
export type KeyType = z.infer<typeof keyType>;

const shardedTable = z
  .object({
    shard_key: z.string().min(1),
    key_type: keyType.default('bigint'),
    /** `refuse`: a statement on this table that would reach several shards is an error (a guardrail). */
    cross_shard: z.enum(['allow', 'refuse']).default('allow'),
    /** pgshard generates the key of an INSERT that omits it: 64-bit ids, or ids below 2^53 for JavaScript clients. */
    generated: z.enum(['int64', 'int53']).optional(),
  })
  .strict();

const referenceTable = z.object({ reference: z.literal(true) }).strict();

const table = z.union([shardedTable, referenceTable]);

const auth = z
  .object({
    method: authMethod.default('scram-sha-256'),
    /**
     * Failed logins from one address beyond this many space its further attempts by login_delay_base_ms,
     * doubling per failure up to login_delay_max_ms (0: no throttling); a successful login resets it.
     */
    login_delay_after_failures: z.number().int().min(0).default(3),
    login_delay_base_ms: z.number().int().min(1).default(250),
    login_delay_max_ms: z.number().int().min(0).default(10_000),
  })
  .strict();

const pool = z
  .object({
    /** transaction: a backend is held for one transaction (or one statement outside one); session: for the client's life. */
    mode: z.enum(['transaction', 'session']).default('transaction'),
    size: z.number().int().min(1).max(10000).default(20),
    min_idle: z.number().int().min(0).default(0),
    idle_timeout_ms: z.number().int().min(0).default(600_000),
    connect_timeout_ms: z.number().int().min(1).default(5_000),
    /** TCP keepalive on backend sockets: the first probe after this much silence (dead shard hosts are noticed). */
    keepalive_idle_ms: z.number().int().min(1000).default(30_000),
    checkout_timeout_ms: z.number().int().min(1).default(5_000),
    /**
     * Transaction mode: single-statement reads outside a transaction are pipelined from many clients onto
     * at most this many connections per shard (0: off; every statement leases a connection).
     */
    pipeline_connections: z.number().int().min(0).default(8),
    /**
     * Statements outstanding on one pipelined connection before a session leases a connection instead;
     * another connection joins the pipeline once every one has half this many.
     */
    pipeline_depth: z.number().int().min(1).default(16),
  })
  .strict();

const limits = z
  .object({
    /** The largest frontend message accepted; checked on the length prefix before anything is allocated. */
    max_message_bytes: z.number().int().min(1024).default(256 * 1024 * 1024),
    max_client_connections: z.number().int().min(1).default(5000),
    max_prepared_statements_per_client: z.number().int().min(1).default(10_000),
    statement_cache_size: z.number().int().min(1).default(10_000),
    /** Timeouts (ms, 0 = off) as Postgres's idle_session_timeout, idle_in_transaction_session_timeout, statement_timeout. */
    idle_client_timeout_ms: z.number().int().min(0).default(0),
    idle_in_transaction_timeout_ms: z.number().int().min(0).default(0),
    statement_timeout_ms: z.number().int().min(0).default(0),
    /** A connection that has not finished startup and authentication by then is closed (authentication_timeout). */
    startup_timeout_ms: z.number().int().min(100).default(60_000),
  })
  .strict();

const transactions = z
  .object({
    /** Names this instance in global transaction ids; instances sharing shards need different ids. */
    instance_id: z.string().regex(/^[A-Za-z0-9]+$/, 'letters and digits only').optional(),
    /** The two-phase commit decision log (fsynced). Default: .pgshard/txlog-<instance>.jsonl */
    log_file: z.string().optional(),
    /** How often prepared transactions left by a crash are looked for and finished. */
    recovery_interval_ms: z.number().int().min(100).default(30_000),
    /**
     * In a transaction on several shards, a lock wait longer than this is taken for a distributed deadlock
     * (which no single shard can see) and the waiting statement fails with SQLSTATE 40P01. 0 = no bound.
     */
    deadlock_timeout_ms: z.number().int().min(0).default(5_000),
  })
  .strict();

const rebalance = z
  .object({
    /** At cut-over, statements on moving keys wait at most this long; past it the cut-over is retried later. */
    max_pause_ms: z.number().int().min(10).max(60_000).default(2000),
    /** Cut-over starts once the changes not yet applied on the new owners are at most this many bytes of WAL. */
    max_lag_bytes: z.number().int().min(0).default(64 * 1024),
    /** Rows per statement when copying and when deleting moved rows. */
    batch_rows: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict();

/**
 * The Postgres database that several pgshard instances share for the topology, the rebalance state, the
 * instances' heartbeats and the two-phase commit decisions (src/topology/pg-store.ts). Without it one
 * instance keeps them in local files.
 */
const metadata = shardSchema
  .omit({ id: true, weight: true })
  .extend({
    /** The schema pgshard creates its tables in. */
    schema: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier').default('pgshard'),
    /** How often an instance records that it is alive. */
    heartbeat_ms: z.number().int().min(50).default(1000),
    /**
     * An instance not heard of for this long is taken for gone: a cut-over stops waiting for it, and another
     * instance may take over its rebalance. An instance that cannot record its heartbeat for this long holds
     * statements on moving keys itself, so that it never routes on a ring the others have left.
     */
    lease_ms: z.number().int().min(200).default(5000),
    /** Besides LISTEN/NOTIFY, the store is read this often (a notification lost with a connection is caught up). */
    poll_ms: z.number().int().min(50).default(2000),
  })
  .strict();
export type MetadataConfig = z.infer<typeof metadata>;

export const configSchema = z
  .object({
    listen: z
      .object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(6432) })
      .strict()
      .default({ host: '127.0.0.1', port: 6432 }),
    /** The database name clients connect to. Defaults to the first shard's database. */
    database: z.string().optional(),
    auth: auth.default(auth.parse({})),
    users: z.array(user).min(1, 'at least one user is needed to let clients in'),
    shards: z.array(shardSchema).min(1, 'at least one shard is needed'),
    ring: z.object({ vnodes: z.number().int().min(1).max(100_000).default(256) }).strict().default({ vnodes: 256 }),
    tables: z.record(z.string(), table).default({}),
    /** What a statement on a table not named under `tables` does: treat it as a reference table, or refuse it. */
    unknown_tables: z.enum(['reference', 'refuse']).default('reference'),
    /**
     * Processes serving clients (node:cluster, sharing the listening ports); 1: this process alone. Each
     * worker has its own pools (pool.size each), sessions and limits, and node id ids.node_id + its index.
     */
    workers: z.number().int().min(1).max(64).default(1),
    /** Generated keys: this instance's node id (int64 ids: 0–1023, int53 ids: 0–63); instances need different ones. */
    ids: z.object({ node_id: z.number().int().min(0).max(1023).default(0) }).strict().default({ node_id: 0 }),
    /** Log the routing decision of every statement. */
    dry_run: z.boolean().default(false),
    pool: pool.default(pool.parse({})),
    limits: limits.default(limits.parse({})),
    transactions: transactions.default(transactions.parse({})),
    tls: z.object({ cert: z.string(), key: z.string() }).strict().optional(),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        slow_statement_ms: z.number().min(0).default(1000),
      })
      .strict()
      .default({ level: 'info', slow_statement_ms: 1000 }),
    admin: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535),
        token: z.string().optional(),
        token_env: z.string().min(1).optional(),
        token_file: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /** Where the shard list, the ring's version and the rebalance state are kept (default: under .pgshard/). */
    topology: z.object({ file: z.string().min(1).optional() }).strict().optional(),
    metadata: metadata.optional(),
    rebalance: rebalance.default(rebalance.parse({})),
    /** The SQL admin console (SHOW SHARDS, …): the database name that reaches it, and who may (default: every user). */
    console: z
      .object({ enabled: z.boolean().default(true), database: z.string().min(1).default('pgshard'), users: z.array(z.string().min(1)).optional() })
      .strict()
      .default({ enabled: true, database: 'pgshard' }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.admin && onlyOneSecret(c.admin.token, c.admin.token_env, c.admin.token_file) > 1)
      ctx.addIssue({ code: 'custom', path: ['admin'], message: 'give one of token, token_env, token_file' });
    // Without a token the API would answer loopback clients only; bound beyond loopback that is a mistake.
    if (c.admin && onlyOneSecret(c.admin.token, c.admin.token_env, c.admin.token_file) === 0 && !/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(c.admin.host))
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'host'],
        message: `the admin API on "${c.admin.host}" is reachable beyond this host: set admin.token (or token_env / token_file), or bind it to 127.0.0.1`,
      });
    for (const [name, t] of Object.entries(c.tables)) {
      if ('generated' in t && t.generated && t.key_type !== 'bigint')
        ctx.addIssue({ code: 'custom', path: ['tables', name, 'generated'], message: 'generated keys need key_type: bigint' });
      if ('generated' in t && t.generated === 'int53' && c.ids.node_id > 63)
        ctx.addIssue({ code: 'custom', path: ['ids', 'node_id'], message: 'int53 ids allow node ids 0–63' });
    }
    const ids = new Set<string>();
    c.shards.forEach((s, i) => {
      if (onlyOneSecret(s.password, s.password_env, s.password_file) > 1)
        ctx.addIssue({ code: 'custom', path: ['shards', i], message: 'give one of password, password_env, password_file' });
      if ((s.sslmode === 'verify-ca' || s.sslmode === 'verify-full') && !s.sslrootcert)
        ctx.addIssue({ code: 'custom', path: ['shards', i, 'sslrootcert'], message: `sslmode ${s.sslmode} needs sslrootcert: the CA file that signed the shard's certificate` });
      if ((s.sslcert === undefined) !== (s.sslkey === undefined))
        ctx.addIssue({ code: 'custom', path: ['shards', i, s.sslcert === undefined ? 'sslcert' : 'sslkey'], message: 'sslcert and sslkey go together' });
      if (ids.has(s.id)) ctx.addIssue({ code: 'custom', path: ['shards', i, 'id'], message: `duplicate shard id "${s.id}"` });
      ids.add(s.id);
    });
    if (c.ids.node_id + c.workers - 1 > 1023)
      ctx.addIssue({ code: 'custom', path: ['workers'], message: `worker k generates ids as node ids.node_id + k: node id ${c.ids.node_id} with ${c.workers} workers passes 1023` });
    if (c.workers > 1 && Object.values(c.tables).some((t) => 'generated' in t && t.generated === 'int53') && c.ids.node_id + c.workers - 1 > 63)
      ctx.addIssue({ code: 'custom', path: ['workers'], message: `int53 ids allow node ids 0–63: node id ${c.ids.node_id} with ${c.workers} workers passes it` });
    if (c.metadata && c.topology?.file)
      ctx.addIssue({ code: 'custom', path: ['topology', 'file'], message: 'the topology is kept in the metadata database when `metadata` is set: remove topology.file' });
    if (c.metadata && onlyOneSecret(c.metadata.password, c.metadata.password_env, c.metadata.password_file) > 1)
      ctx.addIssue({ code: 'custom', path: ['metadata'], message: 'give one of password, password_env, password_file' });
    if (c.metadata && c.metadata.lease_ms < 2 * c.metadata.heartbeat_ms)
      ctx.addIssue({ code: 'custom', path: ['metadata', 'lease_ms'], message: `lease_ms must be at least twice heartbeat_ms (${c.metadata.heartbeat_ms}), or a live instance would be taken for gone` });
    if (c.console.enabled && c.console.database === (c.database ?? c.shards[0]?.database))
      ctx.addIssue({ code: 'custom', path: ['console', 'database'], message: `"${c.console.database}" is also the application database: give the console another name` });
    c.console.users?.forEach((name, i) => {
      if (!c.users.some((u) => u.name === name)) ctx.addIssue({ code: 'custom', path: ['console', 'users', i], message: `"${name}" is not one of the users` });
    });
    const names = new Set<string>();
    c.users.forEach((u, i) => {
      if (names.has(u.name)) ctx.addIssue({ code: 'custom', path: ['users', i, 'name'], message: `duplicate user "${u.name}"` });
      names.add(u.name);
      const method = u.auth ?? c.auth.method;
      if (onlyOneSecret(u.password, u.password_env, u.password_file) > 1)
        ctx.addIssue({ code: 'custom', path: ['users', i], message: 'give one of password, password_env, password_file' });
      if (method !== 'trust' && u.password === undefined && u.password_env === undefined && u.password_file === undefined)
        ctx.addIssue({ code: 'custom', path: ['users', i, 'password'], message: `user "${u.name}" needs a password for ${method} authentication` });
    });
  });

function onlyOneSecret(...sources: (string | undefined)[]): number {
  return sources.filter((x) => x !== undefined).length;
}

export type Config = z.infer<typeof configSchema>;
export type ShardConfig = Config['shards'][number];
export type UserConfig = Config['users'][number];
export type ShardedTableConfig = z.infer<typeof shardedTable>;
export type TableConfig = z.infer<typeof table>;
export type PoolConfig = Config['pool'];
export type RebalanceConfig = Config['rebalance'];

export function isShardedTable(t: TableConfig): t is ShardedTableConfig {
  return 'shard_key' in t;
}
