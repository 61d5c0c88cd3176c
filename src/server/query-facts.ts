/**
 * What the session needs to know about a simple Query's statements when it sends them, derived once per
 * analysis instead of once per message: analyses are cached and shared, so a statement text seen before
 * (or a literal shape) pays for these loops, closures and regular expressions only the first time.
 */
import type { Analysis, SessionEffect } from '../sql/types.js';

export interface QueryFacts {
  /** Each statement's session effect, in order (read-only: shared by every message with this analysis). */
  readonly effects: readonly (SessionEffect | undefined)[];
  /** A COPY … FROM STDIN among them: the client's CopyData goes to the backend. */
  readonly copyFrom: boolean;
  /** A statement that is not read-only among them. */
  readonly writes: boolean;
  /** CREATE/ALTER/DROP TABLE among them: routing facts learned from catalogs go stale when it commits. */
  readonly tableDdl: boolean;
}

const TABLE_DDL = /^(CREATE|ALTER|DROP) TABLE/;
const facts = new WeakMap<Analysis, QueryFacts>();

export function queryFacts(analysis: Analysis): QueryFacts {
  let f = facts.get(analysis);
  if (f === undefined) {
    const stmts = analysis.statements;
    f = {
      effects: stmts.map((s) => s.session),
      copyFrom: stmts.some((s) => s.copy?.direction === 'from'),
      writes: stmts.some((s) => !s.readOnly),
      tableDdl: stmts.some((s) => TABLE_DDL.test(s.tag)),
    };
    facts.set(analysis, f);
  }
  return f;
}
