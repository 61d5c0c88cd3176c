#!/usr/bin/env node
// report.mjs -- turns the raw runs of bench.sh into results.json, chart.svg and summary.md.
// Usage: node bench/report.mjs OUT_DIR   (reads OUT_DIR/runs.tsv, OUT_DIR/idle.tsv, OUT_DIR/meta.json)
import fs from 'node:fs';
import path from 'node:path';

const out = process.argv[2];
const hz = Number(process.env.CLK_TCK || 100);
const read = (f) => (fs.existsSync(path.join(out, f)) ? fs.readFileSync(path.join(out, f), 'utf8') : '');
const num = (s) => (s === '' || s === undefined || s === '-' ? null : Number(s));
const meta = JSON.parse(read('meta.json') || '{}');

const runs = read('runs.tsv').split('\n').filter(Boolean).map((l) => {
  const [rep, workload, target, status, tps, lat, p99, txns, proxyTicks, pgTicks, wall, note] = l.split('\t');
  const tx = num(txns);
  const perTxn = (t) => (t === null || !tx ? null : +(((t / hz) * 1e6) / tx).toFixed(1));
  return { rep: Number(rep), workload, target, status, tps: num(tps), latency_mean_ms: num(lat), latency_p99_ms: num(p99),
    transactions: tx, proxy_cpu_ticks: num(proxyTicks), postgres_cpu_ticks: num(pgTicks),
    proxy_cpu_us_per_txn: perTxn(num(proxyTicks)), postgres_cpu_us_per_txn: perTxn(num(pgTicks)), wall_s: num(wall), note: note || null };
});
const idle = read('idle.tsv').split('\n').filter(Boolean).map((l) => {
  const [target, okN, failedN, before, after, openMs, note] = l.split('\t');
  const ok = Number(okN), d = num(after) !== null && num(before) !== null ? Number(after) - Number(before) : null;
  return { target, connections_ok: ok, connections_failed: Number(failedN), rss_before_kib: num(before), rss_after_kib: num(after),
    rss_delta_kib: d, kib_per_client: d !== null && ok > 0 ? +(d / ok).toFixed(2) : null, open_ms: num(openMs), note: note || null };
});

// aggregate per (workload, target)
const keyOf = (r) => `${r.workload}\t${r.target}`;
const groups = new Map();
for (const r of runs) {
  if (!groups.has(keyOf(r))) groups.set(keyOf(r), { workload: r.workload, target: r.target, runs: [] });
  groups.get(keyOf(r)).runs.push(r);
}
const mean = (a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : null);
const summary = [...groups.values()].map((g) => {
  const ok = g.runs.filter((r) => r.status === 'ok');
  const tpsList = ok.map((r) => r.tps);
  const cpuRuns = ok.filter((r) => r.proxy_cpu_ticks !== null && r.transactions);
  const pgRuns = ok.filter((r) => r.postgres_cpu_ticks !== null && r.transactions);
  const sumT = (rs, f) => rs.reduce((s, r) => s + r[f], 0);
  return {
    workload: g.workload, target: g.target, runs: g.runs.length, runs_ok: ok.length,
    tps: mean(tpsList), tps_min: tpsList.length ? Math.min(...tpsList) : null, tps_max: tpsList.length ? Math.max(...tpsList) : null,
    latency_mean_ms: mean(ok.map((r) => r.latency_mean_ms).filter((x) => x !== null)),
    latency_p99_ms: mean(ok.map((r) => r.latency_p99_ms).filter((x) => x !== null)),
    proxy_cpu_us_per_txn: cpuRuns.length ? ((sumT(cpuRuns, 'proxy_cpu_ticks') / hz) * 1e6) / sumT(cpuRuns, 'transactions') : null,
    postgres_cpu_us_per_txn: pgRuns.length ? ((sumT(pgRuns, 'postgres_cpu_ticks') / hz) * 1e6) / sumT(pgRuns, 'transactions') : null,
    failures: g.runs.filter((r) => r.status !== 'ok').map((r) => `rep ${r.rep}: ${r.status}${r.note ? ' (' + r.note + ')' : ''}`),
  };
});
const find = (w, t) => summary.find((s) => s.workload === w && s.target === t && s.tps);
for (const s of summary) {
  const d = find(s.workload, 'direct'), b = find(s.workload, 'pgbouncer');
  s.vs_direct = s.tps && d ? s.tps / d.tps : null;
  s.vs_pgbouncer = s.tps && b ? s.tps / b.tps : null;
}

