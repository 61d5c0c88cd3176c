/**
 * Seeded mutations of recorded client sessions. Each returns the bytes of one fuzz case and a name that
 * says what was done, so a failure reads as "pgbench-extended#1 / length 0x7fffffff on frame 12".
 */
import type { Random } from '../differential/random.js';

export interface FuzzCase {
  name: string;
  bytes: Buffer;
}

interface Session {
  name: string;
  /** Untyped startup-phase packets (SSLRequest, GSSENCRequest, StartupMessage). */
  startup: Buffer[];
  /** Typed messages after startup. */
  frames: Buffer[];
}

export function splitSession(name: string, b: Buffer): Session {
  const startup: Buffer[] = [];
  const frames: Buffer[] = [];
  let pos = 0;
  while (b.length - pos >= 8) {
    const len = b.readInt32BE(pos);
    const code = b.readInt32BE(pos + 4);
    startup.push(b.subarray(pos, pos + len));
    pos += len;
    if (code >>> 16 === 3) break;
  }
  while (b.length - pos >= 5) {
    const len = b.readInt32BE(pos + 1);
    frames.push(b.subarray(pos, pos + 1 + len));
    pos += 1 + len;
  }
  return { name, startup, frames };
}

export function msg(type: string, ...parts: (Buffer | string | number[])[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p + '\0') : Array.isArray(p) ? Buffer.from(p) : p)));
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0);
  return b;
};

export const SYNC = msg('S');
export const FLUSH = msg('H');

/** A startup message for app/app (trust). */
export function startupMessage(params: Record<string, string> = { user: 'app', database: 'app' }): Buffer {
  const body = Buffer.concat([int32(196608), ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  return Buffer.concat([int32(body.length + 4), body]);
}

/** Messages that are wrong for the session's state wherever they land. */
export function outOfOrder(rnd: Random): { name: string; frames: Buffer[] } {
  const pick = rnd.int(0, 14);
  switch (pick) {
    case 0:
      return { name: 'Bind before Parse', frames: [msg('B', '', 'never_parsed', int16(0), int16(0), int16(0)), msg('E', '', int32(0)), SYNC] };
    case 1:
      return { name: 'Execute with no portal', frames: [msg('E', 'no_such_portal', int32(0)), SYNC] };
    case 2:
      return { name: 'Execute unnamed portal, no Sync', frames: [msg('E', '', int32(0))] };
    case 3:
      return { name: 'CopyData outside COPY', frames: [msg('d', Buffer.from('1\tx\n')), msg('c')] };
    case 4:
      return { name: 'CopyFail outside COPY', frames: [msg('f', 'stop')] };
    case 5:
      return { name: 'Password after login', frames: [msg('p', 'app')] };
    case 6:
      return { name: 'Sync storm', frames: Array.from({ length: rnd.int(20, 600) }, () => SYNC) };
    case 7:
      return { name: 'Flush storm', frames: Array.from({ length: rnd.int(20, 300) }, () => FLUSH) };
    case 8:
      return { name: 'Describe missing statement', frames: [msg('D', 'S', 'nope'), msg('D', 'P', 'nope'), SYNC] };
    case 9:
      return { name: 'Close missing', frames: [msg('C', 'S', 'nope'), msg('C', 'P', 'nope'), SYNC] };
    case 10:
      return { name: 'unknown message type', frames: [msg(String.fromCharCode(rnd.int(0, 255)), Buffer.from([1, 2, 3]))] };
    case 11:
      return { name: 'FunctionCall', frames: [msg('F', int32(1), int16(0), int16(0), int16(0)), SYNC] };
    case 12:
      return { name: 'Parse with bad parameter count', frames: [msg('P', 's1', 'select $1', int16(-1)), SYNC] };
    case 13:
      return { name: 'Bind with lying parameter lengths', frames: [msg('P', '', 'select $1::text', int16(0)), msg('B', '', '', int16(0), int16(1), int32(1 << 30)), msg('E', '', int32(0)), SYNC] };
    default:
      return { name: 'Terminate mid-stream', frames: [msg('X')] };
  }
}

/** Length prefixes pgshard must refuse (or, when in bounds, wait on) without allocating. */
export const HOSTILE_LENGTHS = [0, 1, 3, -1, -4, -0x80000000, 0x40000000, 0x7fffffff, 0x10000001, 0x0fffffff];

function tlsClientHello(rnd: Random): Buffer {
  const random = Buffer.from(Array.from({ length: 32 }, () => rnd.int(0, 255)));
  const hello = Buffer.concat([Buffer.from([0x03, 0x03]), random, Buffer.from([0]), Buffer.from([0, 4, 0x13, 0x01, 0xc0, 0x2f]), Buffer.from([1, 0]), Buffer.from([0, 0])]);
  const hs = Buffer.concat([Buffer.from([1, 0, (hello.length >> 8) & 0xff, hello.length & 0xff]), hello]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, (hs.length >> 8) & 0xff, hs.length & 0xff]), hs]);
}

