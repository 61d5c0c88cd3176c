import t from 'tap';
import { PGSHARD_VERSION } from '../src/version.js';
t.match(PGSHARD_VERSION, /^\d+\.\d+\.\d+/);
