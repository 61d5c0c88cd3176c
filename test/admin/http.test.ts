// The admin HTTP API: access control, /route, /shards, /ring, /ready when a shard stops, and
// /openapi.json describing exactly the routes served.
import t from 'tap';
import http from 'node:http';
import os from 'node:os';
import { routeKey } from '../../src/routing/route-cli.js';
import { isLoopback } from '../../src/admin/http.js';
import { getJson, getText, startStack } from './helpers.js';

const TOKEN = 'let-me-in';
const SERVED = ['/metrics', '/health', '/instances', '/ready', '/shards', '/ring', '/route', '/openapi.json', '/rebalance', '/rebalance/cancel', '/shards/{id}'];
/** Every operation served, as "method path". */
const OPERATIONS = [
  ...['/metrics', '/health', '/instances', '/ready', '/shards', '/ring', '/route', '/openapi.json', '/rebalance'].map((p) => `get ${p}`),
  'post /shards',
  'delete /shards/{id}',
  'post /rebalance/cancel',
];

/** A non-loopback address of this machine, to reach the admin API as a remote client would. */
function externalAddress(): string {
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  throw new Error('this machine has no non-loopback IPv4 address to test remote access from');
}

/** A request with any method, for the 405 case. */
function request(url: string, method: string): Promise<{ status: number; allow: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, allow: res.headers.allow, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('loopback detection', async (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(a), a);
  for (const a of ['10.0.0.1', '192.0.2.2', '::ffff:10.0.0.1', 'fd00::2', undefined]) t.notOk(isLoopback(a), String(a));
});

