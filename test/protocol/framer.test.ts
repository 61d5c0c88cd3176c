import t from 'tap';
import fc from 'fast-check';
import pgProtocol from 'pg-protocol/dist/serializer';
const { serialize } = pgProtocol;
import { Framer, takeStartupPacket } from '../../src/protocol/framer.js';

/** Frames `stream` fed in the given chunk sizes; returns each message's bytes. */
function frame(stream: Buffer, cuts: number[], complete = true, max = 1 << 20): Buffer[] {
  const f = new Framer(max);
  const out: Buffer[] = [];
  let pos = 0;
  const sizes = [...cuts];
  while (pos < stream.length) {
    const n = Math.max(1, Math.min(sizes.shift() ?? stream.length, stream.length - pos));
    f.feed(stream.subarray(pos, pos + n), { message: (_t, b, s, e) => out.push(Buffer.from(b.subarray(s, e))) });
    pos += n;
  }
  if (complete) t.equal(f.pending, 0, 'nothing held back at the end');
  else t.ok(f.pending > 0, 'the partial message is held');
  return out;
}

const messages = [
  serialize.query('select 1'),
  serialize.parse({ name: 's1', text: 'select $1::int', types: [23] }),
  serialize.bind({ statement: 's1', values: ['42'] }),
  serialize.describe({ type: 'P' }),
  serialize.execute({ rows: 10 }),
  serialize.sync(),
  serialize.copyData(Buffer.alloc(70_000, 7)),
  serialize.flush(),
];
const stream = Buffer.concat(messages);

t.test('whole stream in one chunk', async (t) => {
  t.same(frame(stream, []), messages);
});

t.test('split inside the length prefix and inside bodies, byte by byte', async (t) => {
  t.same(frame(stream.subarray(0, 200), Array(200).fill(1), false), messages.slice(0, 6).filter((_, i, a) => Buffer.concat(a.slice(0, i + 1)).length <= 200));
});

t.test('any chunking gives the same messages', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 100 }), (cuts) => {
      const got = frame(stream, cuts);
      return got.length === messages.length && got.every((m, i) => m.equals(messages[i]!));
    }),
    { numRuns: 200 },
  );
});

t.test('a length prefix over the limit is refused before anything is buffered', async (t) => {
  const f = new Framer(1024);
  const huge = Buffer.from([0x51, 0x40, 0, 0, 0]); // 'Q' claiming 1 GiB
  t.throws(() => f.feed(huge, { message: () => t.fail('no message expected') }), { name: 'FrameTooLarge' });
  t.equal(f.pending, 0);
});

t.test('a length under 4 is malformed', async (t) => {
  const f = new Framer(1024);
  t.throws(() => f.feed(Buffer.from([0x51, 0, 0, 0, 3]), { message: () => {} }), { name: 'FrameTooLarge' });
});

t.test('startup packets', async (t) => {
  const p = serialize.startup({ user: 'app', database: 'app' });
  t.equal(takeStartupPacket(p.subarray(0, 3), 10_000), null);
  t.equal(takeStartupPacket(p.subarray(0, 10), 10_000), null);
  const r = takeStartupPacket(Buffer.concat([p, Buffer.from('x')]), 10_000)!;
  t.same(r.packet, p);
  t.same(r.rest, Buffer.from('x'));
  t.throws(() => takeStartupPacket(Buffer.from([0x40, 0, 0, 0]), 10_000), { name: 'FrameTooLarge' });
});

t.test('chunks read into one reused buffer: a message spanning several reads is kept intact', async (t) => {
  const msg = Buffer.concat([Buffer.from([0x44]), Buffer.alloc(4), Buffer.from('abcdefghijklmnopqrstuvwxyz'.repeat(4))]);
  msg.writeInt32BE(msg.length - 1, 1);
  const stream = Buffer.concat([msg, msg]);
  for (const reused of [true, false]) {
    const f = new Framer(1024, reused);
    const got: Buffer[] = [];
    const readBuf = Buffer.alloc(16); // every "read" lands in the same memory
    try {
      for (let p = 0; p < stream.length; p += 16) {
        const n = stream.copy(readBuf, 0, p, Math.min(p + 16, stream.length));
        f.feed(readBuf.subarray(0, n), { message: (_type, buf, s, e) => got.push(Buffer.from(buf.subarray(s, e))) });
        readBuf.fill(0x58); // the next read overwrites it
      }
    } catch (e) {
      if (reused) throw e;
      got.push(Buffer.from(String(e))); // garbled lengths: also what the flag prevents
    }
    if (reused) t.same(got, [msg, msg], 'with reusedChunks, both messages are whole');
    else t.notSame(got, [msg, msg], 'without it, held chunks are overwritten (what the flag is for)');
  }
});
