// An instance's part in a cut-over, without sockets: the gate follows the topology's phase, the
// acknowledgement waits until the instance is quiet, and an instance cut off from the store holds moving
// keys by itself until it has read the topology again. The peers are a small in-memory implementation of
// the Peers interface (the Postgres one is tested in test/topology/pg-store.test.ts).
import t from 'tap';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { initHash } from '../../src/routing/hash.js';
import { fileStore, Topology } from '../../src/topology/topology.js';
import { CutoverGate } from '../../src/rebalance/gate.js';
import { CutoverFollower } from '../../src/rebalance/cutover-follower.js';
import type { Peers } from '../../src/topology/peers.js';
import type { RebalanceRecord } from '../../src/topology/types.js';
import type { ShardConfig } from '../../src/config/schema.js';
import { StatementAnalyzer, initParser } from '../../src/sql/analyze.js';
import { testLogger, sleep } from '../helpers/proxy.js';
import type { Teardownable } from '../helpers/shards.js';
import { tempDir } from '../helpers/temp-dir.js';

await Promise.all([initHash(), initParser()]);

const shard = (id: string, port: number): ShardConfig => ({ id, host: '127.0.0.1', port, database: 'app', user: 'app', password: 'app', weight: 1, sslmode: 'prefer' });
const tables = { users: { shard_key: 'id', key_type: 'bigint' as const, cross_shard: 'allow' as const } };

class TestPeers implements Peers {
  readonly instance = 'me';
  acks: string[] = [];
  isFenced = false;
  async ack(token: string): Promise<void> {
    this.acks.push(token);
  }
  async notAcked(): Promise<string[]> {
    return [];
  }
  async alive(): Promise<boolean> {
    return true;
  }
  fenced(): boolean {
    return this.isFenced;
  }
  async list() {
    return [];
  }
}

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(5);
  }
}

async function setup(t: Teardownable) {
  const dir = tempDir('follower');
  const cfg = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001), shard('b', 5002)], ring: { vnodes: 32 }, tables, topology: { file: path.join(dir, 't.json') } });
  const topo = await Topology.open(cfg, fileStore(cfg, 'me'));
  const gate = new CutoverGate(cfg.tables);
  const peers = new TestPeers();
  let quiet = false;
  const follower = new CutoverFollower(topo, gate, peers, () => quiet, 500, testLogger());
  t.teardown(() => follower.close());
  const analyzer = new StatementAnalyzer(cfg.tables, 'reference', 100);
  const moving = (id: number, r: RebalanceRecord) => {
    // A statement on key `id` is held iff its owner differs between the record's rings.
    const st = analyzer.analyze(`SELECT * FROM users WHERE id = ${id}`).statements[0]!;
    return gate.holdFor(st, null, null, null) !== null;
  };
  const record = (id: string, to: ShardConfig[], phase: RebalanceRecord['phase'], attempts = 0): RebalanceRecord => ({
    id, kind: 'add', shard: to[to.length - 1]!.id, phase, from: [...topo.shards], to, sources: [], rowsCopied: 0, rowsScanned: 0, rowsTotal: 0, rowsCleaned: 0, pauseMs: null, cutoverAttempts: attempts, startedAt: 'now', finishedAt: null, error: null, owner: 'me',
  });
  return { topo, gate, peers, follower, moving, record, setQuiet: (q: boolean) => (quiet = q) };
}

t.test('the gate follows the cut-over phase; the acknowledgement waits for quiet', async (t) => {
  const { topo, gate, peers, record, setQuiet, moving } = await setup(t);
  const to = [...topo.shards, shard('c', 5003)];
  await topo.setRebalance(record('r1', to, 'catching_up'));
  t.notOk(gate.active, 'open while catching up');
  await topo.setRebalance(record('r1', to, 'cutting_over', 1));
  t.ok(gate.active, 'closed as soon as the cut-over is read');
  const held = Array.from({ length: 200 }, (_, i) => i + 1).filter((id) => moving(id, record('r1', to, 'cutting_over', 1)));
  t.ok(held.length > 20 && held.length < 120, `about a third of the keys held (${held.length} of 200)`);
  await sleep(50);
  t.same(peers.acks, [], 'no acknowledgement while something runs on the old ring');
  setQuiet(true);
  await until('acknowledged', () => peers.acks.length === 1);
  t.same(peers.acks, ['r1:1']);
  // The attempt is abandoned: the gate opens; the next attempt closes it again and is acknowledged anew.
  await topo.setRebalance(record('r1', to, 'catching_up', 1));
  t.notOk(gate.active, 'open again after an abandoned attempt');
  await topo.setRebalance(record('r1', to, 'cutting_over', 2));
  t.ok(gate.active);
  await until('second acknowledgement', () => peers.acks.length === 2);
  t.same(peers.acks, ['r1:1', 'r1:2']);
  // The switch: the new ring is in place when the gate opens.
  let ringAtOpen: string[] = [];
  const origOpen = gate.open.bind(gate);
  gate.open = () => {
    ringAtOpen = topo.ring.shardIds;
    origOpen();
  };
  await topo.setShards(to, { ...record('r1', to, 'cleaning', 2) });
  t.notOk(gate.active, 'open after the switch');
  t.same(ringAtOpen, ['a', 'b', 'c'], 'the gate opened on the new ring');
});

t.test('a gate closed for one rebalance is closed again for the next when the states in between were missed', async (t) => {
  const { topo, gate, record, moving } = await setup(t);
  const toC = [...topo.shards, shard('c', 5003)];
  await topo.setRebalance(record('r1', toC, 'cutting_over', 1));
  const r1 = Array.from({ length: 300 }, (_, i) => i + 1).map((id) => moving(id, record('r1', toC, 'cutting_over', 1)));
  // Another instance ran r1 to its end and started r2 (add d instead) before this one read anything.
  const toD = [...topo.shards, shard('d', 5004)];
  await topo.setRebalance(record('r2', toD, 'cutting_over', 1));
  t.ok(gate.active);
  const r2 = Array.from({ length: 300 }, (_, i) => i + 1).map((id) => moving(id, record('r2', toD, 'cutting_over', 1)));
  t.not(r1.join(), r2.join(), 'the gate now holds the keys r2 moves');
});

t.test('cut off from the store during a rebalance: moving keys are held until the topology is read again', async (t) => {
  const { topo, gate, peers, record } = await setup(t);
  const to = [...topo.shards, shard('c', 5003)];
  peers.isFenced = true;
  await sleep(120);
  t.notOk(gate.active, 'no rebalance known: nothing to hold');
  await topo.setRebalance(record('r1', to, 'copying'));
  await until('held while fenced', () => gate.active);
  peers.isFenced = false;
  await until('released once the store answers again', () => !gate.active);
});
