/**
 * Connections the rebalance makes to shards (outside the pools: long snapshot transactions, replication
 * connections). Every value comes back as Postgres's text form and goes back as text parameters, so
 * rows are copied exactly whatever their types.
 */
import pg from 'pg';
import type { ShardConfig } from '../config/schema.js';

const asText = (v: string): string => v;
const textTypes = { getTypeParser: () => asText } as unknown as pg.CustomTypesConfig;

export type Row = (string | null)[];

export async function connect(shard: ShardConfig, replication = false): Promise<pg.Client> {
  const client = new pg.Client({
    host: shard.host,
    port: shard.port,
    database: shard.database,
    user: shard.user,
    password: shard.password,
    types: textTypes,
    application_name: 'pgshard-rebalance',
    ...(replication ? { replication: 'database' } : {}),
  } as pg.ClientConfig);
  // An error on an idle connection (the shard went away) must not crash pgshard; the next query fails.
  client.on('error', () => undefined);
  await client.connect();
  // Rows are moved, not written anew: foreign keys between tables copied in any order, and triggers
  // (which already fired where the row was written), stay out of the way, as in Postgres's own apply
  // workers. Needs superuser (or the role's SET privilege); without it they apply as usual.
  if (!replication) await client.query('SET session_replication_role = replica').catch(() => undefined);
  // Values travel in text form from one shard to another: written and read in the same styles whatever each
  // shard's defaults (ISO dates are read the same under every DateStyle; floats keep every digit).
  if (!replication) await client.query(`SET datestyle = 'ISO, MDY'; SET intervalstyle = 'postgres'; SET extra_float_digits = 3`);
  return client;
}

export async function rows(client: pg.Client, sql: string, params: unknown[] = []): Promise<Row[]> {
  // No parameters: the simple protocol (replication connections accept nothing else).
  const r = await client.query(params.length ? { text: sql, values: params, rowMode: 'array' } : { text: sql, rowMode: 'array' });
  return r.rows as Row[];
}

export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
export const literal = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** A table name as configured (`users`, `app.users`) in SQL. */
export function qualified(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? ident(name) : `${ident(name.slice(0, dot))}.${ident(name.slice(dot + 1))}`;
}

export async function end(client: pg.Client | null | undefined): Promise<void> {
  if (!client) return;
  await client.end().catch(() => undefined);
}
