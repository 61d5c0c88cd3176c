// TLS from pgshard to its shards (shards[].sslmode, as libpq's), against a real shard started with
// ssl=on and a certificate from a test CA generated here.
import t from 'tap';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { withShards } from '../helpers/shards.js';
import { errorOf, pgClient, startProxy } from '../helpers/proxy.js';
import { certDir, giveKeyTo, makeCA, makeServerCert } from '../helpers/certs.js';
import { serverUser } from '../../src/embedded/os-user.js';
import { validateConfig } from '../../src/config/load.js';

const dir = certDir(t);
const ca = makeCA(dir, 'shard-ca');
const otherCa = makeCA(dir, 'other-ca');
const server = makeServerCert(dir, ca, 'shard', ['DNS:localhost']);
// The server reads its key as the OS user it runs as (root cannot run Postgres).
const shardKey = path.join(dir, 'shard-server.key');
copyFileSync(server.key, shardKey);
giveKeyTo(shardKey, process.getuid?.() === 0 ? await serverUser() : null);

const tlsShard = await withShards(t, 1, { settings: { ssl: 'on', ssl_cert_file: server.cert, ssl_key_file: shardKey } });
const plainShard = await withShards(t, 1);

/** pgshard in front of the TLS shard with these connection settings for it. */
async function proxyWith(shard: Record<string, unknown>, shards = tlsShard.clusters) {
  return startProxy(t, shards, { shards: [{ id: 's0', host: '127.0.0.1', port: shards[0]!.port, database: 'app', user: 'app', password: 'app', ...shard }] });
}

/** Whether the backend connection that serves this client is encrypted, as the shard sees it. */
async function backendSsl(proxyPort: number): Promise<boolean> {
  const c = await pgClient(proxyPort);
  try {
    const r = await c.query('SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()');
    return r.rows[0].ssl as boolean;
  } finally {
    await c.end();
  }
}

t.test('verify-full with the right CA and host name: encrypted', async (t) => {
  const p = await proxyWith({ host: 'localhost', sslmode: 'verify-full', sslrootcert: ca.cert });
  t.equal(await backendSsl(p.port), true);
});

t.test('verify-ca checks the chain, not the name', async (t) => {
  const p = await proxyWith({ sslmode: 'verify-ca', sslrootcert: ca.cert });
  t.equal(await backendSsl(p.port), true);
});

t.test('prefer (the default) and require encrypt without verifying; disable does not encrypt', async (t) => {
  t.equal(await backendSsl((await proxyWith({})).port), true, 'prefer');
  t.equal(await backendSsl((await proxyWith({ sslmode: 'require' })).port), true, 'require');
  t.equal(await backendSsl((await proxyWith({ sslmode: 'disable' })).port), false, 'disable');
  t.equal(await backendSsl((await proxyWith({}, plainShard.clusters)).port), false, 'prefer falls back to plain on a shard without ssl');
});

t.test('verification failures are refused with a clear error', async (t) => {
  const wrongCa = await proxyWith({ host: 'localhost', sslmode: 'verify-full', sslrootcert: otherCa.cert });
  const e1 = await errorOf(() => pgClient(wrongCa.port));
  t.equal(e1?.code, '08006');
  t.match(e1?.message, /could not connect to shard "s0" at localhost:\d+: TLS: .*(self[- ]signed certificate in certificate chain|unable to verify|unable to get local issuer).*sslmode=verify-full/);

  const wrongHost = await proxyWith({ host: '127.0.0.1', sslmode: 'verify-full', sslrootcert: ca.cert });
  const e2 = await errorOf(() => pgClient(wrongHost.port));
  t.equal(e2?.code, '08006');
  t.match(e2?.message, /TLS: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list/);

  const noSsl = await proxyWith({ sslmode: 'require' }, plainShard.clusters);
  const e3 = await errorOf(() => pgClient(noSsl.port));
  t.match(e3?.message, /the server does not accept SSL connections \(sslmode=require\)/);
  const ok = await proxyWith({ sslmode: 'verify-ca', sslrootcert: ca.cert });
  t.equal(await backendSsl(ok.port), true, 'the same shard with the right settings');
});

t.test('configuration: verify modes need sslrootcert', async (t) => {
  const doc = (shard: Record<string, unknown>) => ({ users: [{ name: 'app', password: 'x' }], shards: [{ id: 's0', host: 'h', database: 'd', user: 'u', ...shard }] });
  t.throws(() => validateConfig(doc({ sslmode: 'verify-full' })), /shards\[0\]\.sslrootcert: sslmode verify-full needs sslrootcert/);
  t.throws(() => validateConfig(doc({ sslcert: 'a.crt' })), /sslcert and sslkey go together/);
  t.equal(validateConfig(doc({})).shards[0]!.sslmode, 'prefer');
});
