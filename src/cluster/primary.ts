/**
 * `workers: N`: the primary process forks N workers (node:cluster) that share the listening ports, each
 * a full pgshard instance with its own pools, sessions, instance id (`<instance>w<k>`, so its own
 * two-phase commit gids and decision log) and generated-key node id (`ids.node_id + k`). The primary
 * serves no client. It keeps what the workers must agree on: the topology (the file, written only by
 * it, compare-and-set on the revision as the Postgres store does, each change sent to every worker), which
 * workers are alive and which cut-over each holds for; it passes a CancelRequest on to the worker that
 * runs the session, and sums the workers' metrics for /metrics. A worker that dies is started again
 * with the same index (so it finishes its own in-doubt transactions and rebalance).
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { fileStore } from '../topology/topology.js';
import type { FileTopologyStore } from '../topology/store.js';
import { isPgshardMessage, TAG, workerInstance, type PrimaryMessage, type WorkerMessage } from './messages.js';

export interface PrimaryOptions {
  /** The instance id the workers' ids derive from. */
  instance: string;
  graceMs: number;
}

export class Primary {
  private readonly workers = new Map<number, Worker>();
  /** Workers that have spoken (they registered by asking for the topology), by instance id. */
  private readonly registered = new Map<string, Worker>();
  private readonly acks = new Map<string, string>();
  /** Workers listening for clients (a worker registers before it listens: a cut-over waits for it already). */
  private readonly serving = new Set<Worker>();
  private readonly store: FileTopologyStore | null;
  private readonly aggregator = new AggregatorRegistry();
  private stopping = false;

  constructor(
    private readonly cfg: Config,
    private readonly log: Logger,
    private readonly opts: PrimaryOptions,
  ) {
    this.store = cfg.metadata ? null : fileStore(cfg, opts.instance);
  }

  start(): void {
    this.log.info({ workers: this.cfg.workers, topology: this.store?.where ?? 'metadata database' }, 'starting workers');
    for (let i = 0; i < this.cfg.workers; i++) this.fork(i);
  }

  private fork(index: number): void {
    const w = cluster.fork({ PGSHARD_WORKER_INDEX: String(index) });
    this.workers.set(index, w);
    const instance = workerInstance(this.opts.instance, index);
    w.on('message', (m: unknown) => {
      if (isPgshardMessage(m)) void this.handle(w, m as WorkerMessage);
    });
    w.on('listening', (addr) => {
      // The client port (the admin API, when configured, listens on its own).
      if (addr.port !== this.cfg.admin?.port) this.serving.add(w);
    });
    w.on('exit', (code, signal) => {
      this.serving.delete(w);
      if (this.registered.get(instance) === w) this.registered.delete(instance);
      this.acks.delete(instance);
      if (this.workers.get(index) === w) this.workers.delete(index);
      if (this.stopping) return;
      this.log.error({ worker: index, code, signal }, 'a worker exited; starting another in its place');
      setTimeout(() => !this.stopping && this.fork(index), 500).unref();
    });
  }

  private reply(w: Worker, msg: PrimaryMessage): void {
    if (w.isConnected()) w.send(msg);
  }

  private broadcast(msg: PrimaryMessage, except?: Worker): void {
    for (const w of this.workers.values()) if (w !== except) this.reply(w, msg);
  }

  private async handle(w: Worker, m: WorkerMessage): Promise<void> {
    if (this.registered.get(m.instance) !== w) this.registered.set(m.instance, w);
    try {
      let result: unknown;
      switch (m.op) {
        case 'load':
          result = this.topologyStore().loadSync();
          break;
        case 'save': {
          const ok = await this.topologyStore().save(m.next, m.expectedRev);
          if (ok) this.broadcast({ tag: TAG, event: 'changed', state: m.next });
          result = ok;
          break;
        }
        case 'ack':
          this.acks.set(m.instance, m.token);
          result = null;
          break;
        case 'notAcked':
          result = [...this.registered.keys()].filter((i) => this.acks.get(i) !== m.token).sort();
          break;
        case 'alive':
          result = this.registered.has(m.instance);
          break;
        case 'list':
          result = [...this.registered]
            .filter(([, rw]) => this.serving.has(rw))
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([id, rw]) => ({ id, address: `pid ${rw.process.pid}`, heartbeatAgeMs: 0, alive: true }));
          break;
        case 'cancel':
          this.broadcast({ tag: TAG, event: 'cancel', pid: m.pid, secret: m.secret }, w);
          result = null;
          break;
        case 'metrics':
          result = await this.aggregator.clusterMetrics();
          break;
      }
      this.reply(w, { tag: TAG, id: m.id, ok: true, result });
    } catch (e) {
      this.reply(w, { tag: TAG, id: m.id, ok: false, error: (e as Error).message });
    }
  }

  private topologyStore(): FileTopologyStore {
    if (!this.store) throw new Error('the topology is in the metadata database: workers use it directly');
    return this.store;
  }

  /** Stops every worker (each drains as a single instance would) and resolves when all have exited. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ signal }, 'stopping the workers');
    const exited = [...this.workers.values()].map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    for (const w of this.workers.values()) w.process.kill('SIGTERM');
    const late = setTimeout(() => {
      for (const w of this.workers.values()) if (!w.isDead()) w.process.kill('SIGKILL');
    }, this.opts.graceMs + 10_000);
    await Promise.all(exited);
    clearTimeout(late);
    this.log.info('stopped');
  }
}
