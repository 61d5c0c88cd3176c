/**
 * The transport to a shard: a TCP connection, upgraded to TLS after an SSLRequest when the shard's
 * `sslmode` asks for it, with libpq's meaning of each mode:
 *   disable      plain TCP
 *   prefer       TLS when the server accepts SSLRequest, else plain (no verification)
 *   require      TLS or fail (no verification)
 *   verify-ca    TLS, the server's certificate must chain to `sslrootcert`
 *   verify-full  verify-ca, and the certificate must name the shard's host (SAN, as libpq checks)
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { SSL_REQUEST } from '../protocol/codes.js';
import { PgError, SqlState } from '../protocol/errors.js';
import type { ShardConfig } from '../config/schema.js';
import { ChunkReader } from './chunk-reader.js';

export type SslMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

const SSL_REQUEST_PACKET = (() => {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(SSL_REQUEST, 4);
  return b;
})();

/** libpq's default; a shard entry written before sslmode existed (e.g. in a topology store) has none. */
function modeOf(shard: ShardConfig): SslMode {
  return shard.sslmode ?? 'prefer';
}

/** Certificate files are read when a connection is made, so replacing them takes effect without a restart. */
function tlsOptions(shard: ShardConfig, socket: net.Socket): tls.ConnectionOptions {
  const mode = modeOf(shard);
  const verify = mode === 'verify-ca' || mode === 'verify-full';
  const opts: tls.ConnectionOptions = {
    socket,
    host: shard.host,
    rejectUnauthorized: verify,
    // verify-ca checks the chain only; verify-full also the host name (Node's default check, as libpq's).
    ...(mode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
  };
  if (net.isIP(shard.host) === 0) opts.servername = shard.host;
  if (shard.sslrootcert) opts.ca = readFileSync(shard.sslrootcert);
  if (shard.sslcert) opts.cert = readFileSync(shard.sslcert);
  if (shard.sslkey) opts.key = readFileSync(shard.sslkey);
  return opts;
}

/** A connection to a shard, and the reader its bytes come through when it is plain TCP. */
export interface ShardTransport {
  socket: net.Socket;
  /** Plain TCP read through a reused buffer: bytes arrive at reader.sink, never as 'data' events. null: 'data' events (TLS). */
  reader: ChunkReader | null;
}

/**
 * A connected socket to the shard, encrypted as its sslmode says; rejects with a PgError (08006) that
 * names the shard, the address and what failed. A connection that stays plain TCP (disable, or prefer
 * with a shard that refuses SSL) is read through a ChunkReader.
 */
export async function openShardTransport(shard: ShardConfig, timeoutMs: number): Promise<ShardTransport> {
  const mode = modeOf(shard);
  if (mode === 'disable' || mode === 'prefer') {
    const t0 = Date.now();
    const reader = new ChunkReader();
    const socket = await openShardSocket(shard, timeoutMs, reader);
    if (socket !== null) return { socket, reader };
    // prefer, and the shard accepts SSL: TLS cannot run over a socket read through `onread`, so the
    // TLS connection is a new one (only when the pool opens a connection, never per statement).
    timeoutMs = Math.max(1, timeoutMs - (Date.now() - t0));
  }
  return { socket: (await openShardSocket(shard, timeoutMs, null))!, reader: null };
}

/**
 * The connection itself. With a reader (disable and prefer only), the socket reads through it, and a
 * shard that answers SSLRequest with 'S' under prefer gives null (the socket is closed): connect again
 * without a reader.
 */
function openShardSocket(shard: ShardConfig, timeoutMs: number, reader: ChunkReader | null): Promise<net.Socket | null> {
  const mode = modeOf(shard);
  const where = `shard "${shard.id}" at ${shard.host}:${shard.port}`;
  return new Promise<net.Socket | null>((resolve, reject) => {
    let done = false;
    let current: net.Socket;
    const fail = (message: string, hint?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      current.destroy();
      reject(new PgError(SqlState.ConnectionFailure, `could not connect to ${where}: ${message}`, hint ? { hint } : {}));
    };
    const succeed = (socket: net.Socket) => {
      if (done) return void socket.destroy();
      done = true;
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      resolve(socket);
    };
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
    const raw = reader ? net.connect({ host: shard.host, port: shard.port, onread: reader.onread }) : net.connect({ host: shard.host, port: shard.port });
    current = raw;
    raw.setNoDelay(true);
    raw.setKeepAlive(true, 30_000);
    raw.on('error', (e) => fail(e.message));
    raw.on('close', () => fail('the server closed the connection'));
    raw.once('connect', () => {
      if (mode === 'disable') return succeed(raw);
      raw.write(SSL_REQUEST_PACKET);
      const onAnswer = (answer: Buffer) => {
        raw.pause();
        if (reader) reader.sink = () => undefined; // the answer is read here; the owner of the connection sets the sink
        if (reader && answer[0] === 0x53 /* S */ && answer.length === 1 && mode === 'prefer') {
          if (done) return;
          done = true;
          clearTimeout(timer);
          raw.removeAllListeners('error');
          raw.removeAllListeners('close');
          raw.on('error', () => undefined);
          raw.destroy();
          return resolve(null);
        }
        if (answer[0] === 0x4e /* N */) {
          if (mode === 'prefer') {
            if (answer.length > 1) return fail('the server sent data after refusing SSL');
            return succeed(raw);
          }
          return fail(`the server does not accept SSL connections (sslmode=${mode})`, 'Turn on ssl on the shard, or set sslmode to prefer or disable for it.');
        }
        if (answer[0] !== 0x53 /* S */ || answer.length > 1) return fail(`the server answered SSLRequest with an unexpected ${answer.length > 1 ? 'message' : 'byte'}`);
        let opts: tls.ConnectionOptions;
        try {
          opts = tlsOptions(shard, raw);
        } catch (e) {
          return fail(`cannot read the TLS files of the shard: ${(e as Error).message}`);
        }
        const secure = tls.connect(opts);
        current = secure;
        secure.on('error', (e) =>
          fail(
            `TLS: ${e.message} (sslmode=${mode}${shard.sslrootcert ? `, sslrootcert=${shard.sslrootcert}` : ''})`,
            mode === 'verify-full' || mode === 'verify-ca'
              ? "Check that sslrootcert holds the CA that signed the shard's certificate" + (mode === 'verify-full' ? ' and that the certificate names the host in its subjectAltName.' : '.')
              : undefined,
          ),
        );
        secure.on('close', () => fail('the server closed the connection during the TLS handshake'));
        secure.once('secureConnect', () => succeed(secure));
      };
      if (reader) reader.sink = onAnswer;
      else raw.once('data', onAnswer);
    });
  });
}
