/**
 * The file transaction log (src/execute/txlog.ts): decisions recorded together are fsynced together, each
 * resolves only once on disk, and the file is never rewritten under a decision whose fsync is under way.
 */
import t from 'tap';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { TxLog } from '../../src/execute/txlog.js';
import { tempDir } from '../helpers/temp-dir.js';

t.test('decisions recorded at once are all durable when they resolve, and survive a reopen', async (t) => {
  const file = path.join(tempDir('txlog'), 'log.jsonl');
  const log = TxLog.open(file);
  const gids = Array.from({ length: 50 }, (_, i) => `pgshard_t_${i}`);
  await Promise.all(gids.map((g, i) => log.recordCommit(g, [`s${i % 3}`])));
  t.ok(gids.every((g) => log.isDecided(g)), 'every decision is known once it resolved');
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 50, 'one line per decision');
  log.markDone(gids[0]!);
  log.close();
  const again = TxLog.open(file);
  t.same([...again.pending().keys()].sort(), gids.slice(1).sort(), 'after a reopen: every decision not done');
  t.same(again.pending().get('pgshard_t_4'), ['s1']);
  again.close();
});

t.test('a rewrite of the file waits for the decision being fsynced', async (t) => {
  const file = path.join(tempDir('txlog'), 'log.jsonl');
  const log = TxLog.open(file);
  const gids = Array.from({ length: 10_001 }, (_, i) => `pgshard_t_${i}`);
  await Promise.all(gids.map((g) => log.recordCommit(g, ['s0'])));
  const late = log.recordCommit('pgshard_t_late', ['s1']); // its fsync is under way…
  for (const g of gids) log.markDone(g); // …when the 10,001st done record asks for a rewrite
  await late;
  t.ok(log.isDecided('pgshard_t_late'));
  log.close();
  const again = TxLog.open(file);
  t.same([...again.pending()], [['pgshard_t_late', ['s1']]], 'the late decision is in the rewritten file; the finished ones are gone');
  again.close();
});

t.test('a closed log refuses decisions', async (t) => {
  const log = TxLog.open(path.join(tempDir('txlog'), 'log.jsonl'));
  log.close();
  await t.rejects(log.recordCommit('pgshard_t_x', ['s0']), /closed/);
});
