import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { initHash } from '../../src/routing/hash.js';
import { Topology, topologyFile } from '../../src/topology/topology.js';
import { FileTopologyStore } from '../../src/topology/store.js';

await initHash();

const shard = (id: string, port: number) => ({ id, host: '127.0.0.1', port, database: 'app', user: 'app', password: 'app' });
const config = (file: string, shards = [shard('a', 5001), shard('b', 5002)]) =>
  validateConfig({ users: [{ name: 'app', password: 'app' }], shards, topology: { file }, ring: { vnodes: 16 } });

t.test('the configuration seeds the file once; afterwards the file is the truth', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgshard-topo-'));
  const file = path.join(dir, 'sub', 'topology.json');
  const topo = Topology.open(config(file), 'x');
  t.equal(topo.version, 1);
  t.same(topo.ring.shardIds, ['a', 'b']);
  t.equal(statSync(file).mode & 0o777, 0o600, 'passwords inside: owner only');

  const seen: number[] = [];
  topo.onChange((next, ring) => seen.push(next.version, ring.shardIds.length));
  topo.setShards([...topo.shards, { ...shard('c', 5003), weight: 2 }], null);
  t.same(seen, [2, 3]);
  t.equal(topo.ring.size, 16 * 4, 'c weighs 2');

  // A restart with the same configuration loads the file, not the configuration's two shards.
  const again = Topology.open(config(file), 'x');
  t.equal(again.version, 2);
  t.same(again.ring.shardIds, ['a', 'b', 'c']);
  t.same(again.ring.points(), topo.ring.points());
});

t.test('a rebalance state change keeps the ring and the version', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgshard-topo-'));
  const file = path.join(dir, 'topology.json');
  const topo = Topology.open(config(file), 'x');
  const ring = topo.ring;
  topo.setRebalance({ id: 'r1', kind: 'add', shard: 'c', phase: 'copying', from: [], to: [], sources: [], rowsCopied: 5, rowsTotal: 9, rowsCleaned: 0, pauseMs: null, cutoverAttempts: 0, startedAt: 'now', finishedAt: null, error: null });
  t.equal(topo.ring, ring);
  t.equal(topo.version, 1);
  t.equal(JSON.parse(readFileSync(file, 'utf8')).rebalance.phase, 'copying');
  t.equal(Topology.open(config(file), 'x').rebalance?.rowsCopied, 5);
});

t.test('a damaged file is refused with what to do', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgshard-topo-'));
  const file = path.join(dir, 'topology.json');
  writeFileSync(file, '{"version": 1,');
  t.throws(() => new FileTopologyStore(file).load(), /is not valid JSON/);
  t.throws(() => Topology.open(config(file), 'x'), /remove it to start again/);
  writeFileSync(file, '{"version": 1}');
  t.throws(() => new FileTopologyStore(file).load(), /lacks version, vnodes or shards/);
});

t.test('the default file depends on the instance and the seed shards', async (t) => {
  const base = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)] });
  const other = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5002)] });
  t.match(topologyFile(base, 'i1'), /\.pgshard\/topology-i1-[0-9a-f]{12}\.json$/);
  t.not(topologyFile(base, 'i1'), topologyFile(other, 'i1'));
  t.not(topologyFile(base, 'i1'), topologyFile(base, 'i2'));
  t.equal(topologyFile(base, 'i1'), topologyFile(validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)] }), 'i1'));
});
