import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';
import { processSecrets, resolveSecrets, type SecretSource } from './secrets.js';

export class ConfigError extends Error {
  constructor(public readonly problems: string[], source: string) {
    super(`invalid configuration in ${source}:\n` + problems.map((p) => `  - ${p}`).join('\n'));
  }
}

/** Validates an already-parsed document; every problem is reported with its key path. */
export function validateConfig(doc: unknown, source = 'configuration', secrets: SecretSource = processSecrets): Config {
  const r = configSchema.safeParse(doc ?? {});
  if (r.success) {
    const { config, problems } = resolveSecrets(r.data, secrets);
    if (problems.length) throw new ConfigError(problems, source);
    return config;
  }
  const problems = r.error.issues.map((i) => {
    const path = i.path.length ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
    return `${path}: ${i.message}`;
  });
  throw new ConfigError(problems, source);
}

/**
 * Reads a YAML file. PGSHARD_LISTEN_HOST / PGSHARD_LISTEN_PORT override `listen`, so one file can serve
 * several instances on one machine.
 */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read the file: ${(e as Error).message}`], file);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError([`not valid YAML: ${(e as Error).message}`], file);
  }
  const cfg = validateConfig(doc, file);
  return applyEnv(cfg, env);
}

export function applyEnv(cfg: Config, env: NodeJS.ProcessEnv): Config {
  const listen = { ...cfg.listen };
  if (env.PGSHARD_LISTEN_HOST) listen.host = env.PGSHARD_LISTEN_HOST;
  if (env.PGSHARD_LISTEN_PORT) {
    const p = Number(env.PGSHARD_LISTEN_PORT);
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new ConfigError([`PGSHARD_LISTEN_PORT: not a port: ${env.PGSHARD_LISTEN_PORT}`], 'environment');
    listen.port = p;
  }
  return { ...cfg, listen };
}

/** The database name clients must ask for. */
export function clientDatabase(cfg: Config): string {
  return cfg.database ?? cfg.shards[0]!.database;
}
