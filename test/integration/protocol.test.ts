// The extended query protocol at byte level, through pgshard and, as the reference, straight to the shard:
// most scenarios run the same messages against both and compare what comes back.
import t, { type Test } from 'tap';
import { withShards } from '../helpers/shards.js';
import { startProxy, sleep } from '../helpers/proxy.js';
import { RawClient, fe, rows, types, type BackendMessage } from '../helpers/raw-client.js';

const shards = await withShards(t, 1);
const shard = shards.clusters[0]!;
const proxy = await startProxy(t, shards.clusters);

/** What matters of a message for comparison: ParameterStatus dropped, errors by code and text. */
function summary(msgs: BackendMessage[]): string[] {
  return msgs
    .filter((m) => m.type !== 'S')
    .map((m) => {
      switch (m.type) {
        case 'E':
        case 'N':
          return `${m.type} ${m.code} ${m.message}`;
        case 'Z':
          return `Z ${m.status}`;
        case 'C':
          return `C ${m.tag}`;
        case 'D':
          return `D ${JSON.stringify(m.values)}`;
        case 'T':
          return `T ${m.columns!.join(',')}`;
        default:
          return m.type;
      }
    });
}

type Script = (c: RawClient) => Promise<BackendMessage[]>;

/** Runs a script on a fresh connection to pgshard and to the shard; returns both summaries. */
async function both(script: Script): Promise<{ proxied: string[]; direct: string[] }> {
  const run = async (port: number) => {
    const c = await RawClient.connect(port);
    try {
      return summary(await script(c));
    } finally {
      c.close();
    }
  };
  const [proxied, direct] = await Promise.all([run(proxy.port), run(shard.port)]);
  return { proxied, direct };
}

async function sameAsPostgres(t: Test, name: string, script: Script): Promise<string[]> {
  const { proxied, direct } = await both(script);
  t.same(proxied, direct, `${name}: pgshard answers as Postgres does`);
  return proxied;
}

t.test('login: the ParameterStatus a shard reports, with the startup parameters applied', async (t) => {
  const params = { TimeZone: 'Asia/Tokyo', application_name: 'raw-app', DateStyle: 'German, DMY', options: '-c search_path=pg_catalog,public -c extra_float_digits=2' };
  const report = async (port: number) => {
    const c = await RawClient.connect(port, { params });
    try {
      const ps = Object.fromEntries(c.loginMessages.filter((m) => m.type === 'S').map((m) => [m.name!, m.value!]));
      const shown = rows(await c.query('select current_setting($$search_path$$), current_setting($$extra_float_digits$$), current_setting($$TimeZone$$)'));
      return { ps, shown, order: types(c.loginMessages.filter((m) => m.type !== 'S' && m.type !== 'R')) };
    } finally {
      c.close();
    }
  };
  const [via, direct] = await Promise.all([report(proxy.port), report(shard.port)]);
  t.same(via.ps, direct.ps, 'the same ParameterStatus values as a direct login');
  t.equal(via.ps.TimeZone, 'Asia/Tokyo');
  t.equal(via.ps.application_name, 'raw-app');
  t.same(via.shown, direct.shown, 'options (-c) are in effect');
  t.equal(via.order, 'K Z', 'BackendKeyData, then ReadyForQuery');
  // …and they stay in effect on later statements, whichever backend serves them.
  const c = await RawClient.connect(proxy.port, { params });
  t.teardown(() => c.close());
  const busy = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(proxy.port)));
  await Promise.all(busy.map((b) => b.query('select pg_sleep(0.05)')));
  busy.forEach((b) => b.close());
  t.same(rows(await c.query('show TimeZone')), [['Asia/Tokyo']]);
});

t.test('empty queries', async (t) => {
  const got = await sameAsPostgres(t, 'empty query strings', async (c) => {
    const out = [...(await c.query('')), ...(await c.query(';')), ...(await c.query('  -- only a comment'))];
    c.send(fe.parse('', ''), fe.bind('', ''), fe.describePortal(''), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    return out;
  });
  t.ok(got.includes('I'), 'EmptyQueryResponse');
});

t.test('ten statements pipelined before one Sync', async (t) => {
  const script: Script = async (c) => {
    const msgs: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const named = i % 2 === 0 ? `p${i}` : '';
      msgs.push(fe.parse(named, `select $1::int * ${i} as v, '${'x'.repeat(i)}'::text as s`), fe.bind('', named, [String(i + 1)]), fe.describePortal(''), fe.execute());
    }
    msgs.push(fe.sync());
    c.send(...msgs);
    return c.readUntilReady();
  };
  const got = await sameAsPostgres(t, 'pipeline', script);
  const c = await RawClient.connect(proxy.port);
  t.teardown(() => c.close());
  const again = await script(c);
  t.equal(again.filter((m) => m.type === 'Z').length, 1, 'exactly one ReadyForQuery');
  t.same(
    rows(again),
    Array.from({ length: 10 }, (_, i) => [String((i + 1) * i), 'x'.repeat(i)]),
    'every answer in order',
  );
  t.equal(got.at(-1), 'Z I');
});

