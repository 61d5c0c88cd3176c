/**
 * The fuzz run shared by the test command (a number of cases) and `npm run fuzz` (a time budget):
 * one real shard, pgshard in-process with trust auth, the recorded sessions replayed with mutations,
 * and the invariants checked (see harness.ts for the per-case ones).
 *
 * Replay: PGSHARD_FUZZ_SEED=<seed> (printed at the start); PGSHARD_FUZZ_ONLY=<case index> runs one case.
 */
import pg from 'pg';
import { withShards } from '../helpers/shards.js';
import { openConnections, startProxy, sleep } from '../helpers/proxy.js';
import { Random } from '../differential/random.js';
import { BOUND_MS, caseSeed, describe, loadRecordings, mutate, runCase, type Outcome } from './harness.js';
import { HOSTILE_LENGTHS, msg, startupMessage, SYNC, type FuzzCase } from './mutate.js';
import { SHARD_SETUP_SQL } from './record.js';

/** The parts of a tap Test the suite uses. */
interface T {
  teardown(fn: () => unknown): void;
  comment(...m: unknown[]): void;
  fail(m: string): void;
  pass(m: string): void;
  ok(v: unknown, m: string): void;
  equal(a: unknown, b: unknown, m: string): void;
  same(a: unknown, b: unknown, m: string): void;
  test(name: string, fn: (t: T) => Promise<void>): Promise<unknown>;
}

export interface Budget {
  cases?: number;
  seconds?: number;
  concurrency?: number;
}

const RSS_SLACK = 200 << 20;

/** Cases that run first in every run, whatever the seed: the hostile inputs named in the issue. */
export function fixedCases(): FuzzCase[] {
  const start = startupMessage();
  const out: FuzzCase[] = [];
  for (const len of HOSTILE_LENGTHS) {
    const head = Buffer.alloc(5);
    head[0] = 0x51;
    head.writeInt32BE(len, 1);
    out.push({ name: `fixed: Query with length prefix ${len}`, bytes: Buffer.concat([start, head, Buffer.from('select 1')]) });
    const sp = Buffer.alloc(8);
    sp.writeInt32BE(len, 0);
    sp.writeInt32BE(196608, 4);
    out.push({ name: `fixed: startup packet with length prefix ${len}`, bytes: sp });
  }
  const hello = Buffer.from('16030100310100002d0303' + '00'.repeat(32) + '000004130113020100', 'hex');
  out.push({ name: 'fixed: TLS ClientHello to the plain port', bytes: hello });
  out.push({ name: 'fixed: Password after login', bytes: Buffer.concat([start, msg('p', 'app')]) });
  out.push({ name: 'fixed: Bind before Parse', bytes: Buffer.concat([start, msg('B', '', 'nope', [0, 0, 0, 0, 0, 0]), msg('E', '', [0, 0, 0, 0]), SYNC]) });
  out.push({ name: 'fixed: Execute with no portal', bytes: Buffer.concat([start, msg('E', 'nope', [0, 0, 0, 0]), SYNC]) });
  out.push({ name: 'fixed: CopyData outside COPY', bytes: Buffer.concat([start, msg('d', 'x'), msg('c'), SYNC]) });
  out.push({ name: 'fixed: Sync storm', bytes: Buffer.concat([start, ...Array.from({ length: 1000 }, () => SYNC)]) });
  out.push({ name: 'fixed: open transaction, then close', bytes: Buffer.concat([start, msg('Q', "begin; update fuzz_kv set v = 'held' where k = 1")]) });
  return out;
}

