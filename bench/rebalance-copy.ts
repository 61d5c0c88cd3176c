// How fast a rebalance copies (not part of the tests): ROWS rows of a sharded table (and a reference table
// of REF_ROWS rows) over three shards, loaded through pgshard; a fourth shard is added with
// no other load, and the time from the snapshots' count to the end of the `copying` phase is measured
// from the rebalance record (polled every 2 ms).
// The second test compares the copy mechanisms alone, alternating runs on one pair of shards: COPY TO →
// COPY FROM (copy.ts) against the batches it replaced (FETCH from a cursor, multi-row INSERT), every row's
// key hashed as the router does, all rows sent to one destination.
//   npx tap --disable-coverage --timeout=0 --reporter=tap bench/rebalance-copy.ts   (ROWS=200000 REF_ROWS=20000 RUNS=3)
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { withShards, APP } from '../test/helpers/shards.js';
import { startProxy, sleep } from '../test/helpers/proxy.js';
import { initHash } from '../src/routing/hash.js';
import { shardSchema } from '../src/config/schema.js';
import { hash64 } from '../src/routing/hash.js';
import { canonicalFromText } from '../src/routing/canonical.js';
import { connect, end, ident, qualified, type Row } from '../src/rebalance/pg.js';
import { scan } from '../src/rebalance/rows.js';
import { copyRows } from '../src/rebalance/copy.js';

await initHash();
const ROWS = Number(process.env.ROWS ?? 200_000);
const REF_ROWS = Number(process.env.REF_ROWS ?? 20_000);

t.test(`copy speed of a rebalance: ${ROWS} sharded rows, ${REF_ROWS} reference rows`, async (t) => {
  const shards = await withShards(t, 4);
  const [c0, c1, c2, c3] = shards.clusters;
  for (const c of [c0!, c1!, c2!])
    await c.query('CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, n int NOT NULL DEFAULT 0, created timestamptz NOT NULL DEFAULT now()); CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);', 'app');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgshard-rbcopy-'));
  const proxy = await startProxy(t, [c0!, c1!, c2!], { tables: { users: { shard_key: 'id', key_type: 'bigint' }, countries: { reference: true } }, topology: { file: path.join(dir, 'topology.json') } });
  const client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  // Multi-row INSERTs through pgshard (each row lands on its owner).
  for (let i = 0; i < ROWS; i += 1000)
    await client.query(`INSERT INTO users (id, name, n, created) VALUES ${Array.from({ length: Math.min(1000, ROWS - i) }, (_, k) => i + k + 1).map((g) => `(${g}, 'name of user ${g}', ${g % 97}, '2026-11-26 12:00:00+00')`).join(',')}`);
  for (let i = 0; i < REF_ROWS; i += 1000)
    await client.query(`INSERT INTO countries (code, name) VALUES ${Array.from({ length: Math.min(1000, REF_ROWS - i) }, (_, k) => `('c${i + k + 1}', 'country ${i + k + 1}')`).join(',')}`);
  await client.end();

  const rb = proxy.server.rebalancer;
  await rb.addShard(shardSchema.parse({ id: 's3', host: '127.0.0.1', port: c3!.port, database: APP.database, user: APP.user, password: APP.password }));
  // From the moment every snapshot is counted (rowsTotal set: the slots exist) to the end of the phase.
  let copyingAt = 0;
  let copiedAt = 0;
  for (;;) {
    const r = rb.record!;
    if (!copyingAt && r.phase === 'copying' && r.rowsTotal > 0) copyingAt = performance.now();
    if (copyingAt && !copiedAt && r.phase !== 'copying') copiedAt = performance.now();
    if (['done', 'failed', 'cancelled'].includes(r.phase)) break;
    await sleep(2);
  }
  const r = rb.record!;
  t.equal(r.phase, 'done', r.error ?? 'done');
  t.equal(r.rowsScanned, r.rowsTotal);
  const s = (copiedAt - copyingAt) / 1000;
  const line = `copying the snapshots: ${s.toFixed(2)} s for ${r.rowsScanned} rows read (${Math.round(r.rowsScanned / s)} rows/s), ${r.rowsCopied} copied (${Math.round(r.rowsCopied / s)} rows/s)`;
  t.comment(line);
  console.log(line);
});

/** The former path: cursor batches decoded to text values, one multi-row INSERT per batch. */
async function batches(src: pg.Client, dst: pg.Client, table: string, columns: string[], keyIndex: number, batch: number): Promise<void> {
  await scan(src, table, columns, batch, async (rows: Row[]) => {
    for (const r of rows) hash64(canonicalFromText('bigint', r[keyIndex]!));
    const n = columns.length;
    const values = rows.map((_, i) => `(${columns.map((_, c) => `$${i * n + c + 1}`).join(', ')})`).join(', ');
    await dst.query(`INSERT INTO ${qualified(table)} (${columns.map(ident).join(', ')}) OVERRIDING SYSTEM VALUE VALUES ${values}`, rows.flat());
  });
}

t.test(`COPY against INSERT batches: ${ROWS} rows`, async (t) => {
  const shards = await withShards(t, 2);
  const [a, b] = shards.clusters;
  const ddl = 'CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, n int NOT NULL DEFAULT 0, created timestamptz NOT NULL DEFAULT now())';
  for (const c of [a!, b!]) await c.query(ddl, 'app');
  await a!.query(`INSERT INTO users SELECT g, 'name of user ' || g, g % 97, '2026-11-26 12:00:00+00' FROM generate_series(1, ${ROWS}) g`, 'app');
  const conf = (c: { port: number }) => shardSchema.parse({ id: 'x', host: '127.0.0.1', port: c.port, database: APP.database, user: APP.user, password: APP.password });
  const src = await connect(conf(a!));
  const dst = await connect(conf(b!));
  t.teardown(async () => {
    await end(src);
    await end(dst);
  });
  const columns = ['id', 'name', 'n', 'created'];
  const rates: Record<'copy' | 'insert', number[]> = { copy: [], insert: [] };
  for (let run = 0; run < Number(process.env.RUNS ?? 3); run++) {
    for (const how of ['insert', 'copy'] as const) {
      await dst.query('TRUNCATE users');
      await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const t0 = performance.now();
      if (how === 'insert') await batches(src, dst, 'users', columns, 0, 1000);
      else
        await copyRows({
          source: src,
          table: 'users',
          columns,
          keyIndex: 0,
          route: (k) => (hash64(canonicalFromText('bigint', k!)) >= 0n ? 'd' : null),
          destination: async () => dst,
          progress: () => undefined,
          every: 1000,
        });
      const s = (performance.now() - t0) / 1000;
      await src.query('COMMIT');
      t.equal(Number((await dst.query('SELECT count(*) AS n FROM users')).rows[0].n), ROWS);
      rates[how].push(ROWS / s);
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const line = `${ROWS} rows, median of ${rates.copy.length} runs: COPY ${Math.round(median(rates.copy))} rows/s, INSERT batches of 1000 ${Math.round(median(rates.insert))} rows/s (${(median(rates.copy) / median(rates.insert)).toFixed(1)}x)`;
  t.comment(line);
  console.log(line);
});
