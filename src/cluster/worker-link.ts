/**
 * A worker's end of the IPC channel: the topology store and the peers (the other workers) as the
 * primary keeps them, CancelRequests forwarded to the worker that runs the session, and the metrics of
 * every worker aggregated by the primary.
 */
import type { Peers } from '../topology/peers.js';
import type { TopologyStore } from '../topology/store.js';
import type { TopologyState } from '../topology/types.js';
import { isPgshardMessage, TAG, type PrimaryMessage, type Request } from './messages.js';

export class WorkerLink implements TopologyStore, Peers {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly watchers: ((s: TopologyState) => void)[] = [];
  /** Set by the server: a CancelRequest the primary passes on from another worker. */
  onCancel: (pid: number, secret: number) => void = () => undefined;

  constructor(
    readonly instance: string,
    readonly index: number,
  ) {
    process.on('message', (m: unknown) => {
      if (!isPgshardMessage(m)) return;
      const msg = m as PrimaryMessage;
      if ('event' in msg) {
        if (msg.event === 'changed') for (const fn of this.watchers) fn(msg.state);
        else this.onCancel(msg.pid, msg.secret);
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error));
    });
  }

  private ask<T>(req: Request): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (!process.send || !process.connected) return reject(new Error('the pgshard primary process is gone'));
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      process.send({ tag: TAG, id, instance: this.instance, ...req });
    });
  }

  get where(): string {
    return 'the primary process (topology file)';
  }

  load(): Promise<TopologyState | null> {
    return this.ask({ op: 'load' });
  }

  save(next: TopologyState, expectedRev: number): Promise<boolean> {
    return this.ask({ op: 'save', next, expectedRev });
  }

  watch(fn: (state: TopologyState) => void): void {
    this.watchers.push(fn);
  }

  async close(): Promise<void> {}

  ack(token: string): Promise<void> {
    return this.ask({ op: 'ack', token });
  }

  notAcked(token: string): Promise<string[]> {
    return this.ask({ op: 'notAcked', token });
  }

  alive(instance: string): Promise<boolean> {
    return this.ask({ op: 'alive', instance });
  }

  /** Workers die with their primary (they exit when the channel closes), so they never lose touch with it. */
  fenced(): boolean {
    return false;
  }

  list(): Promise<{ id: string; address: string; heartbeatAgeMs: number; alive: boolean }[]> {
    return this.ask({ op: 'list' });
  }

  /** A CancelRequest for a session this worker does not have: the primary tells the others. */
  forwardCancel(pid: number, secret: number): void {
    void this.ask({ op: 'cancel', pid, secret }).catch(() => undefined);
  }

  /** Every worker's metrics, summed (or as each metric's aggregator says) by the primary. */
  clusterMetrics(): Promise<string> {
    return this.ask({ op: 'metrics' });
  }
}
