// The admin API is never exposed beyond loopback without a token: the configuration is refused.
// (The routes' own checks — 401 without the token, 403 from non-loopback clients when no token is set —
// are tested in http.test.ts.)
import t from 'tap';
import { validateConfig } from '../../src/config/load.js';

const base = { users: [{ name: 'app', password: 'app' }], shards: [{ id: 's0', host: 'h', database: 'd', user: 'u' }] };
const secrets = { env: { TOKEN: 't0ken' }, readFile: () => 't0ken\n' };

t.test('a non-loopback bind needs a token', async (t) => {
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'pgshard.internal'])
    t.throws(() => validateConfig({ ...base, admin: { host, port: 9930 } }, 'test', secrets), /admin\.host: the admin API on ".*" is reachable beyond this host: set admin\.token/, host);
  for (const token of [{ token: 'x' }, { token_env: 'TOKEN' }, { token_file: '/run/secrets/t' }])
    t.equal(validateConfig({ ...base, admin: { host: '0.0.0.0', port: 9930, ...token } }, 'test', secrets).admin!.host, '0.0.0.0', JSON.stringify(token));
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) t.equal(validateConfig({ ...base, admin: { host, port: 9930 } }, 'test', secrets).admin!.host, host);
  t.equal(validateConfig({ ...base, admin: { port: 9930 } }, 'test', secrets).admin!.host, '127.0.0.1', 'loopback by default');
});
