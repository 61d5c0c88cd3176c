// Regenerates test/fuzz/fixtures/sessions.json: real client sessions recorded through pgshard.
// Writes only when asked, so the test command never touches the repository:
//   PGSHARD_FUZZ_RECORD=1 npx tap --timeout=120 test/fuzz/record-fixtures.ts
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

if (process.env.PGSHARD_FUZZ_RECORD !== '1') {
  t.pass('set PGSHARD_FUZZ_RECORD=1 to regenerate the fuzz fixtures');
} else {
  const { withShards } = await import('../helpers/shards.js');
  const { startProxy } = await import('../helpers/proxy.js');
  const { RecordingRelay, recordWorkloads, SHARD_SETUP_SQL } = await import('./record.js');
  const shards = await withShards(t, 1);
  await shards.clusters[0]!.query(SHARD_SETUP_SQL, 'app');
  const proxy = await startProxy(t, shards.clusters, { auth: { method: 'trust' } });
  const relay = new RecordingRelay(proxy.port);
  await relay.listen();
  t.teardown(() => relay.close());
  await recordWorkloads(relay);
  const recs = relay.recordings();
  const out = fileURLToPath(new URL('./fixtures/sessions.json', import.meta.url));
  const doc = recs.map((r) => ({ name: r.name, base64: r.bytes.toString('base64') }));
  await writeFile(out, JSON.stringify(doc, null, 1) + '\n');
  t.ok(recs.length >= 7, `${recs.length} sessions written to ${out}`);
}
