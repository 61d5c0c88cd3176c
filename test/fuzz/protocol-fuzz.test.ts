// The protocol fuzz suite in the test command: a few thousand seeded cases, four at a time, bounded to
// about a minute (the seed is printed; PGSHARD_FUZZ_SEED replays a run, PGSHARD_FUZZ_ONLY one case).
// `npm run fuzz` runs the same suite for as long as asked.
import t from 'tap';
import { fuzzSuite } from './suite.js';

const cases = Number(process.env.PGSHARD_FUZZ_CASES ?? 3000);
t.test(`protocol fuzz: ${cases} cases`, (t) => fuzzSuite(t, { cases, seconds: 60, concurrency: 4 }));
