/**
 * Progress of a long read on stderr: a bar with events/s and ETA on a terminal, plain lines
 * every few seconds otherwise (logs, CI).
 */
export interface ProgressSink {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export class Progress {
  private readonly sink: ProgressSink;
  private readonly label: string;
  private total: number;
  private readonly startedAt: number;
  /** When the first record arrived: rates and ETA count from here, not from connecting. */
  private flowingAt: number | undefined;
  private lastDrawAt = 0;
  private done = 0;
  private readonly now: () => number;
  private readonly intervalMs: number;

  constructor(sink: ProgressSink, label: string, total: number, now: () => number = Date.now) {
    this.sink = sink;
    this.label = label;
    this.total = total;
    this.now = now;
    this.startedAt = now();
    this.intervalMs = sink.isTTY === true ? 100 : 2000;
  }

  update(done: number): void {
    this.done = done;
    const at = this.now();
    if (done > 0) this.flowingAt ??= at;
    if (at - this.lastDrawAt < this.intervalMs) return;
    this.lastDrawAt = at;
    this.draw(at, false);
  }

  /** Final line: the totals and the overall rate. */
  finish(done: number = this.done): void {
    this.done = done;
    this.total = Math.max(this.total, done);
    this.draw(this.now(), true);
  }

  private draw(at: number, final: boolean): void {
    const seconds = Math.max(0.001, (at - this.startedAt) / 1000);
    const rate = this.done / Math.max(0.001, (at - (this.flowingAt ?? at)) / 1000);
    const share = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const eta = rate > 0 && !final ? (this.total - this.done) / rate : 0;
    const figures = `${fmt(this.done)}/${fmt(this.total)} events  ${fmt(Math.round(rate))} events/s  ${final ? `${seconds.toFixed(1)} s` : `ETA ${duration(eta)}`}`;
    if (this.sink.isTTY === true) {
      const width = 30;
      const filled = Math.round(share * width);
      this.sink.write(`\r\u001b[2K${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(share * 100).toFixed(1).padStart(5)}%  ${figures}${final ? '\n' : ''}`);
    } else {
      this.sink.write(`${this.label}: ${(share * 100).toFixed(1)}%  ${figures}\n`);
    }
  }
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}
