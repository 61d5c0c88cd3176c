#!/usr/bin/env node
// idle.mjs -- opens N authenticated client connections (startup + auth, via `pg`) to a target and
// keeps them idle, so that the memory per idle client of a proxy can be measured.
// Usage: node bench/idle.mjs PORT N USER PASSWORD DB [CONCURRENCY=100]
// Prints "OPEN <ok> <failed>" on stdout once all attempts finished, then waits for SIGTERM
// (or for a line on stdin) and closes everything.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
const pg = require('pg');

const [port, n, user, password, database, conc = '100'] = process.argv.slice(2);
const total = Number(n);
const clients = [];
let ok = 0, failed = 0, next = 0, firstError = '';

async function worker() {
  while (next < total) {
    next++;
    const c = new pg.Client({ host: '127.0.0.1', port: Number(port), user, password, database, connectionTimeoutMillis: 10000 });
    c.on('error', () => {});
    try { await c.connect(); clients.push(c); ok++; }
    catch (e) { failed++; if (!firstError) firstError = String(e.message || e); }
  }
}
const t0 = Date.now();
await Promise.all(Array.from({ length: Math.max(1, Number(conc)) }, worker));
process.stdout.write(`OPEN ${ok} ${failed} ${Date.now() - t0}ms ${JSON.stringify(firstError)}\n`);
const finish = async () => {
  await Promise.allSettled(clients.map((c) => c.end()));
  process.exit(0);
};
process.on('SIGTERM', finish);
process.stdin.on('data', finish);
process.stdin.on('end', finish);
