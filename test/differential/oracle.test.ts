/**
 * The differential oracle: the same rows in one plain Postgres (the oracle) and, through pgshard, in
 * three shards; every generated query runs on both, and the column names, type OIDs and rows must be
 * identical — as sequences when the query's ORDER BY fixes the order, as multisets otherwise. A 0A000
 * from pgshard is a refusal (counted, not failed); errors must be the same SQLSTATE on both sides.
 *
 *   PGSHARD_DIFF_QUERIES=N   how many generated queries (default 2500)
 *   PGSHARD_DIFF_SEED=S      replay a run (the seed is printed); query i is generated from querySeed(S, i)
 *   PGSHARD_DIFF_ONLY=i      run only query i of the seed
 *
 * Every BINARY_EVERY-th query also runs through the extended protocol with every result column in
 * binary format, on both sides, and the DataRow bytes must be identical (pgshard re-encodes merged
 * values; see src/execute/binary.ts).
 */
import t from 'tap';
import type pg from 'pg';
import { initHash } from '../../src/routing/hash.js';
import { routeKey } from '../../src/routing/route-cli.js';
import { pgClient, startProxy } from '../helpers/proxy.js';
import { fe, RawClient, serialize, type BackendMessage } from '../helpers/raw-client.js';
import { withShards } from '../helpers/shards.js';
import { generate } from './generator.js';
import { DDL, generateData, TABLES } from './schema.js';
import { CORPUS } from './corpus.js';

const QUERIES = Number(process.env.PGSHARD_DIFF_QUERIES ?? 2500);
const SEED = Number(process.env.PGSHARD_DIFF_SEED ?? Math.floor(Math.random() * 1_000_000_000));
const ONLY = process.env.PGSHARD_DIFF_ONLY !== undefined ? Number(process.env.PGSHARD_DIFF_ONLY) : undefined;
const WORKERS = 3;
const BINARY_EVERY = 3;
const ZONES = ['UTC', 'Asia/Kolkata', 'America/New_York', 'Pacific/Chatham', 'Europe/Berlin'];

type Answer = { ok: true; fields: [string, number][]; rows: (string | null)[][]; command: string } | { ok: false; code: string; message: string };

