/**
 * What statement analysis tells the rest of pgshard. Analysis is a pure function of the statement text
 * (and the sharding schema); it is cached by text, so nothing here may depend on bind values: a key that
 * comes from a parameter is recorded as the parameter's index and evaluated per Bind by the router.
 */

/** A shard-key value as written in the statement. */
export type KeyExpr =
  | { kind: 'const'; value: string } // a literal, as canonical text (42, '42' and 42::bigint all give "42")
  | { kind: 'null' } // `key = NULL` / `key IN (NULL)`: matches no row, so it needs no shard
  | { kind: 'param'; index: number } // $n, 0-based index into the Bind parameters
  | { kind: 'param-array'; index: number }; // key = ANY($n) with an array parameter

/** Where a statement's rows live, before bind values are known. */
export type RouteSpec =
  /** Touches no sharded or reference table (SELECT 1, SHOW, catalog queries): the session's home shard. */
  | { type: 'none' }
  /** Rows of sharded table(s), restricted to the shards owning these keys (union). */
  | { type: 'keys'; table: string; keys: KeyExpr[] }
  /** A sharded table with no usable key condition: every shard. */
  | { type: 'all'; table: string }
  /** Only reference tables (and maybe no-table parts): any one shard for reads; every shard for writes. */
  | { type: 'reference'; tables: string[]; write: boolean }
  /** Analysis decided pgshard cannot run this exactly; answered with this error, never sent anywhere. */
  | { type: 'refuse'; sqlstate: string; message: string; hint?: string };

/** How SQL-level statements change the client's session, which pgshard must replay on pooled backends. */
export type SessionEffect =
  | { type: 'set'; name: string; local: boolean; sql: string } // sql: the statement text to replay
  | { type: 'reset'; name: string }
  | { type: 'reset-all' } // RESET ALL, DISCARD ALL
  | { type: 'deallocate'; name: string | null } // null = DEALLOCATE ALL
  | { type: 'listen'; channel: string }
  | { type: 'unlisten'; channel: string | null } // null = UNLISTEN *
  | { type: 'pgshard-set'; name: string; value: string | null }; // SET pgshard.xxx: handled by pgshard itself

export type TxEffect =
  | { type: 'begin' }
  | { type: 'commit' } // COMMIT, END
  | { type: 'rollback' } // ROLLBACK, ABORT
  | { type: 'savepoint'; name: string }
  | { type: 'release'; name: string }
  | { type: 'rollback-to'; name: string }
  | { type: 'other' }; // PREPARE TRANSACTION, COMMIT PREPARED, SET TRANSACTION, COMMIT AND CHAIN…

export type MergeAggregate = 'count' | 'sum' | 'min' | 'max';

/** How the shards' one-row results of an aggregate-only SELECT combine into one row (one entry per column). */
export interface MergePlan {
  /** The original one-row merge (one entry per column); empty when `rewrite` or `refuse` is set. */
  aggregates: MergeAggregate[];
  /** The general cross-shard plan (src/sql/merge.ts): what each shard runs and how pgshard merges. */
  rewrite?: CrossShardPlan;
  /** The statement cannot be answered exactly across shards: the router refuses it (0A000) with this. */
  refuse?: { message: string; hint?: string };
}

/**
 * A cross-shard SELECT: the statement each shard runs (rewritten where needed) and the merge pgshard
 * applies to the shards' rows. Column numbers index a shard row; a negative number counts from its end
 * (hidden columns are appended after the client's, whose number a `*` leaves unknown until run time).
 */
export interface CrossShardPlan {
  /** Sent to every shard instead of the client's text; absent when the client's statement runs unchanged. */
  sql?: string;
  /** How many trailing columns of a shard row are pgshard's own (stripped before the client sees a row). */
  hidden: number;
  /** Streaming merge of rows (no aggregation across shards). */
  rows?: RowMergePlan;
  /** Aggregation: shard rows are partial groups, combined by group key and finished in pgshard. */
  groups?: GroupMergePlan;
}

export interface SortKey {
  column: number;
  desc: boolean;
  nullsFirst: boolean;
  /** An explicit COLLATE "C"/"POSIX": bytes order, whatever the database's collation. */
  byteOrder?: boolean;
}

export interface LimitPlan {
  /** null: no LIMIT (only an OFFSET). */
  count: number | null;
  offset: number;
  withTies?: boolean;
  /** LIMIT $n / OFFSET $n: the value comes from the Bind at execution (count/offset are then placeholders). */
  countParam?: number;
  offsetParam?: number;
}