t.test('Execute with a row limit: PortalSuspended, then the rest', async (t) => {
  // Without a transaction: Flush keeps the unnamed portal alive between Executes.
  await sameAsPostgres(t, 'row limit with Flush', async (c) => {
    const out: BackendMessage[] = [];
    c.send(fe.parse('', 'select g from generate_series(1, 5) g'), fe.bind('', ''), fe.execute('', 2), fe.flush());
    out.push(...(await c.readUntil('s')));
    c.send(fe.execute('', 2), fe.flush());
    out.push(...(await c.readUntil('s')));
    c.send(fe.execute('', 0), fe.sync());
    out.push(...(await c.readUntilReady()));
    return out;
  });
  // Inside a transaction: a named portal survives Sync.
  const got = await sameAsPostgres(t, 'row limit across Syncs in a transaction', async (c) => {
    const out: BackendMessage[] = [];
    out.push(...(await c.query('BEGIN')));
    c.send(fe.parse('', 'select g from generate_series(1, 5) g'), fe.bind('c1', ''), fe.execute('c1', 3), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.execute('c1', 0), fe.sync());
    out.push(...(await c.readUntilReady()));
    out.push(...(await c.query('COMMIT')));
    return out;
  });
  t.same(
    got.filter((s) => s.startsWith('D') || s === 's' || s.startsWith('Z')),
    ['Z T', 'D ["1"]', 'D ["2"]', 'D ["3"]', 's', 'Z T', 'D ["4"]', 'D ["5"]', 'Z T', 'Z I'],
  );
});

