// TLS at the front door, with a test CA and a server certificate for "localhost" generated here.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { withShards } from '../helpers/shards.js';
import { pgClient, startProxy } from '../helpers/proxy.js';
import { psql } from '../helpers/tools.js';
import { RawClient, fe } from '../helpers/raw-client.js';
import { certDir, makeCA, makeServerCert } from '../helpers/certs.js';

const dir = certDir(t);
const ca = makeCA(dir, 'test-ca');
const otherCa = makeCA(dir, 'other-ca');
const { cert, key } = makeServerCert(dir, ca, 'pgshard', ['DNS:localhost']);

const shards = await withShards(t, 1);
const proxy = await startProxy(t, shards.clusters, { tls: { cert, key } });

t.test('psql sslmode=require', async (t) => {
  const r = await psql(proxy.port, 'select 1', { tuplesOnly: true, env: { PGSSLMODE: 'require' } });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '1\n', 'select 1 works over TLS');
  const info = await psql(proxy.port, '\\conninfo', { env: { PGSSLMODE: 'require' } });
  t.equal(info.code, 0, info.stderr);
  t.match(info.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'psql reports an SSL connection');
});

t.test('psql sslmode=verify-full against the test CA', async (t) => {
  const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: ca.cert };
  const r = await psql(proxy.port, 'select 1', { host: 'localhost', tuplesOnly: true, env });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '1\n', 'the certificate chains to the CA and names the host');
  const info = await psql(proxy.port, '\\conninfo', { host: 'localhost', env });
  t.match(info.stdout, /SSL connection \(protocol: TLSv1\.[23]/);

  const wrongHost = await psql(proxy.port, 'select 1', { host: '127.0.0.1', env });
  t.not(wrongHost.code, 0, 'a host name the certificate does not name is refused');
  t.match(wrongHost.stderr, /server certificate for "localhost"( \(and \d+ other names?\))? does not match host name "127\.0\.0\.1"/);

  const wrongCa = await psql(proxy.port, 'select 1', { host: 'localhost', env: { PGSSLMODE: 'verify-ca', PGSSLROOTCERT: otherCa.cert } });
  t.not(wrongCa.code, 0, 'a certificate from another CA is refused');
  t.match(wrongCa.stderr, /certificate verify failed/);
});

t.test('node-postgres verifying the certificate', async (t) => {
  const c = await pgClient(proxy.port, { t, host: 'localhost', ssl: { ca: readFileSync(ca.cert, 'utf8'), servername: 'localhost' } });
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }]);
});

t.test('node-postgres with ssl', async (t) => {
  const c = await pgClient(proxy.port, { t, ssl: { rejectUnauthorized: false } });
  t.same((await c.query({ text: 'select $1::text as v', values: ['über TLS'] })).rows, [{ v: 'über TLS' }]);
  const big = await c.query('select repeat($$x$$, 1000000) as v');
  t.equal((big.rows[0].v as string).length, 1000000, 'a large value over TLS');
  const conn = (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection;
  t.equal(conn.stream.encrypted, true, 'the socket is a TLS socket');
});

t.test('plain connections still work next to TLS', async (t) => {
  const c = await pgClient(proxy.port, { t });
  t.same((await c.query('select 1 as one')).rows, [{ one: 1 }]);
  const r = await psql(proxy.port, 'select 2', { tuplesOnly: true, env: { PGSSLMODE: 'disable' } });
  t.equal(r.stdout, '2\n');
});

t.test('data sent after SSLRequest before the handshake is refused', async (t) => {
  const c = await RawClient.open(proxy.port);
  c.send(fe.startupPacket(80877103), fe.startupPacket(196608, Buffer.from('user\0app\0\0')));
  const first = await c.readBytes(1).catch(() => Buffer.alloc(0));
  t.not(first.toString(), 'S', 'no TLS handshake on top of unencrypted data');
  c.close();
});
