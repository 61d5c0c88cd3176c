/**
 * Every instance's part in a cut-over, the one running the rebalance included. When the topology says a
 * cut-over is in progress (phase `cutting_over`, attempt n), the instance closes its gate (statements on
 * moving keys wait), waits until none of its sessions still runs on the old ring, and acknowledges
 * attempt n in the store. The instance running the rebalance switches the ring once every live instance
 * has acknowledged; each instance opens its gate only when the topology it reads says how the attempt
 * ended (the new ring, or back to catching up), so none routes on a ring the others have left.
 *
 * An instance that cannot reach the store for a lease while a rebalance could cut over holds statements
 * on moving keys by itself until it can read the topology again (the others stop waiting for it then).
 */
import type { Logger } from 'pino';
import type { CutoverGate } from './gate.js';
import type { Peers } from '../topology/peers.js';
import { ringOf, type Topology } from '../topology/topology.js';
import type { TopologyState } from '../topology/types.js';

/** Phases during which the ring may switch without this instance hearing of it in time. */
const MOVING = new Set(['copying', 'catching_up', 'cutting_over']);

export class CutoverFollower {
  /** The cut-over attempt this instance holds for (`<rebalance id>:<attempt>`), or null. */
  private token: string | null = null;
  /** Held because the store was out of reach for a lease. */
  private fencedHold = false;
  private readonly timer: NodeJS.Timeout;
  private refreshing = false;
  /** The rebalance the gate was closed for. */
  private closedFor: string | null = null;

  constructor(
    private readonly topology: Topology,
    private readonly gate: CutoverGate,
    private readonly peers: Peers,
    private readonly quiet: () => boolean,
    private readonly maxPauseMs: number,
    private readonly log: Logger,
  ) {
    // Registered after the server's own listener: a new ring is in place before the gate opens.
    topology.onChange((next) => this.react(next));
    this.timer = setInterval(() => this.checkFence(), 50);
    this.timer.unref();
    this.react(topology.state);
  }

  /** The token of the cut-over attempt a state asks every instance to hold for, if any. */
  static tokenOf(state: TopologyState): string | null {
    const r = state.rebalance;
    if (!r || r.phase !== 'cutting_over') return null;
    return `${r.id}:${r.cutoverAttempts}`;
  }

  private react(state: TopologyState): void {
    const want = CutoverFollower.tokenOf(state);
    const fresh = want !== null && want !== this.token;
    this.token = want;
    this.sync(state);
    // Only once the gate is closed (its epoch moved on) does "quiet" mean nothing runs on the old ring.
    if (fresh) void this.acknowledgeWhenQuiet(want);
  }

  /** The gate is closed exactly while this instance holds for a cut-over or for want of the store. */
  private sync(state: TopologyState): void {
    const hold = this.token !== null || this.fencedHold;
    const r = state.rebalance;
    // A gate closed for another rebalance (a state in between was never read) holds the wrong keys.
    if (hold && this.gate.active && r && this.closedFor !== r.id) this.gate.open();
    if (hold && !this.gate.active && r) {
      this.gate.close(ringOf({ shards: r.from, vnodes: state.vnodes }), ringOf({ shards: r.to, vnodes: state.vnodes }));
      this.closedFor = r.id;
    } else if (!hold && this.gate.active) this.gate.open();
  }

  private async acknowledgeWhenQuiet(token: string): Promise<void> {
    // The instance running the rebalance gives up after max_pause_ms; a little longer here costs nothing.
    const deadline = performance.now() + this.maxPauseMs * 2;
    while (this.token === token && performance.now() < deadline) {
      if (this.quiet()) {
        try {
          await this.peers.ack(token);
          this.log.debug({ token }, 'cut-over: holding, nothing left on the old ring');
        } catch (e) {
          this.log.warn({ token, err: (e as Error).message }, 'cut-over: cannot acknowledge in the metadata store');
        }
        return;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  private checkFence(): void {
    const r = this.topology.rebalance;
    const fenced = this.peers.fenced() && r !== null && MOVING.has(r.phase);
    if (fenced && !this.fencedHold) {
      this.fencedHold = true;
      this.log.warn({ rebalance: r?.id }, 'the metadata store has been out of reach for metadata.lease_ms during a rebalance: holding statements on moving keys until it is back');
      this.sync(this.topology.state);
    } else if (!fenced && this.fencedHold && !this.refreshing) {
      // Back in touch: read what happened meanwhile before letting anything route.
      this.refreshing = true;
      void this.topology
        .refresh()
        .then(() => {
          this.fencedHold = false;
          this.log.info('the metadata store is back: statements on moving keys go on');
          this.sync(this.topology.state);
        })
        .catch(() => undefined)
        .finally(() => (this.refreshing = false));
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
