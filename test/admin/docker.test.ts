// docker/ and grafana/provisioning, checked by reading them (this machine has a Docker client but no
// engine): the compose file's services and mounts, the pgshard configuration it mounts (as check-config
// reads it), the Prometheus configuration (promtool check config), the Dockerfile's stages, and the
// Grafana provisioning pointing at the mounted dashboards and the Prometheus service.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { prometheusTools, ROOT } from './helpers.js';

const DOCKER = path.join(ROOT, 'docker');
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- YAML documents, checked field by field
type Doc = Record<string, any>;
const yaml = (file: string): Doc => parseYaml(readFileSync(file, 'utf8'), { merge: true }) as Doc;

const compose = yaml(path.join(DOCKER, 'docker-compose.yml'));
const services = compose.services as Doc;
const pgshardConfig = loadConfig(path.join(DOCKER, 'pgshard.yaml'), {});
const prometheus = yaml(path.join(DOCKER, 'prometheus.yml'));

/** host:container volume entries of a service: [host path resolved from docker/, container path]. */
function binds(service: string): [string, string][] {
  return ((services[service]?.volumes ?? []) as string[])
    .map((v) => v.split(':'))
    .filter(([host]) => host!.startsWith('.') || host!.startsWith('/'))
    .map(([host, target]) => [path.resolve(DOCKER, host!), target!]);
}

t.test('three Postgres 16 shards with what pgshard needs', async (t) => {
  for (const name of ['shard0', 'shard1', 'shard2']) {
    const s = services[name];
    t.ok(s, `service ${name}`);
    t.equal(s.image, 'postgres:16');
    const cmd = (s.command as string[]).join(' ');
    t.match(cmd, /max_prepared_transactions=[1-9]/, `${name}: max_prepared_transactions`);
    t.match(cmd, /wal_level=logical/, `${name}: wal_level=logical`);
    t.ok(s.healthcheck?.test, `${name}: a health check (pgshard waits for it)`);
    t.ok((s.volumes as string[]).some((v) => v.endsWith(':/var/lib/postgresql/data')), `${name}: its own data volume`);
    t.equal(services.pgshard.depends_on[name]?.condition, 'service_healthy');
  }
  const volumes = ['shard0', 'shard1', 'shard2'].map((n) => (services[n].volumes as string[]).find((v) => v.endsWith('/var/lib/postgresql/data')));
  t.equal(new Set(volumes).size, 3, 'the shards do not share a data volume');
});

t.test('pgshard: built from docker/Dockerfile, configured for the shards', async (t) => {
  const p = services.pgshard;
  t.equal(path.resolve(DOCKER, p.build.context), ROOT, 'the build context is the repository root');
  t.ok(existsSync(path.join(ROOT, p.build.dockerfile)), 'the Dockerfile exists');
  const mounted = binds('pgshard').find(([, target]) => target === '/etc/pgshard/pgshard.yaml');
  t.ok(mounted && existsSync(mounted[0]), 'the configuration is mounted where the image reads it');
  t.same(
    pgshardConfig.shards.map((s) => [s.host, s.port]),
    [
      ['shard0', 5432],
      ['shard1', 5432],
      ['shard2', 5432],
    ],
    'the shards are the compose services',
  );
  for (const s of pgshardConfig.shards) t.equal(s.password, services[s.host].environment.POSTGRES_PASSWORD, `${s.id}: the shard's password`);
  t.equal(pgshardConfig.listen.host, '0.0.0.0', 'clients reach pgshard from outside the container');
  t.ok(pgshardConfig.admin, 'the admin API is on');
  t.equal(pgshardConfig.admin!.host, '0.0.0.0', 'Prometheus reaches the admin API from its container');
  t.ok(pgshardConfig.admin!.token, 'so it needs a token');
  t.ok((p.ports as string[]).some((x) => x.endsWith(`:${pgshardConfig.listen.port}`)), 'the client port is published');
});

t.test('the schema the shards create holds the configured tables', async (t) => {
  const init = binds('shard0').find(([, target]) => target === '/docker-entrypoint-initdb.d');
  t.ok(init && existsSync(init[0]), 'init scripts are mounted');
  const sql = readFileSync(path.join(init![0], '01-schema.sql'), 'utf8');
  for (const table of Object.keys(pgshardConfig.tables)) t.match(sql, new RegExp(`CREATE TABLE ${table} \\(`), table);
});

