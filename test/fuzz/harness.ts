/**
 * The protocol fuzzer: recorded client sessions (fixtures/sessions.json) replayed against a running
 * pgshard with seeded mutations, and the invariants every case must keep. Used by
 * test/fuzz/protocol-fuzz.test.ts (a fixed number of cases) and bench/fuzz.ts (for a time budget).
 *
 * A case connects, writes its bytes in random chunk sizes, and then:
 *  - when the stream ends on a message boundary after a startup, it sends a probe (Sync, then
 *    Query `select 'fuzz-probe'`) and pgshard must, within BOUND_MS, either close the connection or
 *    answer (the probe's row, or an ErrorResponse, followed by ReadyForQuery);
 *  - when the stream ends inside a message (pgshard may rightly wait for the rest), it reads for a
 *    short quiet period;
 * and every byte that came back must parse as backend messages (type byte + length), every
 * ErrorResponse must carry a SQLSTATE.
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Random } from '../differential/random.js';
import { mutate, type FuzzCase } from './mutate.js';

export interface Recording {
  name: string;
  bytes: Buffer;
}

export function loadRecordings(): Recording[] {
  const doc = JSON.parse(readFileSync(new URL('./fixtures/sessions.json', import.meta.url), 'utf8')) as { name: string; base64: string }[];
  return doc.map((d) => ({ name: d.name, bytes: Buffer.from(d.base64, 'base64') }));
}

export const BOUND_MS = 3000;
const QUIET_MS = 120;
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const STARTUP_MAX = 10_000; // pgshard's startup packet bound
const BACKEND_TYPES = new Set('RKSZTDCENI123sntGHWdcAVv'.split('').map((c) => c.charCodeAt(0)));

/** What pgshard must do with a stream, from its framing alone (the contents are not modelled). */
export interface StreamShape {
  /** One-byte answers ('N') pgshard sends to SSLRequest / GSSENCRequest before anything else. */
  negotiationAnswers: number;
  /** The stream ends on a message boundary after a protocol-3 startup message: a probe can follow. */
  probeable: boolean;
  /** pgshard must refuse the connection (a length prefix outside its bounds, or a CancelRequest). */
  mustClose: string | null;
}

export function shapeOf(b: Buffer, maxMessage: number): StreamShape {
  let pos = 0;
  let negotiationAnswers = 0;
  let ssl = false;
  let gss = false;
  for (;;) {
    if (b.length - pos < 4) return { negotiationAnswers, probeable: false, mustClose: null };
    const len = b.readInt32BE(pos);
    if (len < 8 || len > STARTUP_MAX) return { negotiationAnswers, probeable: false, mustClose: `startup length ${len}` };
    if (b.length - pos < len) return { negotiationAnswers, probeable: false, mustClose: null };
    const code = b.readInt32BE(pos + 4);
    pos += len;
    if (code === SSL_REQUEST && !ssl) {
      ssl = true;
      negotiationAnswers++;
      continue;
    }
    if (code === GSSENC_REQUEST && !gss) {
      gss = true;
      negotiationAnswers++;
      continue;
    }
    if (code === CANCEL_REQUEST && len >= 16) return { negotiationAnswers, probeable: false, mustClose: 'cancel request' };
    if (code >>> 16 !== 3) return { negotiationAnswers, probeable: false, mustClose: `protocol ${code >>> 16}` };
    break;
  }
  for (;;) {
    if (b.length - pos === 0) return { negotiationAnswers, probeable: true, mustClose: null };
    if (b.length - pos < 5) return { negotiationAnswers, probeable: false, mustClose: null };
    const len = b.readInt32BE(pos + 1);
    if (len < 4 || len > maxMessage) return { negotiationAnswers, probeable: false, mustClose: `length ${len}` };
    if (b.length - pos < len + 1) return { negotiationAnswers, probeable: false, mustClose: null };
    pos += len + 1;
  }
}

export interface ParsedBackend {
  type: string;
  sqlstate?: string;
  text?: string;
}

