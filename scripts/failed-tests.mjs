#!/usr/bin/env node
// Reprints what failed at the end of a test run. CI keeps only the tail of a
// run's output, and a failure in an early file scrolls out of it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const root = '.tap/test-results';
function files(dir) {
  let out = [];
  let names = [];
  try { names = readdirSync(dir); } catch { return out; }
  for (const n of names) {
    const p = path.join(dir, n);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (p.endsWith('.tap')) out.push(p);
  }
  return out;
}

let failed = 0;
for (const file of files(root)) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const shown = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*not ok /.test(lines[i])) continue;
    // The innermost failure carries the diagnostics: its YAML block follows it.
    const end = Math.min(lines.length, i + 60);
    let j = i + 1;
    while (j < end && !/^\s*\.\.\.\s*$/.test(lines[j]) && !/^\s*(not )?ok /.test(lines[j])) j++;
    shown.push(...lines.slice(Math.max(0, i - 3), j + 1));
  }
  if (shown.length) {
    failed++;
    console.log(`\n### failed: ${path.relative(root, file).replace(/\.tap$/, '')}`);
    // Keep the summary inside the tail CI shows, however many assertions failed.
    console.log(shown.slice(0, 150).join('\n'));
    if (shown.length > 150) console.log(`... ${shown.length - 150} more lines in ${file}`);
  }
}
console.log(failed ? `\n### ${failed} test file(s) failed (full results in ${root})` : '\n### no failure recorded in .tap/test-results');
