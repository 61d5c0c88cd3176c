import type { PgShardServer } from './server.js';

/** Runs a server until SIGTERM/SIGINT, then drains for the grace period. */
export async function runUntilSignal(server: PgShardServer, graceMs: number, onStop?: () => Promise<void>): Promise<void> {
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    server.log.info({ signal: sig, grace_ms: graceMs }, 'stopping: finishing open transactions');
    await server.stop(graceMs);
    if (onStop) await onStop();
    server.log.info('stopped');
    server.log.flush?.();
    setTimeout(() => process.exit(0), 50).unref();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

