/**
 * A small Prometheus registry: counters, gauges and histograms with label sets, rendered in the
 * text exposition format. Hot paths hold a pre-resolved child (`counter.labels(...)`), so an
 * increment is one property write, not a map lookup.
 */

type Labels = Readonly<Record<string, string>>;

interface Metric {
  render(): string;
}

function labelText(labels: Labels, extra?: string): string {
  const parts = Object.entries(labels).map(([key, value]) => `${key}="${escapeLabel(value)}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export class CounterChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class Counter implements Metric {
  private readonly children = new Map<string, { labels: Labels; child: CounterChild }>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  labels(labels: Labels = {}): CounterChild {
    const key = labelKey(labels);
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { labels, child: new CounterChild() };
      this.children.set(key, entry);
    }
    return entry.child;
  }
  inc(by = 1, labels: Labels = {}): void {
    this.labels(labels).inc(by);
  }
  get(labels: Labels = {}): number {
    return this.children.get(labelKey(labels))?.child.value ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, child } of this.children.values()) lines.push(`${this.name}${labelText(labels)} ${child.value}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  readonly name: string;
  readonly help: string;
  private readonly collect: (() => number | ReadonlyArray<readonly [Labels, number]>) | undefined;
  constructor(name: string, help: string, collect?: () => number | ReadonlyArray<readonly [Labels, number]>) {
    this.name = name;
    this.help = help;
    this.collect = collect;
  }
  set(value: number, labels: Labels = {}): void {
    this.values.set(labelKey(labels), { labels, value });
  }
  inc(by = 1, labels: Labels = {}): void {
    const key = labelKey(labels);
    const entry = this.values.get(key);
    if (entry === undefined) this.values.set(key, { labels, value: by });
    else entry.value += by;
  }
  dec(by = 1, labels: Labels = {}): void {
    this.inc(-by, labels);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels))?.value ?? 0;
  }
  render(): string {
    if (this.collect !== undefined) {
      const collected = this.collect();
      if (typeof collected === 'number') this.set(collected);
      else for (const [labels, value] of collected) this.set(value, labels);
    }
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines.join('\n');
  }
}

export class HistogramChild {
  readonly counts: number[];
  sum = 0;
  count = 0;
  private readonly bounds: readonly number[];
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array<number>(bounds.length).fill(0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }
}

export class Histogram implements Metric {
  private readonly children = new Map<string, { labels: Labels; child: HistogramChild }>();
  readonly name: string;
  readonly help: string;
  readonly bounds: readonly number[];
  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.bounds = bounds;
  }
  labels(labels: Labels = {}): HistogramChild {
    const key = labelKey(labels);
    let entry = this.children.get(key);
    if (entry === undefined) {
      entry = { labels, child: new HistogramChild(this.bounds) };
      this.children.set(key, entry);
    }
    return entry.child;
  }
  observe(value: number, labels: Labels = {}): void {
    this.labels(labels).observe(value);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, child } of this.children.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += child.counts[i] as number;
        lines.push(`${this.name}_bucket${labelText(labels, `le="${bound}"`)} ${cumulative}`);
      });
      lines.push(`${this.name}_bucket${labelText(labels, 'le="+Inf"')} ${child.count}`);
      lines.push(`${this.name}_sum${labelText(labels)} ${child.sum}`);
      lines.push(`${this.name}_count${labelText(labels)} ${child.count}`);
    }
    return lines.join('\n');
  }
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string, collect?: () => number | ReadonlyArray<readonly [Labels, number]>): Gauge {
    return this.add(new Gauge(name, help, collect));
  }
  histogram(name: string, help: string, bounds: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, bounds));
  }
  /** Process-level gauges every service exports. */
  withProcessMetrics(prefix: string): this {
    const started = Date.now();
    this.gauge(`${prefix}_process_resident_memory_bytes`, 'Resident set size.', () => process.memoryUsage.rss());
    this.gauge(`${prefix}_process_heap_used_bytes`, 'V8 heap in use.', () => process.memoryUsage().heapUsed);
    this.gauge(`${prefix}_process_cpu_seconds_total`, 'User plus system CPU time.', () => {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1e6;
    });
    this.gauge(`${prefix}_process_uptime_seconds`, 'Seconds since start.', () => (Date.now() - started) / 1000);
    return this;
  }
  render(): string {
    return this.metrics.map((metric) => metric.render()).join('\n') + '\n';
  }
  private add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }
}
