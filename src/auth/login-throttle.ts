/**
 * Slows down password guessing per source address. After `freeFailures` failed logins from an address,
 * each new login attempt from it waits for its turn: attempts are spaced `delay` apart, the delay doubling
 * with every further failure up to `maxDelayMs`. Spacing (rather than only delaying the failure answer)
 * is what bounds the guess rate of a client that opens many connections at once. A successful login
 * resets the address. Waiting is a timer per connection, so other clients are never held up.
 *
 * Memory is bounded: at most `maxAddresses` are remembered (the least recently failing are forgotten),
 * and an address is forgotten once it has not failed for `forgetAfterMs`.
 */
export interface LoginThrottleOptions {
  /** Failures allowed before attempts are spaced. */
  freeFailures: number;
  /** The spacing after the first failure beyond the free ones; doubles with each further failure. */
  baseDelayMs: number;
  /** The spacing never exceeds this; 0 turns throttling off. */
  maxDelayMs: number;
  forgetAfterMs?: number;
  maxAddresses?: number;
}

interface Entry {
  failures: number;
  lastFailure: number;
  /** The earliest time the next attempt from this address may proceed. */
  nextSlot: number;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly forgetAfterMs: number;
  private readonly maxAddresses: number;

  constructor(
    private readonly opts: LoginThrottleOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.forgetAfterMs = opts.forgetAfterMs ?? Math.max(60_000, 10 * opts.maxDelayMs);
    this.maxAddresses = opts.maxAddresses ?? 10_000;
  }

  /** IPv4 clients reach a dual-stack listener as ::ffff:a.b.c.d; both forms are one address. */
  static key(address: string | undefined): string {
    const a = address ?? 'unknown';
    return a.startsWith('::ffff:') ? a.slice(7) : a;
  }

  private live(address: string): Entry | undefined {
    const e = this.entries.get(address);
    if (e && this.now() - e.lastFailure > this.forgetAfterMs) {
      this.entries.delete(address);
      return undefined;
    }
    return e;
  }

  /** The spacing between attempts for an address with this many failures. */
  delayFor(failures: number): number {
    const o = this.opts;
    if (o.maxDelayMs <= 0 || failures < o.freeFailures) return 0;
    return Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.min(30, failures - o.freeFailures));
  }

  /** Called when an attempt starts: how long it must wait before authenticating (0: go ahead). */
  admit(address: string): number {
    const e = this.live(address);
    if (!e) return 0;
    const delay = this.delayFor(e.failures);
    if (delay === 0) return 0;
    const now = this.now();
    const start = Math.max(now, e.nextSlot);
    e.nextSlot = start + delay;
    return start - now;
  }

  failed(address: string): void {
    const now = this.now();
    let e = this.live(address);
    if (e) this.entries.delete(address); // re-inserted last: the map's order is least recently failing first
    else e = { failures: 0, lastFailure: now, nextSlot: now };
    e.failures++;
    e.lastFailure = now;
    e.nextSlot = Math.max(e.nextSlot, now + this.delayFor(e.failures));
    this.entries.set(address, e);
    while (this.entries.size > this.maxAddresses) this.entries.delete(this.entries.keys().next().value!);
  }

  succeeded(address: string): void {
    this.entries.delete(address);
  }

  /** Failures remembered for an address (for tests and logs). */
  failures(address: string): number {
    return this.live(address)?.failures ?? 0;
  }

  get size(): number {
    return this.entries.size;
  }
}
