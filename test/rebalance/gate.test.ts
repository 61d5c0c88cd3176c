import t from 'tap';
import { initParser, StatementAnalyzer } from '../../src/sql/analyze.js';
import { initHash } from '../../src/routing/hash.js';
import { HashRing } from '../../src/routing/ring.js';
import { canonicalFromText } from '../../src/routing/canonical.js';
import { CutoverGate } from '../../src/rebalance/gate.js';
import type { Config } from '../../src/config/schema.js';

await Promise.all([initParser(), initHash()]);

const tables: Config['tables'] = { users: { shard_key: 'id', key_type: 'bigint', cross_shard: 'allow' }, countries: { reference: true } };
const analyzer = new StatementAnalyzer(tables, 'reference', 100);
const before = HashRing.build(['s0', 's1', 's2'].map((id) => ({ id, weight: 1 })), 64);
const after = before.withShard({ id: 's3', weight: 1 });
const moves = (k: number) => before.shardFor(canonicalFromText('bigint', String(k))) !== after.shardFor(canonicalFromText('bigint', String(k)));
const moving = Array.from({ length: 200 }, (_, i) => i + 1).find(moves)!;
const staying = Array.from({ length: 200 }, (_, i) => i + 1).find((k) => !moves(k))!;

const hold = (gate: CutoverGate, sql: string, params: string[] | null = null) => {
  const a = analyzer.analyze(sql);
  const p = params ? { values: params.map((v) => Buffer.from(v)), formats: params.map(() => 0 as const) } : null;
  return gate.holdFor(a.statements[0]!, a.hint, p, null);
};

t.test('with no cut-over nothing is held', async (t) => {
  const gate = new CutoverGate(tables);
  t.notOk(gate.active);
  t.equal(hold(gate, `SELECT * FROM users WHERE id = ${moving}`), null);
});

t.test('during a cut-over: moving keys and statements on every shard wait, the rest goes', async (t) => {
  const gate = new CutoverGate(tables);
  gate.close(before, after);
  t.ok(gate.active);
  t.equal(gate.epoch, 1);
  const held = hold(gate, `UPDATE users SET name = 'x' WHERE id = ${moving}`);
  t.ok(held, 'a moving key waits');
  t.ok(hold(gate, 'SELECT * FROM users WHERE id = $1', [String(moving)]), 'a moving key as a bind value waits');
  t.equal(hold(gate, `SELECT * FROM users WHERE id = ${staying}`), null, 'a key that stays goes');
  t.equal(hold(gate, 'SELECT * FROM users WHERE id = $1', [String(staying)]), null);
  t.ok(hold(gate, 'SELECT count(*) FROM users'), 'a read of every shard waits (the new shard joins it)');
  t.ok(hold(gate, `INSERT INTO countries VALUES ('x', 'y')`), 'a reference write (every shard) waits');
  t.equal(hold(gate, 'SELECT 1'), null, 'no sharded table: goes');
  t.equal(hold(gate, 'SELECT * FROM countries'), null, 'a reference read goes');
  t.ok(hold(gate, `INSERT INTO users (id, name) VALUES (${staying}, 'a'), (${moving}, 'b')`), 'a multi-row insert with one moving key waits');
  t.equal(gate.heldStatements, 5);
  let released = false;
  void held!.then(() => (released = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(released);
  gate.open();
  await held;
  t.ok(released, 'opening releases the held statements');
  t.notOk(gate.active);
  t.equal(hold(gate, `UPDATE users SET name = 'x' WHERE id = ${moving}`), null);
  t.throws(() => {
    gate.close(before, after);
    gate.close(before, after);
  }, /already in progress/);
});
