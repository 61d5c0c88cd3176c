/**
 * A TCP relay that injects network faults between pgshard and a shard: pgshard connects to the relay's
 * port, the relay to the shard. Modes, switchable at any time:
 *  - `pass`: bytes flow, after `latencyMs` each way;
 *  - `blackhole`: both connections stay open and bytes are dropped (a half-open connection, a dead
 *    NAT entry, a partitioned network: nothing tells either side);
 * and `reset()` resets every current connection (a RST to both sides, as a crashing middlebox or a
 * restarted peer would send).
 */
import net from 'node:net';

export type RelayMode = 'pass' | 'blackhole';

export interface FaultRelay {
  port: number;
  mode: RelayMode;
  latencyMs: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultRelay(target: { host?: string; port: number }): Promise<FaultRelay> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let accepted = 0;
  const relay: FaultRelay = {
    port: 0,
    mode: 'pass',
    latencyMs: 0,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    reset() {
      for (const [a, b] of pairs) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        relay.reset();
        server.close(() => resolve());
      }),
  };
  const pipe = (from: net.Socket, to: net.Socket) => {
    from.on('data', (d: Buffer) => {
      if (relay.mode === 'blackhole') return;
      if (relay.latencyMs > 0) setTimeout(() => to.destroyed || to.write(d), relay.latencyMs);
      else to.write(d);
    });
  };
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(target.port, target.host ?? '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  relay.port = (server.address() as net.AddressInfo).port;
  return relay;
}
