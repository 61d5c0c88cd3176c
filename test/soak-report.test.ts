// The soak verdict: a steady climb of RSS is a trend, a warm-up jump followed by a plateau or noise is not.
import t from 'tap';
import { memoryTrend, soakChart, type Sample } from '../bench/soak-report.js';

const series = (f: (i: number) => number, n = 40): Sample[] =>
  Array.from({ length: n }, (_, i) => ({ t: i * 5, rssMb: f(i), heapMb: f(i) / 2, lagP99Ms: 3, lagMaxMs: 9, ok: i, errors: 0 }));

t.equal(memoryTrend(series((i) => 150 + i * 2)).rising, true, 'a leak of 2 MB per sample (24 MB/min) is rising');
t.ok(Math.abs(memoryTrend(series((i) => 150 + i * 2)).slopeMbPerMin - 24) < 1e-9, 'its slope is 24 MB/min');
t.equal(memoryTrend(series((i) => (i < 8 ? 100 + i * 20 : 260))).rising, false, 'a warm-up climb then a plateau is not');
t.equal(memoryTrend(series((i) => 200 + ((i * 37) % 11) - 5)).rising, false, 'noise around a level is not');
t.equal(memoryTrend(series((i) => 200 + i * 0.5)).rising, false, 'a slow drift under 32 MB over the window is not');
t.equal(memoryTrend(series((i) => 100, 2)).rising, false, 'too few samples: no verdict');
const svg = soakChart(series((i) => 150 + i), 'a <title>');
t.match(svg, /^<svg [^>]*>/, 'the chart is an SVG document');
t.equal((svg.match(/<polyline/g) ?? []).length, 3, 'with RSS, heap and lag lines');
t.match(svg, /a &lt;title>/, 'its title escaped');
