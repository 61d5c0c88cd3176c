import { errorResponse, type ErrorFields } from './messages.js';

/**
 * The one error type that reaches clients: it carries what an ErrorResponse needs. Anything else thrown
 * inside a session is a bug and is reported as XX000 without its internals.
 */
export class PgError extends Error {
  readonly code: string;
  readonly severity: 'ERROR' | 'FATAL';
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(code: string, message: string, opts: { severity?: 'ERROR' | 'FATAL'; detail?: string; hint?: string } = {}) {
    super(message);
    this.code = code;
    this.severity = opts.severity ?? 'ERROR';
    this.detail = opts.detail;
    this.hint = opts.hint;
  }

  fields(): ErrorFields {
    const f: ErrorFields = { severity: this.severity, code: this.code, message: this.message };
    if (this.detail !== undefined) f.detail = this.detail;
    if (this.hint !== undefined) f.hint = this.hint;
    return f;
  }

  toMessage(): Buffer {
    return errorResponse(this.fields());
  }
}

export function toPgError(e: unknown): PgError {
  if (e instanceof PgError) return e;
  return new PgError('XX000', `internal error in pgshard: ${(e as Error)?.message ?? String(e)}`, {
    hint: 'This is a bug in pgshard; the session has been kept where possible. Please report it with the statement that caused it.',
  });
}

/** SQLSTATEs pgshard uses, named as in Postgres's errcodes.txt. */
export const SqlState = {
  FeatureNotSupported: '0A000',
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  ConnectionException: '08000',
  AdminShutdown: '57P01',
  QueryCanceled: '57014',
  TooManyConnections: '53300',
  InvalidPassword: '28P01',
  InvalidAuthorizationSpecification: '28000',
  InvalidCatalogName: '3D000',
  InFailedSqlTransaction: '25P02',
  IdleInTransactionTimeout: '25P03',
  InvalidSqlStatementName: '26000',
  DuplicatePreparedStatement: '42P05',
  SyntaxError: '42601',
  InternalError: 'XX000',
  InvalidTextRepresentation: '22P02',
  InvalidBinaryRepresentation: '22P03',
  InvalidRowCountInLimitClause: '2201W',
  InvalidRowCountInResultOffsetClause: '2201X',
  UndefinedParameter: '42P02',
  NumericValueOutOfRange: '22003',
} as const;
