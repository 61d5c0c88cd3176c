/**
 * Throw-away X.509 material for the TLS tests, made with the system's openssl at test time: a CA, and
 * leaf certificates it signs with the subjectAltNames a test needs (libpq and Node check the SAN).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Teardownable } from './shards.js';

export interface KeyPair {
  cert: string;
  key: string;
}

const openssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A directory (mode 755, removed at teardown) for certificate files. */
export function certDir(t: Teardownable): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgshard-certs-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function makeCA(dir: string, name: string): KeyPair {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  openssl(['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert, key };
}

/** A server certificate signed by `ca`, e.g. sans = ['DNS:localhost'] or ['DNS:localhost', 'IP:127.0.0.1']. */
export function makeServerCert(dir: string, ca: KeyPair, name: string, sans: string[]): KeyPair {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${sans.join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  openssl(['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  chmodSync(cert, 0o644);
  chmodSync(key, 0o600);
  return { cert, key };
}

/** Postgres refuses a key file others can read: give it to the OS user the server runs as. */
export function giveKeyTo(key: string, owner: { uid: number; gid: number } | null): void {
  if (owner) chownSync(key, owner.uid, owner.gid);
  chmodSync(key, 0o600);
}
