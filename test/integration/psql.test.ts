// psql through pgshard: what a person at a terminal does, compared with psql straight to the shard.
import t from 'tap';
import { withShards } from '../helpers/shards.js';
import { startProxy } from '../helpers/proxy.js';
import { psql } from '../helpers/tools.js';

const shards = await withShards(t, 1);
const shard = shards.clusters[0]!;
const proxy = await startProxy(t, shards.clusters);

/** psql output through pgshard and directly, for a script that does not change anything. */
async function both(sql: string, opts: { tuplesOnly?: boolean } = {}) {
  const [via, direct] = await Promise.all([psql(proxy.port, sql, opts), psql(shard.port, sql, opts)]);
  return { via, direct };
}

t.test('select 41+1', async (t) => {
  const r = await psql(proxy.port, 'select 41+1', { tuplesOnly: true });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '42\n');
});

t.test('DDL, \\d and \\dt', async (t) => {
  const r = await psql(proxy.port, 'create table t (id int primary key, name text not null, at timestamptz default now())');
  t.equal(r.code, 0, r.stderr);
  const d = await both('\\d t');
  t.equal(d.via.code, 0, d.via.stderr);
  t.match(d.via.stdout, /"t_pkey" PRIMARY KEY, btree \(id\)/, '\\d t shows the primary key');
  t.equal(d.via.stdout, d.direct.stdout, '\\d t as on the shard');
  const dt = await both('\\dt');
  t.match(dt.via.stdout, /public \| t +\| table \| app/);
  t.equal(dt.via.stdout, dt.direct.stdout, '\\dt as on the shard');
});

t.test('COPY in and out', async (t) => {
  await psql(proxy.port, 'create table c (id int primary key, v text)');
  const lines = Array.from({ length: 1000 }, (_, i) => `${i}\tvalue ${i} \\\\ tab\\there ü`);
  const input = `\\copy c from stdin\n${lines.join('\n')}\n\\.\nselect count(*) from c;\n`;
  const r = await psql(proxy.port, input, { tuplesOnly: true });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), '1000');
  const onShard = await shard.query<{ n: number; v: string }>(`select count(*)::int as n, max(v) filter (where id = 7) as v from c`, 'app');
  t.same(onShard, [{ n: 1000, v: 'value 7 \\ tab\there ü' }], 'the rows are on the shard');

  const out = await psql(proxy.port, '\\copy c to stdout');
  t.equal(out.code, 0, out.stderr);
  t.equal(out.stdout, lines.join('\n') + '\n', '\\copy to stdout gives the rows back');
  const server = await both('COPY c TO STDOUT');
  t.equal(server.via.stdout, server.direct.stdout, 'COPY c TO STDOUT as on the shard');
  t.equal(server.via.stdout.split('\n').length, 1001);
  const csv = await both("COPY (select * from c where id < 10 order by id) TO STDOUT WITH (FORMAT csv, HEADER)");
  t.equal(csv.via.stdout, csv.direct.stdout, 'COPY (query) csv as on the shard');

  // A COPY that fails partway (duplicate key) leaves the session usable.
  const bad = await psql(proxy.port, '\\copy c from stdin\n5000\tok\n1\tduplicate\n\\.\n', {});
  t.not(bad.code, 0);
  t.match(bad.stderr, /duplicate key value violates unique constraint "c_pkey"/);
  const after = await psql(proxy.port, '\\set ON_ERROR_STOP 0\n\\copy c from stdin\n1\tdup\n\\.\nselect count(*) from c;\n', { tuplesOnly: true });
  t.match(after.stdout.trim(), /^1000$/m, 'the next statement on the same connection works');
});

t.test('a multi-statement string', async (t) => {
  // -c sends the whole string as one Query message.
  const [a, b] = await Promise.all([
    psql(proxy.port, '', { tuplesOnly: true, args: ['-c', 'select 1; select 2'] }),
    psql(shard.port, '', { tuplesOnly: true, args: ['-c', 'select 1; select 2'] }),
  ]);
  t.equal(a.code, 0, a.stderr);
  t.equal(a.stdout, b.stdout, 'same output as on the shard');
  t.match(a.stdout, /2/);
  const script = await both('select 1 as a; select 2 as b;');
  t.equal(script.via.stdout, script.direct.stdout);
});

t.test('NOTICE is forwarded', async (t) => {
  const r = await psql(proxy.port, "DO $$BEGIN RAISE NOTICE 'hello'; END$$;");
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /NOTICE: {2}hello/);
});

t.test('an error, and the next statement works', async (t) => {
  const sql = '\\set ON_ERROR_STOP 0\nselect 1/0;\nselect 7 as seven;\n';
  const { via, direct } = await both(sql, { tuplesOnly: true });
  t.match(via.stderr, /ERROR: {2}division by zero/);
  t.equal(via.stdout, '7\n', 'the next statement ran');
  t.equal(via.stderr, direct.stderr, 'the same error text as psql on the shard');
  t.equal(via.stdout, direct.stdout);
  // Inside a transaction: aborted until ROLLBACK.
  const tx = await both('\\set ON_ERROR_STOP 0\nbegin;\nselect 1/0;\nselect 1;\nrollback;\nselect 8;\n', { tuplesOnly: true });
  t.match(tx.via.stderr, /current transaction is aborted, commands ignored until end of transaction block/);
  t.equal(tx.via.stderr, tx.direct.stderr);
  t.equal(tx.via.stdout, '8\n');
});
