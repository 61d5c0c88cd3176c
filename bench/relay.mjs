#!/usr/bin/env node
// relay.mjs -- the floor of naive Node.js networking: a bare byte relay.
// One upstream socket per client, `pipe` both ways, no parsing, no pooling.
// Usage: node bench/relay.mjs LISTEN_PORT UPSTREAM_PORT [UPSTREAM_HOST=127.0.0.1] [LISTEN_HOST=127.0.0.1]
import net from 'node:net';

const [listenPort, upstreamPort, upstreamHost = '127.0.0.1', listenHost = '127.0.0.1'] = process.argv.slice(2);
if (!listenPort || !upstreamPort) {
  console.error('usage: relay.mjs LISTEN_PORT UPSTREAM_PORT [UPSTREAM_HOST] [LISTEN_HOST]');
  process.exit(2);
}

const server = net.createServer((client) => {
  const upstream = net.connect(Number(upstreamPort), upstreamHost);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
});
server.listen(Number(listenPort), listenHost, () => {
  process.stderr.write(`relay 127.0.0.1:${listenPort} -> ${upstreamHost}:${upstreamPort}\n`);
});
const stop = () => { server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