t.test('an error in the middle of a pipeline skips everything up to Sync', async (t) => {
  const got = await sameAsPostgres(t, 'error mid-pipeline', async (c) => {
    c.send(
      fe.parse('', 'select 1'), fe.bind('', ''), fe.execute(),
      fe.parse('', 'select 1/0'), fe.bind('', ''), fe.execute(),
      fe.parse('', 'select 3'), fe.bind('', ''), fe.execute(),
      fe.sync(),
      fe.parse('', 'select 4'), fe.bind('', ''), fe.execute(),
      fe.sync(),
    );
    return c.readReady(2);
  });
  // (1/0 of constants fails when the unnamed statement is planned, at Bind.)
  t.same(got, ['1', '2', 'D ["1"]', 'C SELECT 1', '1', 'E 22012 division by zero', 'Z I', '1', '2', 'D ["4"]', 'C SELECT 1', 'Z I']);

  await sameAsPostgres(t, 'ReadyForQuery status at every step (I, T, E, I)', async (c) => {
    const out: BackendMessage[] = [];
    const ext = async (sql: string) => {
      c.send(fe.parse('', sql), fe.bind('', ''), fe.execute(), fe.sync());
      out.push(...(await c.readUntilReady()));
    };
    await ext('select 1');
    out.push(...(await c.query('BEGIN')));
    await ext('select 2');
    await ext('select 1/0');
    await ext('select 3');
    out.push(...(await c.query('select 4')));
    out.push(...(await c.query('ROLLBACK')));
    await ext('select 5');
    // BEGIN through the extended protocol, and the error inside the same pipeline.
    c.send(fe.parse('', 'BEGIN'), fe.bind('', ''), fe.execute(), fe.parse('', 'select 1/0'), fe.bind('', ''), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.parse('', 'ROLLBACK'), fe.bind('', ''), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    return out;
  });

  // What was skipped did not happen: a Close and a Parse after the error are not carried out.
  await sameAsPostgres(t, 'Close and Parse after the error are skipped', async (c) => {
    const out: BackendMessage[] = [];
    c.send(fe.parse('kept', 'select 11'), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.parse('', 'select 1/0'), fe.bind('', ''), fe.execute(), fe.closeStatement('kept'), fe.parse('skipped', 'select 12'), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.bind('', 'kept'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.bind('', 'skipped'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.parse('skipped', 'select 13'), fe.bind('', 'skipped'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    return out;
  });
});

t.test('a statement skipped after an error does not poison the backend for others', async (t) => {
  // Pool of one: both clients share the backend. Client A's Parse is skipped by Postgres after an error;
  // client B then prepares the same text and must be able to run it.
  const p = await startProxy(t, shards.clusters, { pool: { size: 1 } });
  const a = await RawClient.connect(p.port);
  const b = await RawClient.connect(p.port);
  t.teardown(() => (a.close(), b.close()));
  const text = "select 'unpoisoned'::text as v";
  a.send(fe.parse('', 'select 1/0'), fe.bind('', ''), fe.execute(), fe.parse('a1', text), fe.sync());
  t.same(summary(await a.readUntilReady()), ['1', 'E 22012 division by zero', 'Z I']);
  b.send(fe.parse('b1', text), fe.bind('', 'b1'), fe.execute(), fe.sync());
  t.same(summary(await b.readUntilReady()), ['1', '2', 'D ["unpoisoned"]', 'C SELECT 1', 'Z I']);
});

t.test('the unnamed statement survives another client using the same backend', async (t) => {
  const p = await startProxy(t, shards.clusters, { pool: { size: 1 } });
  const a = await RawClient.connect(p.port);
  const b = await RawClient.connect(p.port);
  t.teardown(() => (a.close(), b.close()));
  a.send(fe.parse('', 'select $1::int + 100 as v'), fe.sync());
  t.same(summary(await a.readUntilReady()), ['1', 'Z I']);
  b.send(fe.parse('', 'select $1::text as w'), fe.bind('', '', ['b']), fe.execute(), fe.sync());
  t.same(summary(await b.readUntilReady()), ['1', '2', 'D ["b"]', 'C SELECT 1', 'Z I']);
  a.send(fe.bind('', '', ['1']), fe.describePortal(''), fe.execute(), fe.sync());
  t.same(summary(await a.readUntilReady()), ['2', 'T v', 'D ["101"]', 'C SELECT 1', 'Z I'], "A's unnamed statement is still its own");
  b.send(fe.bind('', '', ['again']), fe.execute(), fe.sync());
  t.same(summary(await b.readUntilReady()), ['2', 'D ["again"]', 'C SELECT 1', 'Z I']);
});

t.test('Close statement and reuse of the name', async (t) => {
  const got = await sameAsPostgres(t, 'close and reuse', async (c) => {
    const out: BackendMessage[] = [];
    c.send(fe.parse('st', 'select 1 as a'), fe.bind('', 'st'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.closeStatement('st'), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.bind('', 'st'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.parse('st', "select 'two' as b"), fe.describeStatement('st'), fe.bind('', 'st'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    // Close and re-Parse inside one pipeline, and closing a name that does not exist (not an error).
    c.send(fe.closeStatement('st'), fe.parse('st', 'select 3 as c'), fe.bind('', 'st'), fe.execute(), fe.closeStatement('nope'), fe.sync());
    out.push(...(await c.readUntilReady()));
    return out;
  });
  t.ok(got.includes('E 26000 prepared statement "st" does not exist'), 'Bind after Close fails with 26000');
  t.ok(got.includes('D ["two"]') && got.includes('D ["3"]'));
});

t.test('Bind to an unknown statement, Parse of an existing name', async (t) => {
  const got = await sameAsPostgres(t, 'unknown and duplicate statements', async (c) => {
    const out: BackendMessage[] = [];
    c.send(fe.bind('', 'nosuch'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.parse('dup', 'select 1'), fe.sync());
    out.push(...(await c.readUntilReady()));
    c.send(fe.parse('dup', 'select 2'), fe.bind('', 'dup'), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    // Inside a transaction the error fails it.
    out.push(...(await c.query('BEGIN')));
    c.send(fe.parse('dup', 'select 1'), fe.sync());
    out.push(...(await c.readUntilReady()));
    out.push(...(await c.query('ROLLBACK')));
    return out;
  });
  t.same(got.slice(0, 2), ['E 26000 prepared statement "nosuch" does not exist', 'Z I']);
  t.ok(got.includes('E 42P05 prepared statement "dup" already exists'));

  await sameAsPostgres(t, 'the same name parsed twice in one pipeline', async (c) => {
    c.send(fe.parse('twice', 'select 1'), fe.parse('twice', 'select 2'), fe.bind('', 'twice'), fe.execute(), fe.sync());
    const out = await c.readUntilReady();
    c.send(fe.bind('', 'twice'), fe.execute(), fe.sync());
    return [...out, ...(await c.readUntilReady())];
  });
});

t.test('pgjdbc-style named BEGIN/COMMIT over a pool of one shared with another client', async (t) => {
  const p = await startProxy(t, shards.clusters, { pool: { size: 1 } });
  await shard.query('create table jdbc_t (i int, who text)', 'app');
  const a = await RawClient.connect(p.port);
  const b = await RawClient.connect(p.port);
  t.teardown(() => (a.close(), b.close()));
  for (let i = 0; i < 5; i++) {
    const first = i === 0;
    a.send(
      ...(first ? [fe.parse('S_1', 'BEGIN')] : []),
      fe.bind('', 'S_1'), fe.execute(),
      ...(first ? [fe.parse('S_2', 'insert into jdbc_t values ($1, $2)')] : []),
      fe.bind('', 'S_2', [String(i), 'a']), fe.execute(),
      fe.sync(),
    );
    const tx = summary(await a.readUntilReady());
    t.same(tx, [...(first ? ['1'] : []), '2', 'C BEGIN', ...(first ? ['1'] : []), '2', 'C INSERT 0 1', 'Z T'], `transaction ${i}: BEGIN + INSERT`);
    // B wants the only backend while A's transaction holds it, with statement names clashing with A's.
    b.send(fe.parse(first ? 'S_1' : '', 'select count(*)::int from jdbc_t'), fe.bind('', first ? 'S_1' : ''), fe.execute(), fe.sync());
    await sleep(50);
    a.send(...(first ? [fe.parse('S_3', 'COMMIT')] : []), fe.bind('', 'S_3'), fe.execute(), fe.sync());
    t.same(summary(await a.readUntilReady()), [...(first ? ['1'] : []), '2', 'C COMMIT', 'Z I'], `transaction ${i}: COMMIT`);
    const seen = summary(await b.readUntilReady());
    t.same(seen, ['1', '2', `D ["${i + 1}"]`, 'C SELECT 1', 'Z I'], `the other client ran after commit ${i} and saw its row`);
  }
  // B reuses its own S_1 (a different statement from A's S_1).
  b.send(fe.bind('', 'S_1'), fe.execute(), fe.sync());
  t.same(summary(await b.readUntilReady()), ['2', 'D ["5"]', 'C SELECT 1', 'Z I']);
  const rowsOnShard = await shard.query('select count(*)::int as n from jdbc_t', 'app');
  t.same(rowsOnShard, [{ n: 5 }]);
});

t.test('Flush before Sync', async (t) => {
  const got = await sameAsPostgres(t, 'Parse/Describe/Flush, then Bind/Execute/Sync', async (c) => {
    const out: BackendMessage[] = [];
    c.send(fe.parse('fs', 'select $1::text as t, $2::int as n'), fe.describeStatement('fs'), fe.flush());
    out.push(...(await c.readUntil(['T', 'n'])));
    t.equal(c.pendingBytes, 0, 'nothing more than asked for');
    c.send(fe.bind('', 'fs', ['hello', '7']), fe.execute(), fe.sync());
    out.push(...(await c.readUntilReady()));
    return out;
  });
  t.same(got, ['1', 't', 'T t,n', '2', 'D ["hello","7"]', 'C SELECT 1', 'Z I']);
});

t.test('Terminate closes the connection cleanly and returns the backend', async (t) => {
  const p = await startProxy(t, shards.clusters, { pool: { size: 1 } });
  const c = await RawClient.connect(p.port);
  t.same(summary(await c.query('select 1')), ['T ?column?', 'D ["1"]', 'C SELECT 1', 'Z I']);
  await c.terminate();
  t.equal(c.pendingBytes, 0, 'no message after Terminate');
  const pool = p.server.pools.get('s0')!;
  t.match(pool.stats(), { total: 1, idle: 1, active: 0 }, 'the backend went back to the pool');
  // Mid-transaction Terminate: the transaction is rolled back and the pool's only backend is usable.
  await shard.query('create table term_t (i int)', 'app');
  const d = await RawClient.connect(p.port);
  await d.query('BEGIN');
  await d.query('insert into term_t values (1)');
  await d.terminate();
  const e = await RawClient.connect(p.port);
  t.teardown(() => e.close());
  t.same(summary(await e.query('select count(*)::int from term_t')), ['T count', 'D ["0"]', 'C SELECT 1', 'Z I'], 'the transaction was rolled back');
  t.match(pool.stats(), { total: 1 }, 'one backend, reused');
});