const randomBytes = (rnd: Random, n: number) => Buffer.from(Array.from({ length: n }, () => rnd.int(0, 255)));

/** One fuzz case from the recorded sessions. */
export function mutate(recordings: readonly { name: string; bytes: Buffer }[], rnd: Random): FuzzCase {
  const rec = rnd.pick(recordings);
  const s = splitSession(rec.name, rec.bytes);
  // Most cases drop the closing Terminate so that the session's state is probed after the mutation.
  let frames = s.frames.slice();
  if (frames.length && frames[frames.length - 1]![0] === 0x58 && rnd.chance(0.85)) frames.pop();
  let startup = s.startup.slice();
  const at = () => rnd.int(0, frames.length);
  const join = (name: string) => ({ name: `${rec.name} / ${name}`, bytes: Buffer.concat([...startup, ...frames]) });

  const kind = rnd.weighted<string>([
    [14, 'flip'],
    [6, 'truncate'],
    [6, 'truncate-message'],
    [8, 'length'],
    [14, 'out-of-order'],
    [8, 'duplicate'],
    [6, 'reorder'],
    [5, 'drop'],
    [4, 'garbage-startup'],
    [2, 'tls-hello'],
    [5, 'random-after-startup'],
    [4, 'splice'],
    [3, 'startup-params'],
    [3, 'negotiation'],
    [3, 'plain'],
  ]);
  switch (kind) {
    case 'flip': {
      const b = Buffer.concat([...startup, ...frames]);
      const n = rnd.int(1, 8);
      const where: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = rnd.int(0, b.length - 1);
        b[p] = rnd.chance(0.5) ? b[p]! ^ (1 << rnd.int(0, 7)) : rnd.int(0, 255);
        where.push(p);
      }
      return { name: `${rec.name} / flip bytes at ${where.join(',')}`, bytes: b };
    }
    case 'truncate': {
      const b = Buffer.concat([...startup, ...frames]);
      const cut = rnd.int(0, b.length - 1);
      return { name: `${rec.name} / truncated at ${cut}`, bytes: b.subarray(0, cut) };
    }
    case 'truncate-message': {
      if (!frames.length) return join('plain');
      const i = rnd.int(0, frames.length - 1);
      const f = frames[i]!;
      frames[i] = f.subarray(0, rnd.int(1, f.length - 1));
      return join(`frame ${i} ('${String.fromCharCode(f[0]!)}') cut short`);
    }
    case 'length': {
      const len = rnd.chance(0.7) ? rnd.pick(HOSTILE_LENGTHS) : rnd.int(-0x80000000, 0x7fffffff);
      if (!frames.length || rnd.chance(0.2)) {
        const p = Buffer.from(startup[startup.length - 1] ?? startupMessage());
        p.writeInt32BE(len, 0);
        startup[startup.length - 1] = p;
        return join(`startup length ${len}`);
      }
      const i = rnd.int(0, frames.length - 1);
      const f = Buffer.from(frames[i]!);
      f.writeInt32BE(len, 1);
      frames[i] = f;
      return join(`frame ${i} ('${String.fromCharCode(f[0]!)}') length ${len}`);
    }
    case 'out-of-order': {
      const o = outOfOrder(rnd);
      const i = at();
      frames.splice(i, 0, ...o.frames);
      return join(`${o.name} at frame ${i}`);
    }
    case 'duplicate': {
      if (!frames.length) return join('plain');
      const i = rnd.int(0, frames.length - 1);
      const n = rnd.int(1, Math.min(6, frames.length - i));
      const times = rnd.int(2, 20);
      const run = frames.slice(i, i + n);
      frames.splice(i, n, ...Array.from({ length: times }, () => run).flat());
      return join(`frames ${i}..${i + n - 1} repeated ${times}×`);
    }
    case 'reorder': {
      if (frames.length < 2) return join('plain');
      const i = rnd.int(0, frames.length - 1);
      const j = rnd.int(0, frames.length - 1);
      [frames[i], frames[j]] = [frames[j]!, frames[i]!];
      return join(`frames ${i} and ${j} swapped`);
    }
    case 'drop': {
      if (!frames.length) return join('plain');
      const i = rnd.int(0, frames.length - 1);
      const n = rnd.int(1, 3);
      frames.splice(i, n);
      return join(`frames ${i}..${i + n - 1} dropped`);
    }
    case 'garbage-startup': {
      const g = rnd.int(0, 2);
      if (g === 0) return { name: 'garbage startup: random bytes', bytes: randomBytes(rnd, rnd.int(1, 600)) };
      const len = rnd.int(8, 400);
      const p = randomBytes(rnd, len);
      p.writeInt32BE(len, 0);
      if (g === 2) p.writeInt32BE(196608, 4); // protocol 3.0, garbage parameters
      return { name: `garbage startup: ${g === 2 ? 'v3 packet with random parameters' : 'random packet'} of ${len} bytes`, bytes: Buffer.concat([p, ...frames]) };
    }
    case 'tls-hello': {
      const hello = tlsClientHello(rnd);
      return { name: 'TLS ClientHello to the plain port', bytes: rnd.chance(0.5) ? hello : Buffer.concat([hello, ...frames]) };
    }
    case 'random-after-startup': {
      const junk = randomBytes(rnd, rnd.int(1, 2000));
      return { name: `${rec.name} / ${junk.length} random bytes after startup`, bytes: Buffer.concat([...startup, junk]) };
    }
    case 'splice': {
      const other = splitSession('', rnd.pick(recordings).bytes);
      const cut = at();
      const from = rnd.int(0, other.frames.length);
      frames = [...frames.slice(0, cut), ...other.frames.slice(from)];
      return join(`spliced with another session at frame ${cut}/${from}`);
    }
    case 'startup-params': {
      const variants: Record<string, string>[] = [
        { user: 'app' },
        { database: 'app' },
        { user: 'nobody', database: 'app' },
        { user: 'app', database: 'other' },
        { user: 'app', database: 'app', replication: 'database' },
        { user: 'app', database: 'app', _pq_: '1', '_pq_.x': 'y' },
        { user: 'app', database: 'app', options: '-c statement_timeout=1 --search-path=x\\ y -c' },
        { user: 'app', database: 'app', client_encoding: 'nonsense', DateStyle: "'; drop table fuzz_kv; --" },
        { user: '', database: '' },
      ];
      const v = rnd.pick(variants);
      const p = startupMessage(v);
      if (rnd.chance(0.3)) p.writeInt32BE(196608 + rnd.int(1, 5), 4); // newer minor version
      startup = [p];
      return join(`startup parameters ${JSON.stringify(v)}`);
    }
    case 'negotiation': {
      const ssl = Buffer.concat([int32(8), int32(80877103)]);
      const gss = Buffer.concat([int32(8), int32(80877104)]);
      const cancel = Buffer.concat([int32(16), int32(80877102), int32(rnd.int(0, 0x7fffffff)), int32(rnd.int(0, 0x7fffffff))]);
      const pre = rnd.pick([[ssl, ssl], [gss, gss], [ssl, gss, ssl], [cancel], [ssl, cancel], [gss, ssl]]);
      startup = [...pre, ...startup.filter((p) => p.length >= 8 && p.readInt32BE(4) >>> 16 === 3)];
      return join(`negotiation ${pre.map((p) => p.readInt32BE(4) & 0xffff).join(',')}`);
    }
    default:
      return join('as recorded');
  }
}