const f = (x, dp = 0) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(dp));
let md = '| workload | target | TPS (min–max) | mean ms | p99 ms | vs direct | vs pgbouncer | proxy CPU µs/txn | PG CPU µs/txn | ok |\n';
md += '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n';
for (const s of summary) {
  if (!s.runs_ok) { md += `| ${s.workload} | ${s.target} | failed | - | - | - | - | - | - | 0/${s.runs} |\n`; continue; }
  const range = s.runs_ok > 1 ? ` (${f(s.tps_min)}–${f(s.tps_max)})` : '';
  md += `| ${s.workload} | ${s.target} | ${f(s.tps)}${range} | ${f(s.latency_mean_ms, 3)} | ${f(s.latency_p99_ms, 3)} | ${f(s.vs_direct, 2)} | ${f(s.vs_pgbouncer, 2)} | ${f(s.proxy_cpu_us_per_txn, 1)} | ${f(s.postgres_cpu_us_per_txn, 1)} | ${s.runs_ok}/${s.runs} |\n`;
}
if (idle.length) {
  md += '\n| idle clients | target | connected | failed | RSS delta MiB | KiB per client | open time ms |\n|---|---|---:|---:|---:|---:|---:|\n';
  for (const i of idle)
    md += `| idle | ${i.target} | ${i.connections_ok} | ${i.connections_failed} | ${f(i.rss_delta_kib === null ? null : i.rss_delta_kib / 1024, 1)} | ${f(i.kib_per_client, 1)} | ${f(i.open_ms)} |\n`;
}
const fails = summary.filter((s) => s.failures.length);
if (fails.length) {
  md += '\nRuns that did not complete cleanly:\n';
  for (const s of fails) for (const x of s.failures) md += `- ${s.workload} via ${s.target}, ${x}\n`;
}
md += '\nTPS: mean over clean runs (min–max over reps). Ratios: mean TPS against direct Postgres / PgBouncer, same workload, same run.\n';
md += 'Latency from pgbench --log (per transaction). CPU µs/txn: user+system time of the process tree from /proc over the run.\n';

// SVG: one group per workload, one bar per target, bar length relative to the best target of that workload
const colors = { direct: '#4c78a8', pgbouncer: '#f58518', relay: '#9d9d9d', canned: '#bab0ac', pgshard1: '#54a24b', pgshard3: '#2e7d32' };
const workloads = [...new Set(summary.map((s) => s.workload))];
const targets = [...new Set(summary.map((s) => s.target))];
const barH = 13, gap = 10, left = 200, width = 820, plotW = width - left - 120;
let y = 40, body = '';
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
for (const w of workloads) {
  const rows = targets.map((t) => summary.find((s) => s.workload === w && s.target === t)).filter(Boolean);
  const max = Math.max(1, ...rows.map((r) => r.tps || 0));
  body += `<text x="8" y="${y + barH}" font-weight="bold">${esc(w)}</text>\n`;
  for (const r of rows) {
    const len = r.tps ? Math.max(1, (r.tps / max) * plotW) : 0;
    body += `<text x="${left - 6}" y="${y + barH - 3}" text-anchor="end">${esc(r.target)}</text>`;
    body += `<rect x="${left}" y="${y}" width="${len.toFixed(1)}" height="${barH}" fill="${colors[r.target] || '#888'}"/>`;
    body += `<text x="${left + len + 4}" y="${y + barH - 3}">${r.tps ? f(r.tps) + ' tps' : 'failed'}</text>\n`;
    y += barH + 2;
  }
  y += gap;
}
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="8" y="20" font-size="14" font-weight="bold">pgshard bench: TPS per target per workload (${esc(meta.date || '')}, ${esc(meta.cpus || '?')} CPUs)</text>
${body}</svg>
`;
fs.writeFileSync(path.join(out, 'chart.svg'), svg);
fs.writeFileSync(path.join(out, 'summary.md'), md);
fs.writeFileSync(path.join(out, 'results.json'), JSON.stringify({ meta, summary, idle, runs }, null, 2) + '\n');
process.stdout.write(md);
