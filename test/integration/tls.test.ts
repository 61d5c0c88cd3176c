// TLS at the front door, with a throwaway self-signed certificate.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withShards } from '../helpers/shards.js';
import { pgClient, startProxy } from '../helpers/proxy.js';
import { psql } from '../helpers/tools.js';
import { RawClient, fe } from '../helpers/raw-client.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pgshard-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'pipe' });

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
