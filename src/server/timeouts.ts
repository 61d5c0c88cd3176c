/**
 * Session timeouts (idle session, idle in transaction, statement) enforced by one coarse periodic sweep
 * over the sessions, so that the message path pays nothing for them: a session only counts its reads,
 * and the sweep notices a count that stopped moving. A timeout fires within one sweep interval of its
 * configured time.
 */
import { PgError, SqlState } from '../protocol/errors.js';

/** What a session is doing, as the sweep sees it. */
export type SessionActivity =
  /** Nothing outstanding, no transaction. */
  | 'idle'
  /** Nothing outstanding inside an open transaction (or one pgshard holds failed). */
  | 'idle-in-transaction'
  /** A request is outstanding on the session's backend (or a read runs on several shards). */
  | 'active'
  /** A request is outstanding somewhere the sweep does not bound (a checkout wait, COPY). */
  | 'busy'
  /** The client is not reading what the backend sends: the backend is paused on purpose. */
  | 'client-not-reading';

/** The narrow view of a client session the sweep needs. */
export interface TimedSession {
  /** Client reads so far (any byte from the client is activity). */
  readonly clientReads: number;
  /** Progress of the running request (bytes read from its backend, or written for a multi-shard read). */
  readonly progress: number;
  readonly activity: SessionActivity;
  /** Closes the session with this FATAL error. */
  close(err: PgError): void;
  /** Sends a CancelRequest for what the session's backend runs. */
  cancel(): void;
  /** Gives up the backend connection(s) of the running request: it gets `err`, the session goes on. */
  abandon(err: PgError): void;
}

export interface TimeoutLimits {
  /** 0: off. */
  idleSessionMs: number;
  idleInTransactionMs: number;
  /** Also set as the backends' statement_timeout; the sweep is the backstop for shards that do not answer. */
  statementMs: number;
}

interface Seen {
  activity: SessionActivity;
  clientReads: number;
  progress: number;
  since: number;
  cancelled: boolean;
}

/**
 * The backstop for a statement whose shard sends nothing: a CancelRequest this long after the statement
 * timeout (the shard's own statement_timeout answers first when the shard is alive), then the backend
 * connection is given up this long after that.
 */
export function backstopDelays(statementMs: number): { cancelMs: number; abandonMs: number } {
  const grace = Math.max(1000, Math.min(statementMs, 10_000));
  return { cancelMs: statementMs + grace, abandonMs: statementMs + 2 * grace };
}

/** The sweep period: a tenth of the shortest timeout, between 50 ms and 1 s. */
export function sweepInterval(l: TimeoutLimits): number {
  const on = [l.idleSessionMs, l.idleInTransactionMs, l.statementMs].filter((x) => x > 0);
  if (!on.length) return 0;
  return Math.max(50, Math.min(1000, Math.floor(Math.min(...on) / 10)));
}

export class TimeoutSweep {
  private seen = new WeakMap<TimedSession, Seen>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly limits: TimeoutLimits, private readonly sessions: () => Iterable<TimedSession>) {}

  start(): void {
    const every = sweepInterval(this.limits);
    if (!every || this.timer) return;
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass: sessions whose state and counts did not move since `since` are checked against their limit. */
  sweep(now: number): void {
    for (const s of this.sessions()) {
      const activity = s.activity;
      const prev = this.seen.get(s);
      // For the idle timeouts any byte from the client is activity; for the statement backstop only the
      // running request's progress counts (a client pipelining more requests does not unstick it).
      const moved =
        !prev ||
        prev.activity !== activity ||
        (activity === 'active' ? prev.progress !== s.progress : prev.clientReads !== s.clientReads);
      if (moved) {
        this.seen.set(s, { activity, clientReads: s.clientReads, progress: s.progress, since: now, cancelled: false });
        continue;
      }
      this.check(s, prev, now - prev.since);
    }
  }

  private check(s: TimedSession, seen: Seen, ms: number): void {
    const l = this.limits;
    switch (seen.activity) {
      case 'idle':
        if (l.idleSessionMs > 0 && ms >= l.idleSessionMs)
          s.close(
            new PgError(SqlState.IdleSessionTimeout, 'terminating connection due to idle-session timeout', {
              severity: 'FATAL',
              hint: `The connection was idle for over ${l.idleSessionMs} ms (limits.idle_client_timeout_ms). Reconnect.`,
            }),
          );
        return;
      case 'idle-in-transaction':
        if (l.idleInTransactionMs > 0 && ms >= l.idleInTransactionMs)
          s.close(
            new PgError(SqlState.IdleInTransactionTimeout, 'terminating connection due to idle-in-transaction timeout', {
              severity: 'FATAL',
              hint: `The transaction was idle for over ${l.idleInTransactionMs} ms (limits.idle_in_transaction_timeout_ms) and was rolled back. Reconnect, and do not keep transactions open while the application waits.`,
            }),
          );
        return;
      case 'active': {
        if (l.statementMs <= 0) return;
        const { cancelMs, abandonMs } = backstopDelays(l.statementMs);
        if (ms >= abandonMs) {
          s.abandon(
            new PgError(SqlState.QueryCanceled, 'canceling statement due to statement timeout', {
              detail: `The shard sent nothing for ${ms} ms and did not answer a cancel request; pgshard closed its connection to the shard.`,
              hint: 'Check that the shard is up and responsive; limits.statement_timeout_ms bounds statements.',
            }),
          );
        } else if (ms >= cancelMs && !seen.cancelled) {
          seen.cancelled = true;
          s.cancel();
        }
        return;
      }
      default:
        return;
    }
  }
}

/** The SET that gives backends the statement timeout, so that a live shard cancels with its own 57014. */
export function statementTimeoutVar(ms: number): [string, string] {
  return ['statement_timeout', `SELECT pg_catalog.set_config('statement_timeout', '${ms}', false)`];
}
