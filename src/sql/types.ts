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
  aggregates: MergeAggregate[];
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
