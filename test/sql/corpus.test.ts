/**
 * Every statement of the shared SQL corpus (pgbench, psql, GUI clients, ORMs, the regression suite) gets a
 * route or a refusal with SQLSTATE and message: never a throw, never a parse error.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { Config } from '../../src/config/schema.js';
import { initParser, StatementAnalyzer } from '../../src/sql/analyze.js';

const tables = JSON.parse(readFileSync(new URL('./tables.json', import.meta.url), 'utf8')) as Config['tables'];

/** Entries are separated by a line `-- ;;`; each starts with a `-- src: ...` line (the file starts with a header). */
export function corpusEntries(text: string): { src: string; sql: string }[] {
  return text
    .split(/\n-- ;;\n/)
    .map((chunk) => {
      const lines = chunk.split('\n');
      const srcAt = lines.findIndex((l) => l.startsWith('-- src:'));
      return { src: srcAt >= 0 ? lines[srcAt]!.slice('-- src:'.length).trim() : '', sql: lines.slice(srcAt + 1).join('\n').trim() };
    })
    .filter((e) => e.sql.length > 0);
}

await initParser();
const entries = corpusEntries(readFileSync(new URL('../fixtures/sql-corpus.sql', import.meta.url), 'utf8'));
t.equal(entries.length, 257, 'all 257 corpus statements are read');

for (const mode of ['reference', 'refuse'] as const) {
  t.test(`unknown_tables: ${mode}`, async (t) => {
    const analyzer = new StatementAnalyzer(tables, mode);
    const counts: Record<string, number> = {};
    for (const { src, sql } of entries) {
      let analysis;
      try {
        analysis = analyzer.analyze(sql);
      } catch (err) {
        t.fail(`threw on ${src}: ${sql.slice(0, 80)}: ${String(err)}`);
        continue;
      }
      const label = `${src}: ${sql.slice(0, 60)}`;
      const s = analysis.statements[0];
      let problem: string | null = null;
      if (analysis.parseError !== null) problem = `parse error: ${analysis.parseError}`;
      else if (analysis.statements.length !== 1 || s === undefined) problem = `${analysis.statements.length} statements`;
      else if (s.tag.length === 0 || s.tag === 'UNKNOWN') problem = `no tag`;
      else if (s.route.type === 'refuse' && (!/^[0-9A-Z]{5}$/.test(s.route.sqlstate) || s.route.sqlstate === 'XX000' || s.route.message.length === 0))
        problem = `bad refusal ${JSON.stringify(s.route)}`;
      t.equal(problem, null, label);
      if (s === undefined) continue;
      counts[s.route.type] = (counts[s.route.type] ?? 0) + 1;
    }
    t.comment(`corpus (${mode}): ${Object.entries(counts).sort().map(([k, v]) => `${k} ${v}`).join(', ')}`);
  });
}