export async function fuzzSuite(t: T, budget: Budget): Promise<void> {
  const seed = process.env.PGSHARD_FUZZ_SEED ? Number(process.env.PGSHARD_FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const only = process.env.PGSHARD_FUZZ_ONLY !== undefined ? Number(process.env.PGSHARD_FUZZ_ONLY) : null;
  process.stderr.write(`# protocol fuzz seed ${seed} (replay: PGSHARD_FUZZ_SEED=${seed})\n`);
  t.comment(`protocol fuzz seed ${seed} (replay: PGSHARD_FUZZ_SEED=${seed}; one case: PGSHARD_FUZZ_ONLY=<index>)`);

  // pgshard runs in this process: anything it throws past its handlers lands here.
  const uncaught: string[] = [];
  const onUncaught = (e: unknown) => uncaught.push(`uncaughtException: ${(e as Error)?.stack ?? String(e)}`);
  const onRejection = (e: unknown) => uncaught.push(`unhandledRejection: ${(e as Error)?.stack ?? String(e)}`);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onRejection);
  t.teardown(() => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onRejection);
  });

  const shards = await withShards(t, 1);
  const shard = shards.clusters[0]!;
  await shard.query(SHARD_SETUP_SQL, 'app');
  const proxy = await startProxy(t, shards.clusters, { auth: { method: 'trust' }, pool: { size: 20, checkout_timeout_ms: 2000 } });
  const maxMessage = proxy.config.limits.max_message_bytes;
  const recordings = loadRecordings();

  const selectOne = async (): Promise<string | null> => {
    const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'app', database: 'app', connectionTimeoutMillis: BOUND_MS, query_timeout: BOUND_MS });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const r = await c.query('select 1 as one');
      return r.rows[0]?.one === 1 ? null : `select 1 answered ${JSON.stringify(r.rows)}`;
    } catch (e) {
      return `select 1 failed: ${(e as Error).message}`;
    } finally {
      await Promise.race([c.end().catch(() => undefined), sleep(500)]);
    }
  };
  const pre = await selectOne();
  t.equal(pre, null, 'a normal client is served before fuzzing');
  global.gc?.();
  const baseRss = process.memoryUsage().rss;

  // A client of its own keeps querying while the cases run: pgshard must keep serving it throughout.
  const other = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'app', database: 'app', connectionTimeoutMillis: BOUND_MS, query_timeout: BOUND_MS });
  other.on('error', () => undefined);
  await other.connect();
  const otherStats = { queries: 0, errors: [] as string[], maxMs: 0 };
  let fuzzing = true;
  const otherLoop = (async () => {
    while (fuzzing) {
      const t0 = Date.now();
      try {
        const r = await other.query('select $1::int as n', [otherStats.queries]);
        if (r.rows[0]?.n !== otherStats.queries) otherStats.errors.push(`answered ${JSON.stringify(r.rows)} to query ${otherStats.queries}`);
      } catch (e) {
        otherStats.errors.push((e as Error).message);
        if (otherStats.errors.length > 5) return;
      }
      otherStats.maxMs = Math.max(otherStats.maxMs, Date.now() - t0);
      otherStats.queries++;
      await sleep(20);
    }
  })();

  const fixed = fixedCases();
  const failures: string[] = [];
  const kinds = new Map<string, number>();
  const started = Date.now();
  const deadline = budget.seconds ? started + budget.seconds * 1000 : Infinity;
  const total = budget.cases ?? Infinity;
  const concurrency = Number(process.env.PGSHARD_FUZZ_CONCURRENCY ?? budget.concurrency ?? 1);
  let next = only ?? 0;
  let ran = 0;
  let maxRss = baseRss;

  const caseAt = (i: number): { c: FuzzCase; rnd: Random } => {
    const rnd = new Random(caseSeed(seed, i));
    return { c: i < fixed.length ? fixed[i]! : mutate(recordings, rnd), rnd };
  };
  const check = (i: number, c: FuzzCase, o: Outcome) => {
    kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
    const problems = [...o.problems];
    if (c.name.startsWith('fixed: ') && /length prefix (-|0$|1$|3$|1073741824|2147483647|268435457)/.test(c.name)) {
      if (!o.sqlstates.includes('08P01')) problems.push(`expected a 08P01 ErrorResponse, got ${o.sqlstates.join(',') || 'none'} (${o.kind})`);
    }
    if (problems.length) failures.push(`case ${i} (PGSHARD_FUZZ_SEED=${seed} PGSHARD_FUZZ_ONLY=${i}): ${describe(c)}\n    ${problems.join('\n    ')}`);
  };

  while (ran < total && Date.now() < deadline && !(only !== null && ran > 0)) {
    const batch = Math.min(100, total - ran);
    const indices = only !== null ? [only] : Array.from({ length: batch }, () => next++);
    let k = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, indices.length) }, async () => {
        while (k < indices.length) {
          const i = indices[k++]!;
          const { c, rnd } = caseAt(i);
          check(i, c, await runCase(proxy.port, c, rnd, maxMessage));
        }
      }),
    );
    ran += indices.length;
    // Every 100 cases: others are still served, memory stays bounded, nothing escaped.
    const served = await selectOne();
    if (served) failures.push(`after case ${next - 1}: a fresh client is not served: ${served}`);
    const rss = process.memoryUsage().rss;
    maxRss = Math.max(maxRss, rss);
    if (rss > baseRss + RSS_SLACK) failures.push(`after case ${next - 1}: rss ${(rss / 2 ** 20).toFixed(0)} MB, over the baseline ${(baseRss / 2 ** 20).toFixed(0)} MB + 200 MB`);
    if (uncaught.length) break;
    if (failures.length > 50) break;
  }
  fuzzing = false;
  await otherLoop;
  await Promise.race([other.end().catch(() => undefined), sleep(500)]);
  const secs = (Date.now() - started) / 1000;
  t.comment(`a concurrent client ran ${otherStats.queries} queries meanwhile, slowest ${otherStats.maxMs} ms`);
  t.same(otherStats.errors, [], 'a client connected throughout was served without errors while the cases ran');
  t.ok(otherStats.queries > 0 && otherStats.maxMs < BOUND_MS, `its queries were answered within ${BOUND_MS} ms (slowest ${otherStats.maxMs} ms)`);
  t.comment(`${ran} cases in ${secs.toFixed(1)} s; outcomes ${JSON.stringify(Object.fromEntries(kinds))}; max rss +${((maxRss - baseRss) / 2 ** 20).toFixed(0)} MB`);
  process.stderr.write(`# ${ran} cases in ${secs.toFixed(1)} s (seed ${seed})\n`);

  t.equal(uncaught.length, 0, 'pgshard threw nothing uncaught');
  for (const u of uncaught.slice(0, 10)) t.fail(u);
  t.equal(failures.length, 0, `every case kept the invariants (seed ${seed})`);
  for (const f of failures.slice(0, 30)) t.fail(f);

  // Clients gone: no backend is left inside a transaction, and pgshard holds no client connection.
  await sleep(1000);
  const stuck = await shard.query<{ pid: number; state: string; query: string }>(
    "select pid, state, query from pg_stat_activity where usename = 'app' and state like 'idle in transaction%'",
    'app',
  );
  t.equal(stuck.length, 0, `no shard backend idle in transaction${stuck.length ? ': ' + JSON.stringify(stuck) : ''}`);
  let open = await openConnections(proxy);
  for (let w = 0; open > 0 && w < 20; w++) {
    await sleep(100);
    open = await openConnections(proxy);
  }
  t.equal(open, 0, 'pgshard holds no client connection after every case closed');
  t.equal(await selectOne(), null, 'a normal client is served after fuzzing');
}
