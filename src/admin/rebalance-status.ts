/**
 * What the admin console (SHOW REBALANCE) and, later, the HTTP API report about online rebalancing. The
 * rebalance engine implements `RebalanceStatusProvider` and sets it on the server; until it does, the
 * answer is `idle`.
 */
export interface RebalanceStatus {
  /** idle, preparing, copying, catching-up, cutting-over, cleaning-up, cancelling, failed, … */
  state: string;
  /** The shard being added or removed, when a rebalance runs. */
  shard: string | null;
  rowsCopied: number | null;
  rowsTotal: number | null;
  /** WAL not yet applied on the receiving shard. */
  lagBytes: number | null;
  startedAt: Date | null;
  /** How long statements on moving ranges were held at the last cut-over. */
  lastCutoverPauseMs: number | null;
  /** Free text: the current step, or why it failed. */
  detail: string | null;
}

export interface RebalanceStatusProvider {
  status(): RebalanceStatus;
}

export const IDLE_REBALANCE: RebalanceStatus = {
  state: 'idle',
  shard: null,
  rowsCopied: null,
  rowsTotal: null,
  lagBytes: null,
  startedAt: null,
  lastCutoverPauseMs: null,
  detail: null,
};

export const idleRebalance: RebalanceStatusProvider = { status: () => IDLE_REBALANCE };
