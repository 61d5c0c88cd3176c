/**
 * What pgshard must know about a shard before it compares text the shard sorted: the database's default
 * collation (text sorts by its bytes only under "C"/"POSIX" or the builtin provider) and whether any
 * user column or domain uses another collation (RowDescription does not say which collation a column
 * has, so then text is not compared at all). Asked once per shard pool, again after a minute (DDL).
 */
import type { BackendConnection } from '../pool/backend.js';
import { runQuery } from '../pool/internal-query.js';
import type { ShardPool } from '../pool/pool.js';

export interface ShardCollation {
  /** Text under the default collation sorts by its UTF-8 bytes. */
  byteOrder: boolean;
  /** Some user column or domain has a collation other than the default, C, POSIX or ucs_basic. */
  otherCollations: boolean;
  /** Some collation in use is nondeterministic (equal text with different bytes). */
  nondeterministic: boolean;
  /** datcollate and provider, for messages. */
  describe: string;
}

export const COLLATION_PROBE = `SELECT d.datcollate, d.datlocprovider::text,
  coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
          WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attcollation <> 0
            AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)
            AND a.attcollation NOT IN (SELECT oid FROM pg_catalog.pg_collation WHERE collname IN ('default', 'C', 'POSIX', 'ucs_basic')))
  OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typcollation <> 0
            AND t.typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
            AND t.typcollation NOT IN (SELECT oid FROM pg_catalog.pg_collation WHERE collname IN ('default', 'C', 'POSIX', 'ucs_basic'))),
  EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE NOT collisdeterministic
            AND oid IN (SELECT attcollation FROM pg_catalog.pg_attribute UNION SELECT typcollation FROM pg_catalog.pg_type))
FROM pg_catalog.pg_database d WHERE d.datname = current_database()`;

const TTL_MS = 60_000;
const cache = new WeakMap<ShardPool, { at: number; value: ShardCollation }>();

export function cachedCollation(pool: ShardPool): ShardCollation | undefined {
  const c = cache.get(pool);
  return c !== undefined && Date.now() - c.at < TTL_MS ? c.value : undefined;
}

/** Asks the shard on a connection the caller holds (idle, no transaction). */
export async function probeCollation(pool: ShardPool, be: BackendConnection): Promise<ShardCollation> {
  const rows = await runQuery(be, COLLATION_PROBE);
  const [collate, provider, locale, other, nondet] = rows[0] ?? [];
  const byteOrder = provider === 'b' || (provider === 'c' && (collate === 'C' || collate === 'POSIX'));
  const value: ShardCollation = {
    byteOrder,
    otherCollations: other === 't',
    nondeterministic: nondet === 't',
    describe: provider === 'i' ? `database collation: ICU locale "${locale ?? '?'}"` : `database collation "${collate ?? '?'}" (provider ${provider === 'b' ? 'builtin' : 'libc'})`,
  };
  cache.set(pool, { at: Date.now(), value });
  return value;
}
