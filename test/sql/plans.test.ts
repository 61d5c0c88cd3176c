/**
 * Routing plans as data (Vitess style): every test/plans/*.json file is a list of cases, each a statement
 * text and the analysis it must produce, or the error it must be refused with. The default run compares;
 * PGSHARD_UPDATE_PLANS=1 rewrites the files from the analyser's output, so plan changes show up as diffs.
 *
 * Schema: test/sql/tables.json (users.id, orders.user_id, the pgbench tables, sessions.token uuid,
 * documents.slug text, countries reference). A case may say "unknown_tables": "refuse".
 */
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../src/config/schema.js';
import { initParser, StatementAnalyzer } from '../../src/sql/analyze.js';
import type { Analysis } from '../../src/sql/types.js';

const plansDir = fileURLToPath(new URL('../plans/', import.meta.url));
const tables = JSON.parse(readFileSync(new URL('./tables.json', import.meta.url), 'utf8')) as Config['tables'];
const update = process.env.PGSHARD_UPDATE_PLANS === '1';

interface Case {
  comment?: string;
  sql: string;
  unknown_tables?: 'reference' | 'refuse';
  plan?: unknown;
  error?: unknown;
}

await initParser();
const analyzers = {
  reference: new StatementAnalyzer(tables, 'reference'),
  refuse: new StatementAnalyzer(tables, 'refuse'),
};

/** A single refused statement is written as `error`; anything else as the plan (positions only for several statements). */
function render(a: Analysis): Pick<Case, 'plan' | 'error'> {
  const only = a.statements.length === 1 ? a.statements[0]! : undefined;
  if (only !== undefined && only.route.type === 'refuse' && a.hint === null) {
    const { type: _type, ...error } = only.route;
    return { error };
  }
  const statements = a.statements.length > 1 ? a.statements : a.statements.map(({ location: _l, length: _n, ...s }) => s);
  return { plan: { statements, hint: a.hint, parseError: a.parseError } };
}

const files = readdirSync(plansDir).filter((f) => f.endsWith('.json')).sort();
t.ok(files.length > 0, 'plan files exist');

for (const file of files) {
  t.test(file, async (t) => {
    const path = plansDir + file;
    const cases = JSON.parse(readFileSync(path, 'utf8')) as Case[];
    const out: Case[] = [];
    for (const c of cases) {
      const analyzer = analyzers[c.unknown_tables ?? 'reference'];
      const actual = render(analyzer.analyze(c.sql));
      if (update) {
        const { plan: _p, error: _e, ...rest } = c;
        out.push({ ...rest, ...actual });
      } else {
        const expected = c.error !== undefined ? { error: c.error } : { plan: c.plan };
        t.same(JSON.parse(JSON.stringify(actual)), expected, c.sql);
      }
    }
    if (update) writeFileSync(path, formatJson(out) + '\n');
  });
}

/** JSON with one line for every object or array that fits in 110 characters: short diffs, readable plans. */
function formatJson(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined) return 'null';
  if (flat.length + indent.length <= 160 || value === null || typeof value !== 'object') return flat;
  const inner = indent + '  ';
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + formatJson(v, inner)).join(',\n')}\n${indent}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`).join(',\n')}\n${indent}}`;
}