t.test('with a token', async (t) => {
  const stack = await startStack(t, { token: TOKEN, adminHost: '0.0.0.0' });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const remote = `http://${externalAddress()}:${stack.admin.port}`;

  t.test('every route but /health needs the bearer token, from anywhere', async (t) => {
    for (const base of [stack.adminUrl, remote])
      for (const p of OPERATIONS.filter((o) => o.startsWith('get ') && o !== 'get /health').map((o) => o.slice(4))) {
        const none = await getText(`${base}${p}`);
        t.equal(none.status, 401, `${base}${p} without a token`);
        t.match(JSON.parse(none.text), { error: /Authorization: Bearer/ }, 'the error says what to send');
        t.equal(none.headers.get('www-authenticate'), 'Bearer realm="pgshard admin"');
        const wrong = await getText(`${base}${p}`, { authorization: 'Bearer nope' });
        t.equal(wrong.status, 401, `${base}${p} with a wrong token`);
        t.match(JSON.parse(wrong.text), { error: /wrong bearer token/ });
      }
    const ok = await getText(`${remote}/metrics`, auth);
    t.equal(ok.status, 200, 'a remote client with the token gets /metrics');
    t.match(ok.text, /^pgshard_queries_total\{/m);
  });

  t.test('adding and removing shards: validation, unknown shards, nothing to cancel', async (t) => {
    const send = async (method: string, path: string, body?: unknown, headers: Record<string, string> = auth) => {
      const res = await fetch(`${stack.adminUrl}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
      return { status: res.status, body: (await res.json()) as { error?: string; state?: string } };
    };
    t.equal((await send('POST', '/shards', { id: 'x' }, {})).status, 401, 'POST /shards needs the token');
    t.equal((await send('DELETE', '/shards/s0', undefined, {})).status, 401, 'DELETE /shards/{id} needs the token');
    t.equal((await send('POST', '/rebalance/cancel', undefined, {})).status, 401);
    const bad = await send('POST', '/shards', { id: 'bad id!', host: '', port: 70000, database: 'app', user: 'app' });
    t.equal(bad.status, 400);
    t.match(bad.body.error, /^POST \/shards needs a JSON body \{id, host, port, database, user, password, weight\}: /);
    t.match(bad.body.error, /id: shard ids are letters, digits, _ and -/);
    t.match(bad.body.error, /port: /);
    const notJson = await send('POST', '/shards', '{"id": ');
    t.equal(notJson.status, 400);
    t.match(notJson.body.error, /not valid JSON .*send a JSON object/);
    const none = await send('POST', '/shards');
    t.equal(none.status, 400, 'no body');
    const extra = await send('POST', '/shards', { id: 's9', host: 'h', database: 'd', user: 'u', colour: 'red' });
    t.equal(extra.status, 400);
    t.match(extra.body.error, /colour/);
    const taken = await send('POST', '/shards', { id: 's1', host: '127.0.0.1', port: 5432, database: 'app', user: 'app' });
    t.equal(taken.status, 409);
    t.match(taken.body.error, /shard "s1" is already in the topology: choose another id/);
    const unreachable = await send('POST', '/shards', { id: 's9', host: '127.0.0.1', port: 1, database: 'app', user: 'app', password: 'app' });
    t.equal(unreachable.status, 400);
    t.match(unreachable.body.error, /^cannot connect to shard "s9" at 127\.0\.0\.1:1 database app as app \(.*\): check its host, port, database, user and password$/);
    const s1 = stack.shards.clusters[1]!;
    await stack.shards.clusters[0]!.query('CREATE TABLE nopk (x int)', 'app');
    const noPk = await send('POST', '/shards', { id: 's9', host: '127.0.0.1', port: s1.port, database: 'app', user: 'app', password: 'app' });
    await stack.shards.clusters[0]!.query('DROP TABLE nopk', 'app');
    t.equal(noPk.status, 400);
    t.match(noPk.body.error, /^table "nopk" has no primary key: rebalancing needs one .*ALTER TABLE nopk ADD PRIMARY KEY/);
    t.same((await getJson(`${stack.adminUrl}/rebalance`, auth)).body, { state: 'none' }, 'refused before anything started');
    const unknown = await send('DELETE', '/shards/nope');
    t.equal(unknown.status, 404);
    t.match(unknown.body.error, /shard "nope" is not in the topology: GET \/shards lists the shards/);
    const cancel = await send('POST', '/rebalance/cancel');
    t.equal(cancel.status, 409);
    t.match(cancel.body.error, /no rebalance is running/);
    t.same((await getJson(`${stack.adminUrl}/rebalance`, auth)).body, { state: 'none' });
    const put = await send('PUT', '/shards');
    t.equal(put.status, 405);
    t.match(put.body.error, /\/shards answers GET, HEAD, POST only, not PUT/);
    const shards = await getJson<{ id: string; status: string }[]>(`${stack.adminUrl}/shards`, auth);
    t.same(shards.body.map((s) => [s.id, s.status]), [['s0', 'active'], ['s1', 'active'], ['s2', 'active']]);
  });

  t.test('/health is open', async (t) => {
    t.same(await getJson(`${remote}/health`), { status: 200, body: { status: 'ok' } });
  });

  t.test('/route names the shard that owns a key', async (t) => {
    for (const key of ['1', '42', '-7', '9007199254740993']) {
      const r = await getJson<Record<string, unknown>>(`${stack.adminUrl}/route?table=users&key=${key}`, auth);
      t.equal(r.status, 200);
      t.same(r.body, routeKey(stack.config, 'users', key), `key ${key}: what pgshard route says`);
    }
    const bad = [
      ['/route?table=users', 400, /needs the parameters table and key.*missing: key/],
      ['/route?key=1', 400, /missing: table/],
      ['/route?table=countries&key=de', 400, /reference table/],
      ['/route?table=nope&key=1', 400, /not under "tables"/],
      ['/route?table=users&key=abc', 400, /bigint|integer/i],
    ] as const;
    for (const [p, status, message] of bad) {
      const r = await getJson<{ error: string }>(`${stack.adminUrl}${p}`, auth);
      t.equal(r.status, status, p);
      t.match(r.body, { error: message }, `${p}: ${r.body.error}`);
    }
  });

  t.test('/shards and /ring', async (t) => {
    const shards = await getJson<Record<string, unknown>[]>(`${stack.adminUrl}/shards`, auth);
    t.equal(shards.status, 200);
    t.same(
      shards.body.map((s) => s.id),
      ['s0', 's1', 's2'],
    );
    t.match(shards.body[0], { host: '127.0.0.1', port: stack.shards.ports[0], database: 'app', weight: 1, pool: { size: 20, idle: Number, active: Number, waiting: 0 } });
    t.notOk(JSON.stringify(shards.body).includes('"password"'), 'no passwords');
    const ring = await getJson<{ vnodes: number; points: number; shards: { id: string; points: number; share: number }[] }>(`${stack.adminUrl}/ring`, auth);
    t.equal(ring.status, 200);
    t.equal(ring.body.vnodes, 256);
    t.equal(ring.body.points, 768);
    t.equal(
      ring.body.shards.reduce((n, s) => n + s.points, 0),
      768,
    );
    t.ok(Math.abs(ring.body.shards.reduce((n, s) => n + s.share, 0) - 1) < 1e-9, 'shares sum to 1');
  });

  t.test('/openapi.json lists exactly the routes served', async (t) => {
    const r = await getJson<{ openapi: string; paths: Record<string, Record<string, { security?: unknown[] }>> }>(`${stack.adminUrl}/openapi.json`, auth);
    t.equal(r.status, 200);
    t.match(r.body.openapi, /^3\./);
    t.same(Object.keys(r.body.paths).sort(), [...SERVED].sort());
    t.same(Object.entries(r.body.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)).sort(), [...OPERATIONS].sort());
    t.same(r.body.paths['/health']!.get!.security, [], '/health is documented as open');
    for (const p of Object.keys(r.body.paths).filter((p) => r.body.paths[p]!.get)) {
      const res = await getText(`${stack.adminUrl}${p}${p === '/route' ? '?table=users&key=1' : ''}`, auth);
      t.equal(res.status, 200, `${p} answers`);
    }
  });

  t.test('/instances: one instance without a metadata database', async (t) => {
    const r = await getJson<{ topology: string; instances: { id: string; alive: boolean; self: boolean; heartbeat_age_ms: number }[] }>(`${stack.adminUrl}/instances`, auth);
    t.equal(r.status, 200);
    t.match(r.body.topology, /topology.*\.json$/, 'the topology file');
    t.equal(r.body.instances.length, 1);
    t.same([r.body.instances[0]!.alive, r.body.instances[0]!.self], [true, true]);
  });

  t.test('unknown routes and methods', async (t) => {
    const nf = await getJson<{ error: string }>(`${stack.adminUrl}/nope`, auth);
    t.equal(nf.status, 404);
    t.match(nf.body.error, /no such admin route \/nope: the admin API serves \/metrics/);
    const post = await request(`${stack.adminUrl}/metrics`, 'POST');
    t.equal(post.status, 405);
    t.equal(post.allow, 'GET, HEAD');
    t.match(JSON.parse(post.body), { error: /GET/ });
  });

  t.test('/ready: 200 with every shard, 503 naming a stopped one', async (t) => {
    const ok = await getJson<{ status: string; shards: { id: string; ok: boolean }[] }>(`${stack.adminUrl}/ready`, auth);
    t.equal(ok.status, 200);
    t.same(
      ok.body.shards.map((s) => [s.id, s.ok]),
      [
        ['s0', true],
        ['s1', true],
        ['s2', true],
      ],
    );
    await stack.shards.clusters[1]!.stop();
    const t0 = Date.now();
    const down = await getJson<{ error: string; shards: { id: string; ok: boolean; error?: string }[] }>(`${stack.adminUrl}/ready`, auth);
    t.equal(down.status, 503);
    t.ok(Date.now() - t0 < 5000, 'answers within the probe timeout');
    t.match(down.body.error, /^not ready: no connection to shard "s1" \(.+\); check that the shard is running/);
    t.same(
      down.body.shards.map((s) => [s.id, s.ok]),
      [
        ['s0', true],
        ['s1', false],
        ['s2', true],
      ],
    );
    const metrics = await getText(`${stack.adminUrl}/metrics`, auth);
    t.match(metrics.text, /^pgshard_shard_up\{shard="s1"\} 0$/m, 'the metrics say s1 is down');
    const ts = Number(/^pgshard_shard_last_error_timestamp_seconds\{shard="s1"\} (\S+)$/m.exec(metrics.text)?.[1]);
    t.ok(Math.abs(ts - Date.now() / 1000) < 60, 'with the time of the failure');
  });
});

t.test('without a token: loopback clients only', async (t) => {
  const stack = await startStack(t, { adminHost: '0.0.0.0' });
  const remote = `http://${externalAddress()}:${stack.admin.port}`;
  for (const p of OPERATIONS.filter((o) => o.startsWith('get ') && o !== 'get /health').map((o) => o.slice(4))) {
    const local = await getText(`${stack.adminUrl}${p}${p === '/route' ? '?table=users&key=1' : ''}`);
    t.equal(local.status, 200, `${p} from loopback`);
    const r = await getJson<{ error: string }>(`${remote}${p}`);
    t.equal(r.status, 403, `${p} from ${remote}`);
    t.match(r.body.error, /answers loopback clients only: connect from this host, or set admin\.token/);
  }
  const post = await fetch(`${remote}/shards`, { method: 'POST', body: '{}' });
  t.equal(post.status, 403, 'POST /shards from a remote client without a token');
  t.equal((await getText(`${remote}/health`)).status, 200, '/health stays open');
});
