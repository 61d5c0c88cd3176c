import { isShardedTable, type Config, type KeyType } from '../config/schema.js';
import { canonicalFromText, canonicalToString } from './canonical.js';
import { hash64 } from './hash.js';
import { HashRing } from './ring.js';

/**
 * `pgshard route --table users --key 42`: where a key lives, and why. Call `await initHash()` first.
 */

export interface RouteKeyResult {
  table: string;
  keyType: KeyType;
  /** The key's canonical form (canonical.ts), the text that is hashed. */
  canonical: string;
  /** xxHash64 of the canonical form: the key's position on the ring, 16 hex digits. */
  hash: string;
  shard: string;
  /** The ring point that owns the key (the first point at or after `hash`), 16 hex digits. */
  point: string;
}

/** A `route` request that has no answer: an unknown or reference table. */
export class RouteKeyError extends Error {
  override readonly name = 'RouteKeyError';
}

const hex64 = (v: bigint): string => v.toString(16).padStart(16, '0');

/** Throws RouteKeyError for a table that is not sharded, KeyValueError for a key that is not of the key type. */
export function routeKey(config: Config, table: string, key: string): RouteKeyResult {
  const name = resolveTable(config, table);
  const t = config.tables[name]!;
  if (!isShardedTable(t))
    throw new RouteKeyError(
      `table "${name}" is a reference table: it lives on every shard (${config.shards.map((s) => s.id).join(', ')}), so no key routes it`,
    );
  const ring = HashRing.build(config.shards, config.ring.vnodes);
  const bytes = canonicalFromText(t.key_type, key);
  const hash = hash64(bytes);
  const owner = ring.pointFor(hash);
  return { table: name, keyType: t.key_type, canonical: canonicalToString(bytes), hash: hex64(hash), shard: owner.shard, point: hex64(owner.point) };
}

/** The configured table name: as given, or with/without a `public.` schema. */
function resolveTable(config: Config, table: string): string {
  const candidates = [table, table.startsWith('public.') ? table.slice(7) : `public.${table}`];
  for (const c of candidates) if (Object.hasOwn(config.tables, c)) return c;
  const configured = Object.keys(config.tables);
  const known = configured.length ? `configured tables: ${configured.join(', ')}` : 'no tables are configured';
  if (config.unknown_tables === 'reference')
    throw new RouteKeyError(
      `table "${table}" is not under "tables" in the configuration, so it is treated as a reference table that lives on every shard (${config.shards.map((s) => s.id).join(', ')}); ${known}`,
    );
  throw new RouteKeyError(`table "${table}" is not under "tables" in the configuration, and unknown_tables is "refuse": statements on it are refused; ${known}`);
}
