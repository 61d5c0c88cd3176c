// `npm run fuzz`: the protocol fuzz suite (test/fuzz) for PGSHARD_FUZZ_SECONDS seconds (default 60).
// Run through tap for its TypeScript loader:  npx tap --timeout=0 --reporter=tap bench/fuzz.ts
// PGSHARD_FUZZ_SEED replays a run; PGSHARD_FUZZ_CONCURRENCY runs cases side by side (default 1).
import t from 'tap';
import { fuzzSuite } from '../test/fuzz/suite.js';

const seconds = Number(process.env.PGSHARD_FUZZ_SECONDS ?? 60);
t.test(`protocol fuzz for ${seconds} s`, (t) => fuzzSuite(t, { seconds }));
