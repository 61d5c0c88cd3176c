/**
 * The cut-over gate. While a cut-over is in progress, a statement whose routing differs between the ring
 * that routes and the ring being switched to (it touches a moving key, or reaches every shard) waits here
 * until the switch is done, then routes again on the new ring. Everything else passes untouched; with no
 * cut-over in progress the session's check is one field read.
 */
import type { Config } from '../config/schema.js';
import type { BindParams } from '../routing/keys.js';
import type { HashRing } from '../routing/ring.js';
import { Router, type Target } from '../routing/router.js';
import type { RoutingHint, StatementInfo } from '../sql/types.js';

interface Held {
  before: Router;
  after: Router;
  released: Promise<void>;
  release: () => void;
}

export class CutoverGate {
  private held: Held | null = null;
  /** Statements that waited at the current or last cut-over. */
  heldStatements = 0;

  constructor(private readonly tables: Config['tables']) {}

  get active(): boolean {
    return this.held !== null;
  }

  /** Starts holding statements whose route differs between `before` and `after`. */
  close(before: HashRing, after: HashRing): void {
    if (this.held) throw new Error('a cut-over is already in progress');
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    this.held = { before: new Router(before, this.tables), after: new Router(after, this.tables), released, release };
    this.heldStatements = 0;
  }

  /** Lets every held statement go (they route again, on whatever ring routes now). */
  open(): void {
    const h = this.held;
    this.held = null;
    h?.release();
  }

  /** The promise to await before routing `stmt`, or null when it may go now. */
  holdFor(stmt: StatementInfo, hint: RoutingHint | null, params: BindParams | null, sessionShard: string | null): Promise<void> | null {
    const h = this.held;
    if (!h) return null;
    const ctx = { sessionShard };
    if (sameTarget(h.before.route(stmt, hint, params, ctx), h.after.route(stmt, hint, params, ctx))) return null;
    this.heldStatements++;
    return h.released;
  }
}

function shardsOf(t: Target): string[] | null {
  switch (t.kind) {
    case 'home':
    case 'error':
      return [];
    case 'shard':
      return [t.shard];
    case 'scatter':
    case 'broadcast':
      return [...t.shards].sort();
    case 'split-insert':
      return t.rowShards;
    case 'copy-in':
      return null; // rows are routed one by one as they come: always held
  }
}

function sameTarget(a: Target, b: Target): boolean {
  if (a.kind !== b.kind) return false;
  const x = shardsOf(a);
  const y = shardsOf(b);
  return x !== null && y !== null && x.length === y.length && x.every((s, i) => s === y[i]);
}
