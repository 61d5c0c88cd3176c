import t from 'tap';
import { validateConfig } from '../../src/config/load.js';
import { initHash } from '../../src/routing/hash.js';
import { routeKey, RouteKeyError } from '../../src/routing/route-cli.js';
import { KeyValueError } from '../../src/routing/canonical.js';
import { HashRing } from '../../src/routing/ring.js';

await initHash();

const config = validateConfig({
  users: [{ name: 'app', auth: 'trust' }],
  shards: ['s1', 's2', 's3'].map((id) => ({ id, host: 'localhost', database: 'app', user: 'app' })),
  tables: {
    users: { shard_key: 'id' },
    sessions: { shard_key: 'token', key_type: 'uuid' },
    'public.events': { shard_key: 'account', key_type: 'int' },
    countries: { reference: true },
  },
});

t.test('a key routes to the shard the router would pick', async (t) => {
  const r = routeKey(config, 'users', '0042');
  t.same({ ...r, hash: undefined, point: undefined }, { table: 'users', keyType: 'bigint', canonical: '42', hash: undefined, shard: 's3', point: undefined });
  t.match(r.hash, /^[0-9a-f]{16}$/);
  t.match(r.point, /^[0-9a-f]{16}$/);
  const ring = HashRing.build(config.shards, config.ring.vnodes);
  t.same(ring.pointFor(BigInt('0x' + r.hash)), { point: BigInt('0x' + r.point), shard: r.shard }, 'the owning point');
  t.equal(routeKey(config, 'users', '42').shard, r.shard, "42 and '0042' agree");
  t.equal(routeKey(config, 'sessions', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11').canonical, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  t.equal(routeKey(config, 'events', '7').table, 'public.events', 'public. schema is optional');
});

t.test('errors', async (t) => {
  t.throws(() => routeKey(config, 'countries', '1'), new RouteKeyError('table "countries" is a reference table: it lives on every shard (s1, s2, s3), so no key routes it'));
  t.throws(() => routeKey(config, 'nope', '1'), RouteKeyError);
  t.throws(() => routeKey(config, 'nope', '1'), /treated as a reference table that lives on every shard/);
  t.throws(() => routeKey({ ...config, unknown_tables: 'refuse' }, 'nope', '1'), /unknown_tables is "refuse"/);
  t.throws(() => routeKey(config, 'users', 'abc'), new KeyValueError('22P02', 'invalid input syntax for type bigint: "abc"'));
  t.throws(() => routeKey(config, 'events', '3000000000'), { name: 'KeyValueError', sqlstate: '22003' });
});