/** Parses what pgshard sent; problems lists every way it is not a valid backend message sequence. */
export function parseBackend(b: Buffer, negotiationAnswers: number, closed: boolean): { messages: ParsedBackend[]; problems: string[] } {
  const messages: ParsedBackend[] = [];
  const problems: string[] = [];
  let pos = 0;
  for (let i = 0; i < negotiationAnswers && pos < b.length; i++, pos++) {
    if (b[pos] !== 0x4e) {
      problems.push(`negotiation answer ${i} is 0x${b[pos]!.toString(16)}, not 'N'`);
      return { messages, problems };
    }
  }
  while (pos < b.length) {
    if (b.length - pos < 5) {
      if (closed) problems.push(`truncated backend message at offset ${pos} (${b.length - pos} bytes)`);
      break;
    }
    const type = b[pos]!;
    const len = b.readInt32BE(pos + 1);
    if (!BACKEND_TYPES.has(type)) {
      problems.push(`invalid backend message type 0x${type.toString(16)} at offset ${pos}`);
      break;
    }
    if (len < 4 || len > 64 << 20) {
      problems.push(`invalid backend message length ${len} for '${String.fromCharCode(type)}' at offset ${pos}`);
      break;
    }
    if (b.length - pos < len + 1) {
      if (closed) problems.push(`truncated backend message '${String.fromCharCode(type)}' at offset ${pos}`);
      break;
    }
    const body = b.subarray(pos + 5, pos + 1 + len);
    const m: ParsedBackend = { type: String.fromCharCode(type) };
    if (type === 0x45 || type === 0x4e) {
      const fields = new Map<string, string>();
      let p = 0;
      while (p < body.length && body[p] !== 0) {
        const z = body.indexOf(0, p + 1);
        if (z < 0) {
          problems.push(`unterminated field in '${m.type}' at offset ${pos}`);
          break;
        }
        fields.set(String.fromCharCode(body[p]!), body.toString('utf8', p + 1, z));
        p = z + 1;
      }
      m.sqlstate = fields.get('C');
      m.text = fields.get('M');
      if (type === 0x45 && !/^[0-9A-Z]{5}$/.test(m.sqlstate ?? '')) problems.push(`ErrorResponse without a valid SQLSTATE: ${JSON.stringify([...fields])}`);
      if (!fields.has('S')) problems.push(`'${m.type}' without a severity`);
    } else if (type === 0x44) {
      m.text = body.toString('latin1');
    }
    messages.push(m);
    pos += len + 1;
  }
  return { messages, problems };
}

export interface Outcome {
  /** closed: pgshard closed it; answered: the probe was answered; waiting: pgshard waits for the rest of a message. */
  kind: 'closed' | 'answered' | 'waiting' | 'hang';
  problems: string[];
  sqlstates: string[];
  received: number;
  ms: number;
}

const PROBE = Buffer.concat([Buffer.from([0x53, 0, 0, 0, 4]), query("select 'fuzz-probe'")]);

export function query(sql: string): Buffer {
  const text = Buffer.from(sql + '\0');
  const b = Buffer.alloc(5 + text.length);
  b[0] = 0x51;
  b.writeInt32BE(4 + text.length, 1);
  text.copy(b, 5);
  return b;
}

/** Runs one case against pgshard at `port`. */
export function runCase(port: number, c: FuzzCase, rnd: Random, maxMessage: number): Promise<Outcome> {
  const shape = shapeOf(c.bytes, maxMessage);
  const started = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const got: Buffer[] = [];
    let received = 0;
    let closed = false;
    let probeAt = -1; // messages parsed when the probe was sent
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const finish = (kind: Outcome['kind']) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      const all = Buffer.concat(got);
      const { messages, problems } = parseBackend(all, shape.negotiationAnswers, kind === 'closed');
      if (kind === 'hang') problems.push(`no answer to the probe and no close within ${BOUND_MS} ms (${messages.length} messages: ${messages.map((m) => m.type).join('')})`);
      if (shape.mustClose && kind !== 'closed') problems.push(`pgshard must refuse this stream (${shape.mustClose}) but kept the connection (${kind})`);
      sock.destroy();
      resolve({ kind, problems, sqlstates: messages.flatMap((m) => (m.sqlstate && m.type === 'E' ? [m.sqlstate] : [])), received, ms: Date.now() - started });
    };
    const probeAnswered = (): boolean => {
      if (probeAt < 0) return false;
      const { messages } = parseBackend(Buffer.concat(got), shape.negotiationAnswers, false);
      let answer = false;
      for (let i = probeAt; i < messages.length; i++) {
        const m = messages[i]!;
        if (m.type === 'E' || (m.type === 'D' && m.text?.includes('fuzz-probe'))) answer = true;
        else if (m.type === 'Z' && answer) return true;
      }
      return false;
    };
    sock.on('data', (d: Buffer) => {
      got.push(d);
      received += d.length;
      if (probeAnswered()) finish('answered');
      else if (received > 32 << 20) finish('closed'); // a runaway answer: stop reading (parse still checks it)
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      closed = true;
      finish('closed');
    });
    sock.on('connect', async () => {
      // Random chunk sizes; a pause now and then so that chunks reach pgshard as separate reads.
      let pos = 0;
      while (pos < c.bytes.length && !closed) {
        const size = rnd.chance(0.1) ? rnd.int(1, 4096) : rnd.int(1, 64);
        sock.write(c.bytes.subarray(pos, pos + size));
        pos += size;
        if (rnd.chance(0.15)) await new Promise((r) => setImmediate(r));
      }
      if (closed) return;
      if (shape.probeable) {
        probeAt = parseBackend(Buffer.concat(got), shape.negotiationAnswers, false).messages.length;
        sock.write(PROBE);
        timer = setTimeout(() => finish('hang'), BOUND_MS);
      } else {
        timer = setTimeout(() => finish(shape.mustClose ? 'hang' : 'waiting'), shape.mustClose ? BOUND_MS : QUIET_MS);
      }
    });
  });
}

/** The per-case seed: replays case `i` of a run seeded `seed` alone. */
export function caseSeed(seed: number, i: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
}

export function describe(c: FuzzCase): string {
  const hex = c.bytes.subarray(0, 96).toString('hex');
  return `${c.name} [${c.bytes.length} bytes] ${hex}${c.bytes.length > 96 ? '…' : ''}`;
}

export { mutate };
