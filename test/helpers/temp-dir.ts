import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];
// Removed when the test process exits rather than in a teardown: proxies that
// write topology or decision files there stop in teardowns of their own, in an
// order this helper cannot know.
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory under the system temp dir, gone when the test file ends. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pgshard-${prefix}-`));
  made.push(dir);
  return dir;
}
