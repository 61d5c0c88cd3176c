/**
 * What the primary process and its workers (`workers: N`) say to each other over node:cluster's IPC
 * channel. Workers ask (a request id, answered once); the primary also tells every worker of a new
 * topology and of a CancelRequest that reached another worker.
 */
import type { TopologyState } from '../topology/types.js';

export const TAG = 'pgshard';

export type Request =
  | { op: 'load' }
  | { op: 'save'; next: TopologyState; expectedRev: number }
  | { op: 'ack'; token: string }
  | { op: 'notAcked'; token: string }
  | { op: 'alive'; instance: string }
  | { op: 'list' }
  | { op: 'cancel'; pid: number; secret: number }
  | { op: 'metrics' };

export type WorkerMessage = { tag: typeof TAG; id: number; instance: string } & Request;

export type PrimaryMessage =
  | { tag: typeof TAG; id: number; ok: true; result: unknown }
  | { tag: typeof TAG; id: number; ok: false; error: string }
  | { tag: typeof TAG; event: 'changed'; state: TopologyState }
  | { tag: typeof TAG; event: 'cancel'; pid: number; secret: number };

export function isPgshardMessage(m: unknown): m is { tag: typeof TAG } {
  return typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === TAG;
}

/** The instance id of worker `index` of an instance (each worker is an instance of its own: gids, txlog). */
export function workerInstance(base: string, index: number): string {
  return `${base}w${index}`;
}
