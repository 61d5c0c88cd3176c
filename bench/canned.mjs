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
import { readClientDirectly } from '../dist/server/client-reader.js';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: canned.mjs LISTEN_PORT');
  process.exit(2);
}

const message = (type, body) => {
  const b = Buffer.alloc(5 + body.length);
  b[0] = type.charCodeAt(0);
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
};
const int32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s) => Buffer.from(s + '\0');
const field = (name, oid) => {
  const f = Buffer.alloc(18);
  f.writeInt32BE(oid, 6);
  f.writeInt16BE(-1, 10);
  f.writeInt32BE(-1, 12);
  return Buffer.concat([cstr(name), f]);
};
const rowOf = (values) => {
  const parts = [Buffer.from([0, values.length])];
  for (const v of values) parts.push(v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)]));
  return message('D', Buffer.concat(parts));
};
const answer = (names, values, tag) =>
  Buffer.concat([
    message('T', Buffer.concat([Buffer.from([0, names.length]), ...names.map((n) => field(n, 25))])),
    rowOf(values),
    message('C', cstr(tag)),
    message('Z', Buffer.from('I')),
  ]);

const hello = Buffer.concat([
  message('R', int32(0)),
  ...[
    ['server_version', '15.0'],
    ['client_encoding', 'UTF8'],
    ['standard_conforming_strings', 'on'],
    ['integer_datetimes', 'on'],
  ].map(([k, v]) => message('S', Buffer.concat([cstr(k), cstr(v)]))),
  message('K', Buffer.concat([int32(1), int32(2)])),
  message('Z', Buffer.from('I')),
]);
// pgbench asks at start whether pgbench_accounts is partitioned (3 columns) and the scale (count(*) of
// pgbench_branches); every other query of -S is `SELECT abalance … WHERE aid = …` (one row, one column).
const partitions = answer(['n', 'partstrat', 'count'], ['1', null, '0'], 'SELECT 1');
const one = answer(['abalance'], ['1'], 'SELECT 1');
const refused = Buffer.concat([
  message('E', Buffer.concat([cstr('SERROR'), cstr('C0A000'), cstr('Mcanned.mjs answers simple queries only'), Buffer.from([0])])),
  message('Z', Buffer.from('I')),
]);

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
