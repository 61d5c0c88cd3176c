// Passwords and tokens from environment variables and files, and never in a log line.
import t from 'tap';
import { Writable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { withShards } from '../helpers/shards.js';
import { pgClient, proxyConfigDoc } from '../helpers/proxy.js';
import { psql } from '../helpers/tools.js';
import { certDir } from '../helpers/certs.js';
import { ConfigError, loadConfig, validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';

// test/helpers/proxy.ts registers the module hook the server's graph needs under tap; load it after.
const { PgShardServer } = await import('../../src/server/server.js');
const { Metrics } = await import('../../src/admin/metrics.js');
const { startAdmin } = await import('../../src/admin/http.js');

const CLIENT_PW = 'client-Secret-4711';
const SHARD_PW = 'shard-Secret-0815';
const TOKEN = 'admin-Token-1234567';
const WRONG_PW = 'wrong-Guess-999';
const PARAM = 'param-Value-31337';
const dir = certDir(t);

t.test('validation resolves _env and _file sources and names what is missing, never a value', async (t) => {
  const file = path.join(dir, 'pw');
  writeFileSync(file, 'from-file\n');
  const base = (over: Record<string, unknown>) => ({
    users: [{ name: 'app', password_file: file }],
    shards: [{ id: 's0', host: 'h', database: 'd', user: 'u', password_env: 'SHARD_PW' }],
    admin: { port: 0, token_env: 'ADMIN_TOKEN' },
    ...over,
  });
  const src = (env: Record<string, string>) => ({
    env,
    readFile: (p: string): string => {
      if (p === file) return 'from-file\n';
      throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    },
  });
  const cfg = validateConfig(base({}), 'test', src({ SHARD_PW: 'from-env', ADMIN_TOKEN: 'tok' }));
  t.equal(cfg.users[0]!.password, 'from-file', 'the trailing newline of the file is dropped');
  t.equal(cfg.shards[0]!.password, 'from-env');
  t.equal(cfg.admin!.token, 'tok');

  const e = t.throws(() => validateConfig(base({ users: [{ name: 'app', password_file: '/no/such' }] }), 'test', src({ ADMIN_TOKEN: 'tok' }))) as ConfigError;
  t.same(e.problems, ['users[0].password_file: cannot read /no/such: ENOENT', 'shards[0].password_env: the environment variable SHARD_PW is not set (or empty)']);
  t.throws(() => validateConfig(base({ users: [{ name: 'app', password: 'x', password_env: 'Y' }] }), 'test', src({})), /users\[0\]: give one of password, password_env, password_file/);
  t.throws(() => validateConfig(base({ admin: { port: 0, token: 'a', token_file: 'b' } }), 'test', src({})), /admin: give one of token, token_env, token_file/);
});

t.test('the example configuration validates and has clients use SCRAM-SHA-256', async (t) => {
  const cfg = loadConfig(path.resolve(import.meta.dirname, '../../config/pgshard.example.yaml'), {});
  t.equal(cfg.auth.method, 'scram-sha-256');
  t.ok(cfg.users.every((u) => (u.auth ?? cfg.auth.method) === 'scram-sha-256'));
});

t.test('end to end: secrets from env and file; no log line holds one', async (t) => {
  const shards = await withShards(t, 1, { users: [{ name: 'svc', password: SHARD_PW, superuser: true }] });
  const pwFile = path.join(dir, 'client-pw');
  writeFileSync(pwFile, `${CLIENT_PW}\n`);
  process.env.PGSHARD_TEST_SHARD_PW = SHARD_PW;
  process.env.PGSHARD_TEST_TOKEN = TOKEN;
  t.teardown(() => {
    delete process.env.PGSHARD_TEST_SHARD_PW;
    delete process.env.PGSHARD_TEST_TOKEN;
  });
  const doc = proxyConfigDoc(shards.clusters, {
    users: [{ name: 'app', password_file: pwFile }],
    shards: [{ id: 's0', host: '127.0.0.1', port: shards.ports[0], database: 'app', user: 'svc', password_env: 'PGSHARD_TEST_SHARD_PW' }],
    admin: { host: '127.0.0.1', port: 0, token_env: 'PGSHARD_TEST_TOKEN' },
    log: { level: 'trace', slow_statement_ms: 0 },
  });
  const config = validateConfig(doc, 'test');
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logged += chunk.toString('utf8');
      cb();
    },
  });
  const log = createLogger('trace', false, sink);
  const server = new PgShardServer(config, log);
  const metrics = new Metrics({ healthIntervalMs: 1000 });
  (server as unknown as { observer: unknown }).observer = metrics;
  const port = await server.start();
  const admin = await startAdmin(server, metrics, config.admin!, log);
  t.teardown(async () => {
    await admin.close();
    await server.stop(0);
  });

  const c = await pgClient(port, { t, password: CLIENT_PW });
  t.same((await c.query('SELECT $1::text AS v, current_user AS u', [PARAM])).rows, [{ v: PARAM, u: 'svc' }], 'the shard password from the environment works');
  await c.query('SELECT pg_catalog.length($1)', [PARAM]).catch(() => undefined);
  const ok = await psql(port, 'select 1', { password: CLIENT_PW, tuplesOnly: true });
  t.equal(ok.stdout, '1\n', 'the client password from the file works');
  const bad = await psql(port, 'select 1', { password: WRONG_PW });
  t.match(bad.stderr, /password authentication failed/);
  const url = `http://127.0.0.1:${admin.port}/shards`;
  t.equal((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200, 'the admin token from the environment works');
  t.equal((await fetch(url, { headers: { authorization: `Bearer ${WRONG_PW}` } })).status, 401);
  // A config object logged by mistake is redacted.
  log.info({ config }, 'configuration (test)');

  await new Promise((r) => setTimeout(r, 200));
  t.match(logged, /client connected/, 'the log has the session events');
  t.match(logged, /\[redacted\]/, 'the logged configuration was redacted');
  for (const [name, secret] of Object.entries({ CLIENT_PW, SHARD_PW, TOKEN, WRONG_PW, PARAM })) t.notOk(logged.includes(secret), `no log line contains ${name}`);
});
