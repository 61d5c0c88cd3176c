import pino, { type Logger } from 'pino';

/**
 * JSON lines for machines; readable lines when a person watches a terminal. Secrets never reach here:
 * configs are logged by shape, statements never with their parameters.
 */
export function createLogger(level: string = process.env.PGSHARD_LOG_LEVEL ?? 'info', pretty = process.stdout.isTTY === true): Logger {
  if (pretty) {
    return pino({ level, base: undefined }, pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } }));
  }
  return pino({ level, base: { pid: process.pid } });
}
