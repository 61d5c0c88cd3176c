/**
 * Backend connections read into one reused buffer (src/pool/chunk-reader.ts). Bytes still referenced
 * when the next read comes must have been moved out of it: forwarded bytes a slow client's socket keeps,
 * a message split across reads, a connection that changes owner. Every row here is distinct and checked
 * byte for byte, so a row overwritten by a later read would show.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { withShards } from '../helpers/shards.js';
import { pgClient, sleep, startProxy } from '../helpers/proxy.js';
import { RawClient, fe, rows, serialize } from '../helpers/raw-client.js';

const shards = await withShards(t, 2);
const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** Reads one simple-Query answer from a raw socket, pausing it now and then; checks each `i, md5(i)` row. */
function readChecked(sock: import('node:net').Socket, pauseEveryChunks: number, repeat: number): Promise<{ rows: number; bad: number; error: string | null }> {
  return new Promise((resolve) => {
    let pending: Buffer = Buffer.alloc(0);
    let rows = 0;
    let bad = 0;
    let chunks = 0;
    const timer = setTimeout(() => finish({ rows, bad, error: 'no ReadyForQuery within 60 s' }), 60_000);
    const finish = (r: { rows: number; bad: number; error: string | null }) => {
      clearTimeout(timer);
      sock.removeAllListeners('data');
      resolve(r);
    };
    sock.on('data', (d: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      let pos = 0;
      while (pending.length - pos >= 5) {
        const len = pending.readInt32BE(pos + 1);
        if (len < 4 || len > 4 << 20) return finish({ rows, bad, error: `malformed message length ${len} after ${rows} rows` });
        if (pending.length - pos < len + 1) break;
        const type = pending[pos];
        if (type === 0x44) {
          // DataRow: int16 count, then int32 length + bytes per column
          let p = pos + 7;
          const l1 = pending.readInt32BE(p);
          const i = pending.toString('utf8', p + 4, p + 4 + l1);
          p += 4 + l1;
          const l2 = pending.readInt32BE(p);
          const h = pending.toString('utf8', p + 4, p + 4 + l2);
          rows++;
          if (Number(i) !== rows || h !== md5(i).repeat(repeat)) bad++;
        }
        if (type === 0x45) return finish({ rows, bad, error: pending.toString('utf8', pos + 5, pos + 1 + len) });
        if (type === 0x5a) return finish({ rows, bad, error: null });
        pos += len + 1;
      }
      pending = pending.subarray(pos);
      if (pauseEveryChunks > 0 && ++chunks % pauseEveryChunks === 0) {
        sock.pause();
        setTimeout(() => sock.resume(), 5);
      }
    });
    sock.resume();
  });
}

for (const [name, rowsWanted, pauseEvery, stallMs, repeat] of [
  ['a client that stalls, then reads', 250_000, 0, 1500, 1],
  ['a client that reads in bursts', 120_000, 3, 0, 1],
  ['a client that reads at once', 120_000, 0, 0, 1],
  ['rows larger than a read (128 KB each)', 200, 0, 0, 4000],
  ['rows larger than a read, to a client that stalls', 200, 0, 1500, 4000],
] as const) {
  t.test(`${name}: every forwarded row arrives intact`, async (t) => {
    const proxy = await startProxy(t, shards.clusters);
    const client = await RawClient.connect(proxy.port);
    t.teardown(() => client.close());
    const sock = client.socket;
    sock.removeAllListeners('data');
    sock.pause();
    sock.write(serialize.query(`set pgshard.shard = 's1'; select i, repeat(md5(i::text), ${repeat}) from generate_series(1, ${rowsWanted}) i`));
    if (stallMs) await sleep(stallMs);
    const got = await readChecked(sock, pauseEvery, repeat);
    t.same(got, { rows: rowsWanted, bad: 0, error: null }, `${rowsWanted} rows, none altered`);
  });
}

t.test('sessions sharing pooled connections under load get their own rows', async (t) => {
  // A small pool: connections change owner all the time, within the reads that carry their answers.
  const proxy = await startProxy(t, shards.clusters, { pool: { size: 2 } });
  const clients = await Promise.all(Array.from({ length: 6 }, () => pgClient(proxy.port, { t })));
  let wrong = 0;
  let done = 0;
  await Promise.all(
    clients.map(async (c, k) => {
      for (let q = 0; q < 60; q++) {
        const n = 1 + ((k * 61 + q * 17) % 400);
        const r = await c.query(`select i, md5(i::text || '${k}') as h from generate_series(1, ${n}) i`);
        if (r.rows.length !== n || r.rows.some((row: { i: number; h: string }, j: number) => row.i !== j + 1 || row.h !== md5(`${j + 1}${k}`))) wrong++;
        done++;
      }
    }),
  );
  t.equal(done, 360);
  t.equal(wrong, 0, 'no answer had a row of another or a row overwritten');
});

// Client connections read into a reused buffer too (src/server/client-reader.ts): messages that wait
// (queued behind a busy backend, an extended batch before its Sync) must not be overwritten by later reads.
t.test('client messages waiting across reads keep their bytes', async (t) => {
  const proxy = await startProxy(t, shards.clusters);
  const c = await RawClient.connect(proxy.port);
  t.teardown(() => c.close());

  // Simple Queries pipelined in separate writes: all but the first wait in the session's queue.
  const n = 300;
  const slow = "select pg_sleep(0.05), 'slow'";
  c.send(fe.query(slow));
  for (let i = 1; i <= n; i++) {
    c.send(fe.query(`select ${i} as i, md5('${i}') as h`));
    if (i % 50 === 0) await sleep(2);
  }
  const answers = rows(await c.readReady(n + 1, 30_000));
  t.same(answers[0], ['', 'slow'], 'the slow one first');
  const bad = answers.slice(1).filter(([i, h], k) => i !== String(k + 1) || h !== md5(String(k + 1)));
  t.equal(answers.length, n + 1);
  t.same(bad, [], 'every pipelined Query ran as sent');

  // Extended batches whose Sync comes in a later write: Parse/Bind/Execute wait for it.
  for (let k = 0; k < 40; k++) {
    const text = `select $1::int + ${k} as v, md5($2::text) as h`;
    c.send(Buffer.concat([fe.parse('', text), fe.bind('', '', [String(k * 3), `x${k}`]), fe.execute()]));
    await sleep(k % 5 === 0 ? 10 : 0);
    c.send(fe.sync());
    const got = rows(await c.readUntilReady(10_000));
    t.same(got, [[String(k * 3 + k), md5(`x${k}`)]], `batch ${k}`);
  }
});