export interface RowMergePlan {
  /** k-way merge keys; empty: the shards' rows are concatenated as they come. */
  order: SortKey[];
  /**
   * Duplicate removal on these columns (DISTINCT: every client column, null = all; DISTINCT ON: its
   * expressions; UNION). `adjacent`: the order makes duplicates neighbours (memory: one row), else a hash
   * set of the rows seen (memory: the distinct rows).
   */
  distinct?: { columns: number[] | null; adjacent: boolean; orderKeys?: number };
  limit?: LimitPlan;
}

/** A value computed by pgshard from merged aggregates (see src/execute/merge/evaluate.ts). */
export type FinalExpr =
  | { agg: number }
  | { column: number }
  | { const: string | null; type: 'int4' | 'int8' | 'numeric' | 'bool' | 'text' | 'unknown' }
  | { op: string; args: FinalExpr[] }
  | { fn: string; args: FinalExpr[] }
  | { cast: string; typmod?: number[]; arg: FinalExpr };

export interface AggregateKey {
  /** Column of the per-shard array holding this key's values. */
  column: number;
  desc: boolean;
  nullsFirst: boolean;
  byteOrder?: boolean;
}

/** One aggregate of the statement and the shard columns holding its partial results. */
export type AggregatePlan =
  | { fn: 'count' | 'sum' | 'min' | 'max' | 'bool_and' | 'bool_or'; column: number }
  /** `sum` and `squares` are sums of x::numeric; `type` is a column typed like x (always NULL). */
  | { fn: 'avg'; sum: number; count: number; type: number }
  | { fn: 'var_samp' | 'var_pop' | 'stddev_samp' | 'stddev_pop'; count: number; sum: number; squares: number; type: number }
  | { fn: 'string_agg'; values: number; keys: AggregateKey[]; delimiter: string }
  | { fn: 'array_agg'; values: number; keys: AggregateKey[] }
  /** count/sum/avg(DISTINCT x): over the distinct values of the plan's `distinctOn` column; `filter` is a bool_or(FILTER) column. */
  | { fn: 'count_distinct' | 'sum_distinct' | 'avg_distinct'; filter?: number };

export interface GroupMergePlan {
  /** Shard columns holding the GROUP BY values (the group's identity); empty: one group. */
  keys: number[];
  /** count/sum/avg(DISTINCT x): shards also group by x, in this column; pgshard keeps each group's set of x. */
  distinctOn?: number;
  aggregates: AggregatePlan[];
  /** One per client column. */
  outputs: FinalExpr[];
  having?: FinalExpr;
  order: { expr: FinalExpr; desc: boolean; nullsFirst: boolean; byteOrder?: boolean }[];
  distinct?: boolean;
  limit?: LimitPlan;
}

export interface StatementInfo {
  /** The command tag Postgres would answer with (SELECT, INSERT, BEGIN, SET, CREATE TABLE, ...). */
  tag: string;
  /** True when the statement cannot change data (SELECT without FOR UPDATE/data-modifying CTE, SHOW, EXPLAIN without ANALYZE). */
  readOnly: boolean;
  route: RouteSpec;
  /**
   * For a SELECT that reaches several shards: null when concatenating the shards' rows is exactly what one
   * Postgres would return; otherwise the reason it is not (ORDER BY, LIMIT, aggregate, ...).
   */
  notConcatenable: string | null;
  /** Set for a SELECT whose cross-shard answer is a merge of one-row aggregate results. */
  merge?: MergePlan;
  session?: SessionEffect;
  tx?: TxEffect;
  /** INSERT: a list of rows each with its key, for per-row routing (route is then `keys` over all rows). */
  insertRows?: number;
  /** COPY FROM STDIN / TO STDOUT. */
  copy?: { direction: 'from' | 'to'; table: string | null };
  /** An INSERT … VALUES that omits the key of a table whose key pgshard generates (route is a refusal). */
  generateKey?: { table: string; column: string; variant: 'int64' | 'int53' };
  /** Postgres refuses it inside a transaction block (VACUUM, CREATE INDEX CONCURRENTLY, ...). */
  nonTransactional?: boolean;
  /** EXPLAIN of a statement: the inner statement's routing is in `route`. */
  explain?: boolean;
  /** EXPLAIN in text format: pgshard prepends a line naming the shard it runs on. */
  explainText?: boolean;
  /** Byte span of this statement in the original text (for splitting a multi-statement Query). */
  location: number;
  length: number;
}

export interface RoutingHint {
  shard?: string;
  key?: string;
}

export interface Analysis {
  statements: StatementInfo[];
  /** From a leading `/* pgshard: shard=s1 *\/` or `/* pgshard: key=42 *\/` comment. */
  hint: RoutingHint | null;
  /** Set when the text does not parse; the backend's own error is what the client should see, so such text is sent on. */
  parseError: string | null;
}
