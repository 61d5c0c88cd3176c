#!/usr/bin/env node
// canned.mjs -- the CPU floor of a Node.js proxy's client side: a server that speaks to pgbench as
// Postgres would for `pgbench -S -M simple` but answers every Query from memory, with no backend at all.
// It reads and frames client bytes exactly as pgshard does (its Framer, and its reused read buffer on
// accepted sockets) and writes each answer with one socket.write, as pgshard does. Whatever a Node proxy
// does, it does at least this per transaction, plus its backend side; the bench reports its CPU per
// transaction beside PgBouncer's, which does the whole job.
// Usage: node bench/canned.mjs LISTEN_PORT   (needs `npm run build`: it imports pgshard's dist/)
import net from 'node:net';
import { Framer, takeStartupPacket } from '../dist/protocol/framer.js';
import * as M from '../dist/protocol/messages.js';
import { readClientDirectly } from '../dist/server/client-reader.js';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: canned.mjs LISTEN_PORT');
  process.exit(2);
}

const answer = (names, values) =>
  Buffer.concat([M.rowDescription(names.map((name) => ({ name }))), M.dataRow(values), M.commandComplete('SELECT 1'), M.readyForQuery('I')]);
const hello = Buffer.concat([
  M.authenticationOk,
  M.parameterStatus('server_version', '15.0'),
  M.parameterStatus('client_encoding', 'UTF8'),
  M.parameterStatus('standard_conforming_strings', 'on'),
  M.parameterStatus('integer_datetimes', 'on'),
  M.backendKeyData(1, 2),
  M.readyForQuery('I'),
]);
// pgbench asks at start whether pgbench_accounts is partitioned (3 columns) and the scale (count(*) of
// pgbench_branches); every other query of -S is `SELECT abalance … WHERE aid = …` (one row, one column).
const partitions = answer(['n', 'partstrat', 'count'], ['1', null, '0']);
const one = answer(['abalance'], ['1']);
const refused = Buffer.concat([M.errorResponse({ severity: 'ERROR', code: '0A000', message: 'canned.mjs answers simple queries only' }), M.readyForQuery('I')]);

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  let pending = Buffer.alloc(0);
  const framer = new Framer(1 << 20, true);
  const sink = {
    message(type, buf, start, end) {
      if (type === 0x51 /* Q */) socket.write(end - start > 200 && buf.includes('partstrat', start, 'latin1') ? partitions : one);
      else if (type === 0x58 /* X */) socket.end();
      else if (type === 0x53 /* Sync */) socket.write(refused);
    },
  };
  const onStartup = (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const p = takeStartupPacket(pending, 10_000);
      if (!p) return;
      pending = p.rest;
      if (p.packet.length === 8 && p.packet.readInt32BE(4) === 80877103) {
        socket.write('N'); // SSLRequest: no
        continue;
      }
      socket.write(hello);
      socket.off('data', onStartup);
      socket.pause();
      const reader = readClientDirectly(socket, (c) => framer.feed(c, sink));
      if (!reader) socket.on('data', (c) => framer.feed(c, sink));
      if (pending.length) framer.feed(Buffer.from(pending), sink);
      socket.resume();
      return;
    }
  };
  socket.on('data', onStartup);
});
server.listen(port, '127.0.0.1', () => process.stderr.write(`canned answers on 127.0.0.1:${port}\n`));
const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
