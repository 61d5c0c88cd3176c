/**
 * A TCP relay between pgshard and one shard that can break the connection at a chosen statement: it reads
 * the frontend stream (startup packets, then typed messages) and, while a rule is armed, resets both sides
 * of a connection instead of forwarding a simple Query whose text starts with the rule's prefix. Backend
 * bytes are forwarded untouched. `relay.port` goes into the proxy's shard list in place of the shard's.
 */
import net from 'node:net';
import type { Teardownable } from './shards.js';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

export interface FaultRelay {
  port: number;
  /** Reset connections at a Query whose text starts with `prefix` (case-insensitive), until allow(). */
  failOn(prefix: string): void;
  /** Forward everything again. */
  allow(): void;
  /** How many connections were reset so far. */
  readonly resets: number;
  close(): Promise<void>;
}

export async function startFaultRelay(t: Teardownable, target: { host?: string; port: number }): Promise<FaultRelay> {
  let rule: string | null = null;
  let resets = 0;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    const shard = net.connect({ host: target.host ?? '127.0.0.1', port: target.port });
    for (const s of [client, shard]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    const reset = () => {
      resets++;
      client.resetAndDestroy();
      shard.resetAndDestroy();
    };
    client.on('close', () => shard.destroy());
    shard.on('close', () => client.destroy());
    shard.on('data', (d: Buffer) => client.write(d));

    let held = Buffer.alloc(0);
    let startup = true;
    client.on('data', (d: Buffer) => {
      held = held.length ? Buffer.concat([held, d]) : d;
      let p = 0;
      for (;;) {
        const typed = !startup;
        const head = typed ? 5 : 4;
        if (held.length - p < head) break;
        const len = typed ? held.readInt32BE(p + 1) + 1 : held.readInt32BE(p);
        if (held.length - p < len) break;
        const msg = held.subarray(p, p + len);
        if (startup) {
          const code = msg.length >= 8 ? msg.readInt32BE(4) : 0;
          if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) startup = false;
        } else if (rule !== null && msg[0] === 0x51 /* Query */) {
          const text = msg.toString('utf8', 5, msg.length - 1).trimStart().toUpperCase();
          if (text.startsWith(rule)) {
            // What was read before the Query still goes through; the Query never reaches the shard.
            if (p > 0) shard.write(held.subarray(0, p));
            reset();
            return;
          }
        }
        p += len;
      }
      if (p > 0) shard.write(held.subarray(0, p));
      held = held.subarray(p);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  t.teardown(close);
  return {
    port,
    failOn(prefix) {
      rule = prefix.toUpperCase();
    },
    allow() {
      rule = null;
    },
    get resets() {
      return resets;
    },
    close,
  };
}
