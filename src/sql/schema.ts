import { isShardedTable, type Config, type KeyType, type TableConfig } from '../config/schema.js';

/** What a relation named in a statement is, for routing. */
export type TableRef =
  | { kind: 'sharded'; name: string; key: string; keyType: KeyType }
  | { kind: 'reference'; name: string }
  /** pg_catalog, information_schema and pg_* relations: the same everywhere, no table for routing. */
  | { kind: 'catalog' }
  /** Not listed under `tables`, and `unknown_tables: refuse`. */
  | { kind: 'unknown'; name: string };

const CATALOG_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_toast']);

/**
 * The sharding schema as the analyser reads it. Names in statements arrive already folded by the parser
 * (unquoted → lower case); a configured name matches itself and, if it has upper-case letters, its
 * lower-case form too (the usual meaning of an unquoted name in YAML). A schema qualifier (`public.`) is
 * ignored on both sides.
 */
export class ShardingSchema {
  private readonly tables = new Map<string, { name: string; config: TableConfig }>();
  /** Column order of sharded tables, as a shard's catalog reports it (for INSERT without a column list). */
  private readonly columns = new Map<string, readonly string[]>();

  constructor(
    tables: Config['tables'],
    readonly unknownTables: Config['unknown_tables'],
  ) {
    for (const [configured, config] of Object.entries(tables)) {
      const name = withoutSchema(configured);
      this.tables.set(name, { name, config });
      const lower = name.toLowerCase();
      if (!this.tables.has(lower)) this.tables.set(lower, { name, config });
    }
  }

  columnsOf(table: string): readonly string[] | undefined {
    return this.columns.get(table);
  }

  /** Returns true when the order changed (analyses that depend on it must be dropped). */
  setColumns(table: string, columns: readonly string[] | undefined): boolean {
    const old = this.columns.get(table);
    if (old && columns && old.length === columns.length && old.every((c, i) => c === columns[i])) return false;
    if (!old && !columns) return false;
    if (columns) this.columns.set(table, [...columns]);
    else this.columns.delete(table);
    return true;
  }

  /** The id variant of a sharded table whose key pgshard generates. */
  generatedKey(table: string): 'int64' | 'int53' | undefined {
    const found = this.tables.get(table);
    return found && isShardedTable(found.config) ? found.config.generated : undefined;
  }

  /** The configured sharded tables' names. */
  shardedTables(): string[] {
    const out = new Set<string>();
    for (const { name, config } of this.tables.values()) if (isShardedTable(config)) out.add(name);
    return [...out];
  }

  resolve(schemaname: string | undefined, relname: string): TableRef {
    if ((schemaname !== undefined && CATALOG_SCHEMAS.has(schemaname)) || relname.startsWith('pg_')) return { kind: 'catalog' };
    const found = this.tables.get(relname);
    if (found === undefined) return this.unknownTables === 'reference' ? { kind: 'reference', name: relname } : { kind: 'unknown', name: relname };
    if (isShardedTable(found.config))
      return { kind: 'sharded', name: found.name, key: found.config.shard_key, keyType: found.config.key_type };
    return { kind: 'reference', name: found.name };
  }
}

function withoutSchema(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot >= 0 ? name.slice(dot + 1) : name;
}
