// LoginThrottle on a fake clock: spacing grows per failure, is bounded, resets on success, forgets.
import t from 'tap';
import { LoginThrottle } from '../../src/auth/login-throttle.js';

function setup(opts: Partial<ConstructorParameters<typeof LoginThrottle>[0]> = {}) {
  let now = 1_000_000;
  const th = new LoginThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 800, ...opts }, () => now);
  return { th, advance: (ms: number) => void (now += ms) };
}

t.test('free failures, then doubling spacing up to the bound', async (t) => {
  const { th } = setup();
  t.equal(th.admit('a'), 0);
  th.failed('a');
  t.equal(th.admit('a'), 0, 'one failure is free');
  th.failed('a');
  t.same([2, 3, 4, 5, 6, 7].map((n) => th.delayFor(n)), [100, 200, 400, 800, 800, 800]);
  t.equal(th.admit('a'), 100, 'after two failures the next attempt waits');
  t.equal(th.admit('a'), 200, 'a parallel attempt waits for the slot after it');
  t.equal(th.admit('b'), 0, 'another address is not affected');
});

t.test('success resets; quiet addresses are forgotten; memory is bounded', async (t) => {
  const { th, advance } = setup({ forgetAfterMs: 5000, maxAddresses: 3 });
  for (let i = 0; i < 4; i++) th.failed('a');
  t.equal(th.failures('a'), 4);
  th.succeeded('a');
  t.equal(th.admit('a'), 0);
  t.equal(th.failures('a'), 0);
  for (let i = 0; i < 4; i++) th.failed('c');
  advance(5001);
  t.equal(th.failures('c'), 0, 'forgotten after forgetAfterMs without failures');
  t.equal(th.admit('c'), 0);
  for (const a of ['w', 'x', 'y', 'z']) th.failed(a);
  t.equal(th.size, 3);
  t.equal(th.failures('w'), 0, 'the least recently failing address went first');
  t.equal(th.failures('z'), 1);
});

t.test('maxDelayMs 0 turns it off; IPv4-mapped addresses are one address', async (t) => {
  const { th } = setup({ maxDelayMs: 0 });
  for (let i = 0; i < 10; i++) th.failed('a');
  t.equal(th.admit('a'), 0);
  t.equal(LoginThrottle.key('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(LoginThrottle.key('::1'), '::1');
});
