// The timeout sweep's decisions, driven by an explicit clock over sessions that only report counters
// and state (the behaviour against real shards is in test/integration/limits.test.ts and faults.test.ts).
import t from 'tap';
import { backstopDelays, sweepInterval, TimeoutSweep, type SessionActivity, type TimedSession } from '../../src/server/timeouts.js';
import type { PgError } from '../../src/protocol/errors.js';

class Fake implements TimedSession {
  clientReads = 0;
  progress = 0;
  activity: SessionActivity = 'idle';
  events: string[] = [];
  close(err: PgError): void {
    this.events.push(`close ${err.code}`);
  }
  cancel(): void {
    this.events.push('cancel');
  }
  abandon(err: PgError): void {
    this.events.push(`abandon ${err.code}`);
  }
}

const limits = { idleSessionMs: 1000, idleInTransactionMs: 500, statementMs: 2000 };

t.test('sweep period and backstop delays', async (t) => {
  t.equal(sweepInterval({ idleSessionMs: 0, idleInTransactionMs: 0, statementMs: 0 }), 0, 'no timeout: no sweep');
  t.equal(sweepInterval(limits), 50, 'a tenth of the shortest timeout, at least 50 ms');
  t.equal(sweepInterval({ idleSessionMs: 600_000, idleInTransactionMs: 0, statementMs: 0 }), 1000, 'at most 1 s');
  t.same(backstopDelays(500), { cancelMs: 1500, abandonMs: 2500 }, 'grace at least 1 s');
  t.same(backstopDelays(60_000), { cancelMs: 70_000, abandonMs: 80_000 }, 'grace at most 10 s');
});

t.test('idle session and idle in transaction', async (t) => {
  const idle = new Fake();
  const inTx = new Fake();
  inTx.activity = 'idle-in-transaction';
  const sweep = new TimeoutSweep(limits, () => [idle, inTx]);
  sweep.sweep(0);
  sweep.sweep(499);
  t.same([idle.events, inTx.events], [[], []], 'nothing before the limits');
  sweep.sweep(500);
  t.same(inTx.events, ['close 25P03'], 'idle in transaction for 500 ms: 25P03');
  idle.clientReads++; // a byte from the client is activity
  sweep.sweep(900);
  sweep.sweep(1800);
  t.same(idle.events, [], 'the clock restarted at the last client read');
  sweep.sweep(1900);
  t.same(idle.events, ['close 57P05'], 'idle for 1000 ms since then: 57P05');
});

t.test('statement backstop: cancel, then abandon; progress and state changes restart it', async (t) => {
  const s = new Fake();
  s.activity = 'active';
  const sweep = new TimeoutSweep(limits, () => [s]);
  sweep.sweep(0);
  sweep.sweep(3000);
  s.progress++; // rows arrived
  sweep.sweep(3500);
  sweep.sweep(6000);
  t.same(s.events, [], 'progress restarts the clock');
  sweep.sweep(7500);
  t.same(s.events, ['cancel'], 'no progress for timeout + grace: a CancelRequest');
  sweep.sweep(7600);
  t.same(s.events, ['cancel'], 'sent once');
  s.clientReads++; // a client pipelining more does not unstick a silent shard
  sweep.sweep(9500);
  t.same(s.events, ['cancel', 'abandon 57014'], 'still nothing after another grace: the backend is given up with 57014');

  const c = new Fake();
  c.activity = 'client-not-reading';
  const sweep2 = new TimeoutSweep(limits, () => [c]);
  sweep2.sweep(0);
  sweep2.sweep(100_000);
  t.same(c.events, [], 'a client that does not read is not the shard hanging');
  const b = new Fake();
  b.activity = 'busy';
  const sweep3 = new TimeoutSweep({ idleSessionMs: 10, idleInTransactionMs: 10, statementMs: 10 }, () => [b]);
  sweep3.sweep(0);
  sweep3.sweep(100_000);
  t.same(b.events, [], 'busy (a checkout wait, COPY) is bounded elsewhere');
});
