// bench/floors/mux.mjs: a prototype multiplexing clients' simple Queries over M upstream connections, writes batched per
// event-loop turn (trust auth upstream, no client auth). Measured in bench/README.md. Usage: node mux.mjs LISTEN_PORT UPSTREAM_PORT M
// prototype: clients' simple Queries multiplexed over M upstream connections, writes batched per turn
import net from 'node:net';
const [lp, up, M = '2', batchMode = 'imm'] = process.argv.slice(2);
function msg(type, body) { const b = Buffer.allocUnsafe(5 + body.length); b[0] = type.charCodeAt(0); b.writeInt32BE(4 + body.length, 1); body.copy(b, 5); return b; }
function ps(k, v) { return msg('S', Buffer.from(k + '\0' + v + '\0')); }
class Framer { constructor() { this.rest = null; } feed(chunk, cb) { let buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk; this.rest = null; let p = 0; while (buf.length - p >= 5) { const len = buf.readInt32BE(p + 1); if (p + 1 + len > buf.length) break; cb(buf[p], buf, p, p + 1 + len); p += 1 + len; } if (p < buf.length) this.rest = Buffer.from(buf.subarray(p)); } }
const ups = [];
let pending = new Set();
function flushAll() { for (const u of pending) { const parts = u.out; u.out = []; u.sock.write(parts.length === 1 ? parts[0] : Buffer.concat(parts)); } pending.clear(); scheduled = false; }
let scheduled = false;
for (let i = 0; i < Number(M); i++) {
  const u = { sock: null, q: [], out: [], ready: false, inflight: 0 };
  const f = new Framer();
  u.sock = net.connect({ port: Number(up), host: '127.0.0.1', noDelay: true });
  u.sock.on('connect', () => { const body = Buffer.from('\0\0\0\0user\0bench\0database\0bench\0\0'); const b = Buffer.allocUnsafe(4 + body.length); b.writeInt32BE(4 + body.length, 0); body.copy(b, 4); b.writeInt32BE(196608, 4); u.sock.write(b); });
  let run = null, runS = 0, runE = 0; let runClient = null;
  u.sock.on('data', (chunk) => {
    f.feed(chunk, (type, buf, s, e) => {
      if (!u.ready) { if (type === 90) u.ready = true; return; }
      const c = u.q[0];
      if (runClient !== c || run !== buf || runE !== s) { if (runClient && run) runClient.write(run.subarray(runS, runE)); run = buf; runS = s; runClient = c; }
      runE = e;
      if (type === 90) { u.q.shift(); u.inflight--; runClient.write(run.subarray(runS, runE)); run = null; runClient = null; }
    });
    if (run) { runClient.write(run.subarray(runS, runE)); run = null; runClient = null; }
  });
  ups.push(u);
}
let rr = 0;
const server = net.createServer({ noDelay: true }, (c) => {
  let started = false; const f = new Framer(); let pre = null;
  c.on('data', (chunk) => {
    if (!started) { pre = pre ? Buffer.concat([pre, chunk]) : chunk; if (pre.length < 8) return; const len = pre.readInt32BE(0); if (pre.length < len) return; const code = pre.readInt32BE(4);
      if (code === 80877103) { c.write('N'); pre = pre.subarray(len).length ? pre.subarray(len) : null; return; }
      started = true; const ok = Buffer.alloc(9); ok[0] = 82; ok.writeInt32BE(8, 1); c.write(Buffer.concat([ok, ps('server_version', '15.18'), ps('client_encoding', 'UTF8'), ps('standard_conforming_strings', 'on'), ps('DateStyle', 'ISO, MDY'), ps('integer_datetimes', 'on'), msg('K', Buffer.alloc(8)), msg('Z', Buffer.from('I'))])); chunk = pre.subarray(len); if (!chunk.length) return; }
    f.feed(chunk, (type, buf, s, e) => {
      if (type === 88) { c.end(); return; }
      // pick the upstream with the fewest in flight
      let u = ups[0]; for (const x of ups) if (x.inflight < u.inflight) u = x;
      u.inflight++; u.q.push(c); u.out.push(buf.subarray(s, e));
      if (batchMode === 'now') { const p = u.out; u.out = []; u.sock.write(p[0]); return; }
      pending.add(u); if (!scheduled) { scheduled = true; setImmediate(flushAll); }
    });
  });
  c.on('error', () => c.destroy());
});
server.listen(Number(lp), '127.0.0.1');
