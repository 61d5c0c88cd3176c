import t from 'tap';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { initHash } from '../../src/routing/hash.js';
import { fileStore, Topology, topologyFile } from '../../src/topology/topology.js';
import type { Config } from '../../src/config/schema.js';
import { FileTopologyStore } from '../../src/topology/store.js';
import { tempDir } from '../helpers/temp-dir.js';

await initHash();

const open = (cfg: Config) => Topology.open(cfg, fileStore(cfg, 'x'));

const shard = (id: string, port: number) => ({ id, host: '127.0.0.1', port, database: 'app', user: 'app', password: 'app' });
const config = (file: string, shards = [shard('a', 5001), shard('b', 5002)]) =>
  validateConfig({ users: [{ name: 'app', password: 'app' }], shards, topology: { file }, ring: { vnodes: 16 } });

t.test('the configuration seeds the file once; afterwards the file is the truth', async (t) => {
  const dir = tempDir('topo');
  const file = path.join(dir, 'sub', 'topology.json');
  const topo = await open(config(file));
  t.equal(topo.version, 1);
  t.same(topo.ring.shardIds, ['a', 'b']);
  t.equal(statSync(file).mode & 0o777, 0o600, 'passwords inside: owner only');

  const seen: number[] = [];
  topo.onChange((next, ring) => seen.push(next.version, ring.shardIds.length));
  await topo.setShards([...topo.shards, { ...shard('c', 5003), weight: 2 }], null);
  t.same(seen, [2, 3]);
  t.equal(topo.ring.size, 16 * 4, 'c weighs 2');

  // A restart with the same configuration loads the file, not the configuration's two shards.
  const again = await open(config(file));
  t.equal(again.version, 2);
  t.same(again.ring.shardIds, ['a', 'b', 'c']);
  t.same(again.ring.points(), topo.ring.points());
});

t.test('a rebalance state change keeps the ring and the version', async (t) => {
  const dir = tempDir('topo');
  const file = path.join(dir, 'topology.json');
  const topo = await open(config(file));
  const ring = topo.ring;
  await topo.setRebalance({ id: 'r1', kind: 'add', shard: 'c', phase: 'copying', from: [], to: [], sources: [], rowsCopied: 5, rowsScanned: 7, rowsTotal: 9, rowsCleaned: 0, pauseMs: null, cutoverAttempts: 0, startedAt: 'now', finishedAt: null, error: null });
  t.equal(topo.ring, ring);
  t.equal(topo.version, 1);
  t.equal(JSON.parse(readFileSync(file, 'utf8')).rebalance.phase, 'copying');
  t.equal((await open(config(file))).rebalance?.rowsCopied, 5);
});

t.test('a damaged file is refused with what to do', async (t) => {
  const dir = tempDir('topo');
  const file = path.join(dir, 'topology.json');
  writeFileSync(file, '{"version": 1,');
  t.throws(() => new FileTopologyStore(file).loadSync(), /is not valid JSON/);
  await t.rejects(open(config(file)), /remove it to start again/);
  writeFileSync(file, '{"version": 1}');
  t.throws(() => new FileTopologyStore(file).loadSync(), /lacks version, vnodes or shards/);
});

t.test('the default file depends on the instance and the seed shards', async (t) => {
  const base = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)] });
  const other = validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5002)] });
  t.match(topologyFile(base, 'i1'), /\.pgshard\/topology-i1-[0-9a-f]{12}\.json$/);
  t.not(topologyFile(base, 'i1'), topologyFile(other, 'i1'));
  t.not(topologyFile(base, 'i1'), topologyFile(base, 'i2'));
  t.equal(topologyFile(base, 'i1'), topologyFile(validateConfig({ users: [{ name: 'app', password: 'app' }], shards: [shard('a', 5001)] }), 'i1'));
});

t.test("the configuration still says how to reach the shards it lists (the store keeps membership and weights)", async (t) => {
  const dir = tempDir('topo');
  const file = path.join(dir, 'topology.json');
  const first = await open(config(file));
  await first.setShards([...first.shards, { ...shard('c', 5003), weight: 3 }], null);
  // The operator moves shard b and changes its password and TLS mode in the configuration.
  const edited = [shard('a', 5001), { ...shard('b', 6002), password: 'new', sslmode: 'disable' as const }];
  const again = await open(config(file, edited));
  const b = again.shards.find((s) => s.id === 'b')!;
  t.equal(b.port, 6002, 'new address');
  t.equal(b.password, 'new', 'new password');
  t.equal(b.sslmode, 'disable', 'new TLS mode');
  t.same(again.ring.shardIds, ['a', 'b', 'c'], 'membership from the store: c (added through the API) stays');
  t.equal(again.shards.find((s) => s.id === 'c')!.weight, 3);
  t.equal(again.ring.points().length, first.ring.points().length, 'same ring');
  t.same(JSON.parse(readFileSync(file, 'utf8')).shards.find((s: { id: string }) => s.id === 'b').port, 6002, 'persisted');
});

t.test('a shard password from an environment variable or a file is never written to the topology file', async (t) => {
  const dir = tempDir('topo');
  const file = path.join(dir, 'topology.json');
  const secretFile = path.join(dir, 'b.secret');
  writeFileSync(secretFile, 'from-a-file\n');
  process.env.PGSHARD_TEST_TOPO_SECRET = 'from-the-env';
  t.teardown(() => void delete process.env.PGSHARD_TEST_TOPO_SECRET);
  const withSecrets = [
    { ...shard('a', 5001), password: undefined, password_env: 'PGSHARD_TEST_TOPO_SECRET' },
    { ...shard('b', 5002), password: undefined, password_file: secretFile },
  ];
  const topo = await open(config(file, withSecrets));
  t.equal(topo.shards.find((s) => s.id === 'a')!.password, 'from-the-env', 'resolved in memory');
  t.equal(topo.shards.find((s) => s.id === 'b')!.password, 'from-a-file');
  await topo.setShards([...topo.shards], null);
  const text = readFileSync(file, 'utf8');
  t.notMatch(text, /from-the-env|from-a-file/, 'neither secret is in the file');
  t.match(text, /PGSHARD_TEST_TOPO_SECRET/, 'where to find it is');
  // A shard the configuration no longer lists still gets its password from the source the store kept.
  const again = await open(config(file, [shard('z', 5009)]));
  t.equal(again.shards.find((s) => s.id === 'a')!.password, 'from-the-env');
  t.equal(again.shards.find((s) => s.id === 'b')!.password, 'from-a-file');
});
