/**
 * One Server-Sent Events stream on uWebSockets.js: frames as `data:` lines, written corked, with
 * backpressure. `res.write` always takes the chunk (uWebSockets.js buffers what the socket cannot
 * take yet) and returns false once it had to buffer; from then on frames wait here until
 * `onWritable` says the socket drained. A client that lets more than `maxBackpressureBytes` pile up
 * is not reading: its stream is closed (it reconnects, and commands still pending are handed to
 * the new stream).
 */
import type { HttpResponse } from 'uWebSockets.js';

export interface SseStreamOptions {
  readonly maxBackpressureBytes: number;
  /** The stream ended (client went away, slow client, or `end()`); called once. */
  readonly onClose: () => void;
  readonly onSlow: () => void;
}

export class SseStream {
  private readonly res: HttpResponse;
  private readonly options: SseStreamOptions;
  private readonly waiting: string[] = [];
  private waitingBytes = 0;
  private blocked = false;
  private closed = false;

  constructor(res: HttpResponse, options: SseStreamOptions) {
    this.res = res;
    this.options = options;
    res.onAborted(() => this.finish());
  }

  /** Writes the status and headers, and opens the event stream. */
  open(headers: Record<string, string>): void {
    this.res.cork(() => {
      this.res
        .writeStatus('200 OK')
        .writeHeader('content-type', 'text/event-stream')
        .writeHeader('cache-control', 'no-cache, no-transform')
        .writeHeader('x-accel-buffering', 'no');
      for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      // Tells EventSource how long to wait before reconnecting on its own.
      this.write('retry: 1000\n\n');
    });
  }

  /** One server frame (JSON text) as one event. */
  send(frame: string): void {
    // A `data:` line ends at a newline: re-serialise the rare JSON text that carries raw ones.
    const text = /[\r\n]/.test(frame) ? JSON.stringify(JSON.parse(frame)) : frame;
    this.enqueue(`data: ${text}\n\n`);
  }

  /** A comment line (keep-alive); skipped while the stream is blocked. */
  comment(text: string): void {
    if (!this.blocked) this.enqueue(`: ${text}\n\n`);
  }

  /** Ends the stream from the server's side. */
  end(): void {
    if (this.closed) return;
    this.res.cork(() => this.res.end());
    this.finish();
  }

  private enqueue(chunk: string): void {
    if (this.closed) return;
    if (this.blocked) {
      this.waiting.push(chunk);
      this.waitingBytes += chunk.length;
      if (this.waitingBytes > this.options.maxBackpressureBytes) {
        this.options.onSlow();
        // close() runs the onAborted handler, which finishes the stream.
        this.res.close();
      }
      return;
    }
    this.res.cork(() => this.write(chunk));
  }

  private write(chunk: string): void {
    if (this.res.write(chunk)) return;
    this.blocked = true;
    this.res.onWritable(() => this.drain());
  }

  /** The socket drained: send what waited, until it blocks again. */
  private drain(): boolean {
    if (this.closed) return true;
    this.blocked = false;
    let ok = true;
    this.res.cork(() => {
      while (ok && this.waiting.length > 0) {
        const chunk = this.waiting.shift() as string;
        this.waitingBytes -= chunk.length;
        ok = this.res.write(chunk);
      }
    });
    // Still blocked: uWebSockets.js keeps calling this handler until it returns true.
    if (!ok) this.blocked = true;
    return ok;
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiting.length = 0;
    this.options.onClose();
  }
}
