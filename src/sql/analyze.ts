import type { Config } from '../config/schema.js';
import type { Analysis, RoutingHint, StatementInfo } from './types.js';
import { AnalysisCache } from './cache.js';
import { refusal } from './context.js';
import { leadingHint } from './hint.js';
import { parseStatements, sliceUtf8, trimStatementText, utf8Length } from './parse.js';
import { ShardingSchema } from './schema.js';
import { describe } from './statement.js';

export { initParser } from './parse.js';

const DEFAULT_CACHE_SIZE = 10_000;

/**
 * Statement analysis: statement text + sharding schema → routing analysis (see types.ts). A pure function
 * of the text, cached by exact text. `initParser()` must have been awaited once before `analyze`.
 *
 * The returned analyses are shared by every caller that sends the same text, so they are frozen.
 */
export class StatementAnalyzer {
  private readonly schema: ShardingSchema;
  private readonly cache: AnalysisCache<Analysis>;

  constructor(tables: Config['tables'], unknownTables: Config['unknown_tables'], cacheSize = DEFAULT_CACHE_SIZE) {
    this.schema = new ShardingSchema(tables, unknownTables);
    this.cache = new AnalysisCache<Analysis>(cacheSize);
  }

  /** Sharded tables whose column order pgshard should learn from a shard. */
  shardedTables(): string[] {
    return this.schema.shardedTables();
  }

  /** Analysis of a text pgshard made itself (unique, e.g. with generated ids): not cached. */
  analyzeOnce(sql: string): Analysis {
    return analyzeText(this.schema, sql);
  }

  columnsOf(table: string): readonly string[] | undefined {
    return this.schema.columnsOf(table);
  }

  /** Records a sharded table's column order; cached analyses are dropped when it changed. */
  setColumns(table: string, columns: readonly string[] | undefined): void {
    if (this.schema.setColumns(table, columns)) this.cache.clear();
  }

  get stats(): { hits: number; misses: number } {
    return this.cache.stats;
  }

  analyze(sql: string): Analysis {
    const cached = this.cache.get(sql);
    if (cached !== undefined) return cached;
    const analysis = deepFreeze(analyzeText(this.schema, sql));
    this.cache.set(sql, analysis);
    return analysis;
  }
}

/** The uncached analysis of a text. Never throws for any SQL: a statement pgshard fails on is refused instead. */
export function analyzeText(schema: ShardingSchema, sql: string): Analysis {
  let hint: RoutingHint | null;
  try {
    hint = leadingHint(sql);
  } catch {
    hint = null;
  }
  const parsed = parseStatements(sql);
  if (!parsed.ok) return { statements: [], hint, parseError: parsed.message };
  const total = utf8Length(sql);
  const statements: StatementInfo[] = parsed.stmts.map((raw) => {
    const location = raw.stmt_location ?? 0;
    const length = raw.stmt_len !== undefined && raw.stmt_len > 0 ? raw.stmt_len : total - location;
    const text = (): string => trimStatementText(sliceUtf8(sql, location, location + length));
    try {
      if (raw.stmt === undefined) throw new Error('empty statement');
      return { ...describe(schema, raw.stmt, text), location, length };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return {
        tag: 'UNKNOWN',
        readOnly: false,
        route: refusal(`pgshard could not analyse this statement: ${message}`, undefined, 'XX000'),
        notConcatenable: null,
        location,
        length,
      };
    }
  });
  return { statements, hint, parseError: null };
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