t.test('Prometheus scrapes pgshard with the token', async (t) => {
  const tools = await prometheusTools();
  const mounted = binds('prometheus').find(([, target]) => target === '/etc/prometheus/prometheus.yml');
  t.ok(mounted && existsSync(mounted[0]), 'prometheus.yml is mounted');
  const r = spawnSync(tools.promtool, ['check', 'config', mounted![0]], { encoding: 'utf8' });
  t.equal(r.status, 0, `promtool check config: ${r.stdout}${r.stderr}`);
  const job = (prometheus.scrape_configs as Doc[]).find((j) => j.job_name === 'pgshard')!;
  t.same(job.static_configs[0].targets, [`pgshard:${pgshardConfig.admin!.port}`], 'the target is the pgshard service on the admin port');
  t.equal(job.authorization.credentials, pgshardConfig.admin!.token, 'with admin.token');
});

t.test('Grafana gets the provisioning and the dashboards', async (t) => {
  const g = binds('grafana');
  const provisioning = g.find(([, target]) => target === '/etc/grafana/provisioning');
  t.ok(provisioning && existsSync(path.join(provisioning[0], 'datasources/prometheus.yaml')), 'data source provisioning is mounted');
  const provider = yaml(path.join(provisioning![0], 'dashboards/pgshard.yaml')).providers[0] as Doc;
  const dashboards = g.find(([, target]) => target === provider.options.path);
  t.ok(dashboards && existsSync(path.join(dashboards[0], 'pgshard.json')), `the dashboard provider's path (${provider.options.path}) holds the mounted dashboards`);
  const ds = yaml(path.join(provisioning![0], 'datasources/prometheus.yaml')).datasources[0] as Doc;
  t.equal(ds.url, 'http://prometheus:9090', 'the data source is the prometheus service');
  const dash = JSON.parse(readFileSync(path.join(dashboards![0], 'pgshard.json'), 'utf8')) as Doc;
  const uids = new Set<string>();
  const walk = (o: unknown): void => {
    if (Array.isArray(o)) o.forEach(walk);
    else if (o && typeof o === 'object') {
      const d = o as Doc;
      if (d.datasource?.uid) uids.add(d.datasource.uid);
      Object.values(d).forEach(walk);
    }
  };
  walk(dash);
  t.same([...uids], [ds.uid], 'every panel uses the provisioned data source');
  t.equal(services.grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, `${provider.options.path}/pgshard.json`);
});

t.test('the Dockerfile: node:20-slim, two stages, non-root, health check on /health', async (t) => {
  const text = readFileSync(path.join(DOCKER, 'Dockerfile'), 'utf8');
  const lines = text.replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const from = lines.filter((l) => /^FROM /.test(l));
  t.same(from, ['FROM node:20-slim AS build', 'FROM node:20-slim'], 'a build stage and a runtime stage');
  const runtime = lines.slice(lines.indexOf(from[1]!));
  t.match(runtime.find((l) => l.startsWith('USER ')), /^USER node$/, 'runs as the unprivileged node user');
  t.match(runtime.find((l) => l.startsWith('HEALTHCHECK ')), /\/health/, 'health check on /health');
  t.match(runtime.find((l) => l.startsWith('CMD ')), /"pgshard", "start", "--config", "\/etc\/pgshard\/pgshard.yaml"/);
  t.ok(lines.some((l) => /npm ci\b/.test(l)) && lines.some((l) => /npm run build/.test(l)), 'npm ci and build');
  t.notOk(runtime.some((l) => /^COPY (src|test)\b/.test(l)), 'the runtime stage has no sources');
  for (const l of lines.filter((l) => /^COPY (?!--from)/.test(l))) {
    const srcs = l.split(/\s+/).slice(1, -1);
    for (const s of srcs) t.ok(existsSync(path.join(ROOT, s)), `COPY source ${s} exists in the context`);
  }
  const ignore = readFileSync(path.join(DOCKER, 'Dockerfile.dockerignore'), 'utf8');
  for (const need of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'config']) t.match(ignore, new RegExp(`^!${need.replace('.', '\\.')}$`, 'm'), `${need} is in the build context`);
});
