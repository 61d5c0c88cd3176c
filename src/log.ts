import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Defence in depth: a password or token that reached a log call by mistake (say, a config object) is
 * written as "[redacted]". The first line of defence is not to log them: configs are logged by shape,
 * statements never with their parameters.
 */
export const REDACT_PATHS = [
  'password',
  'token',
  '*.password',
  '*.token',
  'users[*].password',
  'shards[*].password',
  'config.users[*].password',
  'config.shards[*].password',
  'config.admin.token',
  'admin.token',
];

/** JSON lines for machines; readable lines when a person watches a terminal. */
export function createLogger(level: string = process.env.PGSHARD_LOG_LEVEL ?? 'info', pretty = process.stdout.isTTY === true, destination?: DestinationStream): Logger {
  const redact = { paths: REDACT_PATHS, censor: '[redacted]' };
  if (pretty && !destination) {
    return pino({ level, base: undefined, redact }, pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } }));
  }
  return destination ? pino({ level, base: { pid: process.pid }, redact }, destination) : pino({ level, base: { pid: process.pid }, redact });
}
