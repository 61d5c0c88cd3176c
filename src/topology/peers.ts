/**
 * The other pgshard instances that route on the same topology, as far as a cut-over needs to know them:
 * which are alive, and which have stopped routing on the old ring. One instance (the file store) has no
 * peers; several share them through the metadata database (pg-store.ts).
 */
export interface Peers {
  /** This instance's id (`transactions.instance_id`, or host name and port). */
  readonly instance: string;
  /** Records that this instance holds statements on moving keys for cut-over `token` and runs none on the old ring. */
  ack(token: string): Promise<void>;
  /** The live instances (this one included) that have not acknowledged `token`. */
  notAcked(token: string): Promise<string[]>;
  /** Whether `instance` is alive (it recorded a heartbeat within the lease). */
  alive(instance: string): Promise<boolean>;
  /**
   * True when this instance cannot be sure it knows the ring the others route on: its heartbeat has not
   * reached the store within the lease, so a cut-over may go on without it.
   */
  fenced(): boolean;
  /** Every instance the store knows (the workers serving clients), with the age of its last heartbeat (for the admin API). */
  list(): Promise<{ id: string; address: string; heartbeatAgeMs: number; alive: boolean }[]>;
}

/** A single instance: it is always alive, and its own acknowledgement is the only one awaited. */
export class LocalPeers implements Peers {
  private acked: string | null = null;

  constructor(
    readonly instance: string,
    private readonly address: string,
  ) {}

  async ack(token: string): Promise<void> {
    this.acked = token;
  }

  async notAcked(token: string): Promise<string[]> {
    return this.acked === token ? [] : [this.instance];
  }

  async alive(instance: string): Promise<boolean> {
    return instance === this.instance;
  }

  fenced(): boolean {
    return false;
  }

  async list(): Promise<{ id: string; address: string; heartbeatAgeMs: number; alive: boolean }[]> {
    return [{ id: this.instance, address: this.address, heartbeatAgeMs: 0, alive: true }];
  }
}