/** Independent streams per query: runs with nearby seeds share no queries. */
function querySeed(seed: number, i: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

const raw = { getTypeParser: () => (v: string) => v };

const QUERY_TIMEOUT_MS = 20_000;

async function ask(c: pg.Client, sql: string, params?: number[]): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      c.query({ text: sql, rowMode: 'array', types: raw, ...(params !== undefined ? { values: params } : {}) } as pg.QueryConfig),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${QUERY_TIMEOUT_MS} ms`), { code: 'timeout' })), QUERY_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows as (string | null)[][], command: r.command };
  } catch (e) {
    const err = e as Error & { code?: string };
    return { ok: false, code: err.code ?? 'client', message: err.message };
  } finally {
    clearTimeout(timer);
  }
}

type BinaryAnswer = { ok: true; fields: string; rows: string[] } | { ok: false; code: string; message: string };

/** The query with binary results through a raw connection: column names/types/formats and DataRow bytes. */
async function askBinary(c: RawClient, sql: string, params?: number[]): Promise<BinaryAnswer> {
  c.send(
    fe.parse('', sql),
    serialize.bind({ portal: '', statement: '', values: (params ?? []).map(String), binary: true }),
    fe.describePortal(''),
    fe.execute(''),
    fe.sync(),
  );
  const msgs: BackendMessage[] = await c.readUntilReady(QUERY_TIMEOUT_MS);
  const err = msgs.find((m) => m.type === 'E');
  if (err) return { ok: false, code: err.code ?? '', message: err.message ?? '' };
  const rd = msgs.find((m) => m.type === 'T');
  const fields: string[] = [];
  if (rd) {
    const b = rd.body;
    let p = 2;
    for (let i = 0; i < b.readInt16BE(0); i++) {
      const z = b.indexOf(0, p);
      fields.push(`${b.toString('utf8', p, z)}:${b.readUInt32BE(z + 7)}:${b.readInt16BE(z + 17)}`);
      p = z + 19;
    }
  }
  return { ok: true, fields: fields.join(','), rows: msgs.filter((m) => m.type === 'D').map((m) => m.raw.toString('hex')) };
}

function judgeBinary(oracle: BinaryAnswer, shard: BinaryAnswer, ordered: boolean): { verdict: Verdict; why?: string } {
  if (!shard.ok && shard.code === '0A000' && oracle.ok) return { verdict: 'refused' };
  if (!oracle.ok || !shard.ok) return !oracle.ok && !shard.ok ? { verdict: 'errors-alike' } : { verdict: 'mismatch', why: `one side failed: ${!shard.ok ? shard.message : (oracle as { message: string }).message}` };
  if (oracle.fields !== shard.fields) return { verdict: 'mismatch', why: `binary columns differ: ${oracle.fields} vs ${shard.fields}` };
  const a = ordered ? oracle.rows : [...oracle.rows].sort();
  const b = ordered ? shard.rows : [...shard.rows].sort();
  if (a.length !== b.length) return { verdict: 'mismatch', why: `binary row counts differ (${a.length} vs ${b.length})` };
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return { verdict: 'mismatch', why: `binary row ${i} differs: ${a[i]} vs ${b[i]}` };
  return { verdict: 'match' };
}

function canonicalRows(rows: (string | null)[][], ordered: boolean): string[] {
  const out = rows.map((r) => JSON.stringify(r));
  return ordered ? out : out.sort();
}

type Verdict = 'match' | 'refused' | 'errors-alike' | 'mismatch';

function judge(oracle: Answer, shard: Answer, ordered: boolean): { verdict: Verdict; why?: string } {
  if (!shard.ok && shard.code === '0A000' && oracle.ok) return { verdict: 'refused' };
  if (!oracle.ok || !shard.ok) {
    if (!oracle.ok && !shard.ok && (oracle.code === shard.code || shard.code === '0A000')) return { verdict: 'errors-alike' };
    return { verdict: 'mismatch', why: 'one side failed' };
  }
  if (JSON.stringify(oracle.fields) !== JSON.stringify(shard.fields)) return { verdict: 'mismatch', why: 'columns differ' };
  const a = canonicalRows(oracle.rows, ordered);
  const b = canonicalRows(shard.rows, ordered);
  if (a.length !== b.length) return { verdict: 'mismatch', why: `row counts differ (${a.length} vs ${b.length})` };
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return { verdict: 'mismatch', why: `row ${i} differs` };
  return { verdict: 'match' };
}

function show(a: Answer): string {
  if (!a.ok) return `ERROR ${a.code}: ${a.message}`;
  const rows = a.rows.slice(0, 12).map((r) => JSON.stringify(r));
  return `${JSON.stringify(a.fields)}\n      ${rows.join('\n      ')}${a.rows.length > 12 ? `\n      … ${a.rows.length} rows` : ''}`;
}

t.test('differential: pgshard over three shards answers as one Postgres', async (t) => {
  await initHash();
  const started = Date.now();
  const shards = await withShards(t, 4);
  const [s0, s1, s2, oracleCluster] = shards.clusters as [typeof shards.clusters[0], typeof shards.clusters[0], typeof shards.clusters[0], typeof shards.clusters[0]];
  const shardClusters = [s0, s1, s2];
  await Promise.all([...shardClusters, oracleCluster].map((c) => c.query(DDL, 'app')));
  const proxy = await startProxy(t, shardClusters, { tables: TABLES });

  // Data: the oracle gets every row; the shards get the sharded rows through pgshard (one INSERT per
  // owning shard and batch) and the reference rows directly (pgshard refuses writes to several shards).
  const data = generateData(SEED);
  const oracle = await pgClient(oracleCluster.port, { t });
  const loader = await pgClient(proxy.port, { t });
  const insert = async (c: pg.Client, table: string, values: string[]): Promise<void> => {
    for (let i = 0; i < values.length; i += 200) await c.query(`INSERT INTO ${table} VALUES ${values.slice(i, i + 200).join(', ')}`);
  };
  for (const table of ['items', 'details', 'pairs'] as const) {
    await insert(oracle, table, data[table].map((r) => r.values));
    const byShard = new Map<string, string[]>();
    for (const r of data[table]) {
      const s = routeKey(proxy.config, table, String(r.key)).shard;
      byShard.set(s, [...(byShard.get(s) ?? []), r.values]);
    }
    for (const values of byShard.values()) await insert(loader, table, values);
  }
  await insert(oracle, 'kinds', data.kinds);
  for (const c of shardClusters) await c.query(`INSERT INTO kinds VALUES ${data.kinds.join(', ')}`, 'app');
  await Promise.all([...shardClusters, oracleCluster].map((c) => c.query('ANALYZE', 'app')));
  const loaded = Date.now();

  const zone = ZONES[SEED % ZONES.length]!;
  const pairsOfClients = await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      const o = await pgClient(oracleCluster.port, { t });
      const p = await pgClient(proxy.port, { t });
      for (const c of [o, p]) await c.query(`SET TimeZone = '${zone}'`);
      const ro = await RawClient.connect(oracleCluster.port);
      const rp = await RawClient.connect(proxy.port);
      t.teardown(() => {
        ro.close();
        rp.close();
      });
      for (const c of [ro, rp]) await c.query(`SET TimeZone = '${zone}'`);
      return { o, p, ro, rp };
    }),
  );

  const counts: Record<Verdict, number> = { match: 0, refused: 0, 'errors-alike': 0, mismatch: 0 };
  let planDependent = 0; // matched Postgres under its other grouping plan (see below)
  const binaryCounts: Record<Verdict, number> = { match: 0, refused: 0, 'errors-alike': 0, mismatch: 0 };
  const binaryRefusals = new Map<string, number>();
  const refusals = new Map<string, number>();
  const alike = new Map<string, number>();
  const alikeExample = new Map<string, string>();
  const failures: string[] = [];
  const jobs: { label: string; sql: string; ordered: boolean; params?: number[] }[] = [];
  if (ONLY === undefined) for (const [i, c] of CORPUS.entries()) jobs.push({ label: `corpus #${i}`, sql: c.sql, ordered: c.ordered, ...(c.params ? { params: c.params } : {}) });
  for (let i = 0; i < QUERIES; i++) {
    if (ONLY !== undefined && i !== ONLY) continue;
    const g = generate(querySeed(SEED, i));
    jobs.push({ label: `seed ${SEED} query ${i}`, sql: g.sql, ordered: g.ordered, ...(g.params ? { params: g.params } : {}) });
  }
  let next = 0;
  await Promise.all(
    pairsOfClients.map(async (pair) => {
      while (next < jobs.length) {
        const index = next++;
        const job = jobs[index]!;
        const [a, b] = await Promise.all([ask(pair.o, job.sql, job.params), ask(pair.p, job.sql, job.params)]);
        if (!b.ok && b.code === 'timeout') {
          // The pgshard connection is stuck: count the mismatch and carry on with a new one.
          pair.p = await pgClient(proxy.port, { t });
          await pair.p.query(`SET TimeZone = '${zone}'`);
        }
        let { verdict, why } = judge(a, b, job.ordered);
        if (verdict === 'mismatch' && !a.ok && b.ok && a.code.startsWith('22')) {
          // Whether Postgres evaluates the select list of groups a LIMIT then drops depends on its plan
          // (HashAggregate + Sort does, GroupAggregate does not), so an error there is plan-dependent in
          // Postgres itself: pgshard's answer stands if Postgres gives it under the other plan.
          await pair.o.query('SET enable_hashagg = off');
          const again = await ask(pair.o, job.sql, job.params);
          await pair.o.query('RESET enable_hashagg');
          if (judge(again, b, job.ordered).verdict === 'match') {
            verdict = 'match';
            planDependent++;
          }
        }
        counts[verdict]++;
        if (verdict === 'errors-alike' && !a.ok) {
          alike.set(a.code, (alike.get(a.code) ?? 0) + 1);
          if (!alikeExample.has(a.code)) alikeExample.set(a.code, `${a.message} — ${job.sql.slice(0, 200)}`);
        }
        if (verdict === 'refused' && !b.ok) {
          const k = b.message.replace(/\d+/g, 'N').slice(0, 90);
          refusals.set(k, (refusals.get(k) ?? 0) + 1);
        }
        if (index % BINARY_EVERY === 0 && verdict !== 'refused' && !(b.ok === false && b.code === 'timeout')) {
          const [ba, bb] = await Promise.all([askBinary(pair.ro, job.sql, job.params), askBinary(pair.rp, job.sql, job.params)]);
          let bj = judgeBinary(ba, bb, job.ordered);
          if (bj.verdict === 'mismatch' && !ba.ok && bb.ok && ba.code.startsWith('22')) {
            await pair.ro.query('SET enable_hashagg = off');
            const again = await askBinary(pair.ro, job.sql, job.params);
            await pair.ro.query('RESET enable_hashagg');
            if (judgeBinary(again, bb, job.ordered).verdict === 'match') bj = { verdict: 'match' };
          }
          binaryCounts[bj.verdict]++;
          if (bj.verdict === 'refused' && !bb.ok) {
            const k = bb.message.replace(/\d+/g, 'N').slice(0, 90);
            binaryRefusals.set(k, (binaryRefusals.get(k) ?? 0) + 1);
          }
          if (bj.verdict === 'mismatch' && failures.length < 15) failures.push(`${job.label} in binary (PGSHARD_DIFF_SEED=${SEED}; ${bj.why})\n  ${job.sql}${job.params ? `  -- params ${JSON.stringify(job.params)}` : ''}`);
        }
        if (verdict === 'mismatch' && failures.length < 15) {
          failures.push(`${job.label} (PGSHARD_DIFF_SEED=${SEED} PGSHARD_DIFF_ONLY=${job.label.split(' ').pop()}; ${why}; ${job.ordered ? 'ordered' : 'multiset'})\n  ${job.sql}${job.params ? `  -- params ${JSON.stringify(job.params)}` : ''}\n  oracle:  ${show(a)}\n  pgshard: ${show(b)}`);
        }
      }
    }),
  );
  const total = jobs.length;
  const generated = jobs.filter((j) => j.label.startsWith('seed')).length;
  const rate = ((100 * counts.refused) / Math.max(total, 1)).toFixed(1);
  t.comment(
    `differential: seed ${SEED}, time zone ${zone}: ${total} queries (${CORPUS.length && ONLY === undefined ? `${total - generated} corpus + ` : ''}${generated} generated): ` +
      `${counts.match} matched (${planDependent} under Postgres's other grouping plan), ${counts['errors-alike']} failed alike, ${counts.refused} refused (${rate}%), ${counts.mismatch} mismatched; ` +
      `load ${((loaded - started) / 1000).toFixed(1)} s, queries ${((Date.now() - loaded) / 1000).toFixed(1)} s`,
  );
  for (const [k, n] of [...refusals.entries()].sort((x, y) => y[1] - x[1]).slice(0, 8)) t.comment(`  refused ${n}×: ${k}`);
  const binaryRun = Object.values(binaryCounts).reduce((x, y) => x + y, 0);
  t.comment(
    `differential (binary results, every ${BINARY_EVERY}rd query): ${binaryRun} run: ${binaryCounts.match} matched, ${binaryCounts['errors-alike']} failed alike, ` +
      `${binaryCounts.refused} refused, ${binaryCounts.mismatch} mismatched`,
  );
  for (const [k, n] of [...binaryRefusals.entries()].sort((x, y) => y[1] - x[1]).slice(0, 5)) t.comment(`  binary refused ${n}×: ${k}`);
  if (alike.size > 0) t.comment(`  failed alike (SQLSTATE×count): ${[...alike.entries()].map(([k, n]) => `${k}×${n}`).join(', ')}`);
  if (process.env.PGSHARD_DIFF_VERBOSE === '1') for (const [k, ex] of alikeExample) t.comment(`    ${k}: ${ex}`);
  for (const f of failures) t.comment(f);
  t.equal(counts.mismatch, 0, 'no mismatches');
  t.equal(binaryCounts.mismatch, 0, 'no mismatches in binary format');
  if (ONLY === undefined && QUERIES >= 500) t.ok(counts.refused / total < 0.05, `refusal rate ${rate}% under 5%`);
});
