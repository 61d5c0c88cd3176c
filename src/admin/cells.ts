/**
 * Metric primitives for the hot path. prom-client's own `counter.labels(…).inc()` hashes the label set on
 * every call (~0.8 µs with a histogram observation); here a label set is resolved once into a cell, an
 * increment is a field update, and the exposition is built at scrape time. The classes below have the
 * shape prom-client's Registry reads (name, help, type, aggregator, get(), reset()), so they live in the
 * same Registry as prom-client's own metrics and the process defaults.
 */
import type { Metric, MetricValue, Registry } from 'prom-client';

type Labels = Record<string, string>;

export class CounterCell {
  value = 0;
  constructor(readonly labels: Readonly<Labels>) {}
  inc(n = 1): void {
    this.value += n;
  }
}

export class HistogramCell {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Readonly<Labels>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

interface Exported {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: Aggregator;
  values: (MetricValue<string> & { metricName?: string })[];
}

/** How the primary of several workers (`workers: N`) combines their samples: prom-client's aggregators. */
export type Aggregator = 'sum' | 'first' | 'min' | 'max';

abstract class ScrapedMetric {
  aggregator: Aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  abstract values(): Exported['values'];
  async get(): Promise<Exported> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() };
  }
  reset(): void {}
  /** Registers in a prom-client Registry, which reads metrics through get(). */
  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}

/** A counter whose label sets are resolved once into cells. */
export class CellCounter extends ScrapedMetric {
  private readonly cells = new Map<string, CounterCell>();
  constructor(
    name: string,
    help: string,
    readonly labelNames: readonly string[],
  ) {
    super(name, help, 'counter');
  }
  /** The cell of a label set (created at 0, so the series is exported before its first increment). */
  cell(...values: string[]): CounterCell {
    const key = values.join('\u0000');
    let c = this.cells.get(key);
    if (!c) {
      c = new CounterCell(Object.fromEntries(this.labelNames.map((n, i) => [n, values[i] ?? ''])));
      this.cells.set(key, c);
    }
    return c;
  }
  values(): Exported['values'] {
    return [...this.cells.values()].map((c) => ({ labels: c.labels, value: c.value }));
  }
}

/** A histogram whose label sets are resolved once into cells. */
export class CellHistogram extends ScrapedMetric {
  private readonly cells = new Map<string, HistogramCell>();
  constructor(
    name: string,
    help: string,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, 'histogram');
    for (let i = 1; i < buckets.length; i++) if (!(buckets[i]! > buckets[i - 1]!)) throw new RangeError(`${name}: buckets must increase`);
  }
  cell(...values: string[]): HistogramCell {
    const key = values.join('\u0000');
    let c = this.cells.get(key);
    if (!c) {
      c = new HistogramCell(Object.fromEntries(this.labelNames.map((n, i) => [n, values[i] ?? ''])), this.buckets);
      this.cells.set(key, c);
    }
    return c;
  }
  values(): Exported['values'] {
    const out: Exported['values'] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.cells.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += c.counts[i]!;
        out.push({ metricName: bucket, labels: { ...c.labels, le }, value: acc });
      });
      out.push({ metricName: bucket, labels: { ...c.labels, le: '+Inf' }, value: c.count });
      out.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
      out.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    }
    return out;
  }
}

/** A counter or gauge whose samples are read from elsewhere (a cache's hit count, a pool's state) at scrape time. */
export class ReadMetric extends ScrapedMetric {
  constructor(
    name: string,
    help: string,
    type: 'counter' | 'gauge',
    private readonly read: () => { labels?: Labels; value: number }[],
    aggregator: Aggregator = 'sum',
  ) {
    super(name, help, type);
    this.aggregator = aggregator;
  }
  values(): Exported['values'] {
    return this.read().map((s) => ({ labels: s.labels ?? {}, value: s.value }));
  }
}
