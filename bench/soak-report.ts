// The soak run's verdict and chart, as pure functions of its samples (unit-tested in test/soak-report.test.ts).

export interface Sample {
  /** Seconds since the start. */
  t: number;
  rssMb: number;
  heapMb: number;
  lagP99Ms: number;
  lagMaxMs: number;
  ok: number;
  errors: number;
}

export interface Trend {
  /** Samples measured (those after the warm-up quarter). */
  window: number;
  slopeMbPerMin: number;
  /** The fitted growth over the measured window. */
  growthMb: number;
  rising: boolean;
}

/**
 * Least-squares slope of RSS over time after the first quarter (warm-up: pools fill, code gets compiled).
 * Rising: the fitted growth over the window is over 32 MB and over a tenth of the RSS at its start; a
 * plateau, or noise around one, is not.
 */
export function memoryTrend(samples: readonly Sample[]): Trend {
  const w = samples.slice(Math.floor(samples.length / 4));
  if (w.length < 3) return { window: w.length, slopeMbPerMin: 0, growthMb: 0, rising: false };
  const n = w.length;
  const mt = w.reduce((a, s) => a + s.t, 0) / n;
  const mr = w.reduce((a, s) => a + s.rssMb, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of w) {
    num += (s.t - mt) * (s.rssMb - mr);
    den += (s.t - mt) ** 2;
  }
  const slope = den === 0 ? 0 : num / den; // MB per second
  const growthMb = slope * (w[n - 1]!.t - w[0]!.t);
  return { window: n, slopeMbPerMin: slope * 60, growthMb, rising: growthMb > Math.max(32, w[0]!.rssMb / 10) };
}

/** RSS and heap (MB, left axis) and event-loop lag p99 (ms, right axis) over time, as an SVG document. */
export function soakChart(samples: readonly Sample[], title: string): string {
  const W = 720;
  const H = 300;
  const L = 50;
  const R = 50;
  const T = 30;
  const B = 40;
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const mMax = Math.max(1, ...samples.map((s) => s.rssMb)) * 1.1;
  const lMax = Math.max(1, ...samples.map((s) => s.lagP99Ms)) * 1.1;
  const x = (t: number) => L + ((W - L - R) * t) / tMax;
  const yM = (v: number) => H - B - ((H - T - B) * v) / mMax;
  const yL = (v: number) => H - B - ((H - T - B) * v) / lMax;
  const line = (pts: [number, number][], color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${L}" y="18" font-size="13">${esc(title)}</text>
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#999"/>
<line x1="${W - R}" y1="${T}" x2="${W - R}" y2="${H - B}" stroke="#999"/>
<text x="${L - 4}" y="${T + 4}" text-anchor="end">${mMax.toFixed(0)} MB</text>
<text x="${L - 4}" y="${H - B}" text-anchor="end">0</text>
<text x="${W - R + 4}" y="${T + 4}">${lMax.toFixed(0)} ms</text>
<text x="${W - R}" y="${H - B + 14}" text-anchor="end">${tMax.toFixed(0)} s</text>
${line(samples.map((s) => [x(s.t), yM(s.rssMb)]), '#1f77b4')}
${line(samples.map((s) => [x(s.t), yM(s.heapMb)]), '#2ca02c')}
${line(samples.map((s) => [x(s.t), yL(s.lagP99Ms)]), '#d62728')}
<text x="${L}" y="${H - 10}" fill="#1f77b4">RSS (MB)</text>
<text x="${L + 80}" y="${H - 10}" fill="#2ca02c">heap used (MB)</text>
<text x="${L + 190}" y="${H - 10}" fill="#d62728">event-loop lag p99 (ms, right axis)</text>
</svg>
`;
}
