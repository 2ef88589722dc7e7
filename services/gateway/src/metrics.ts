import type { CounterChild, HistogramChild, MetricsRegistry } from '@dwell/runtime';
import type { Transport } from '@dwell/protocol';

/** The gateway's Prometheus metrics; names in one place. */
export class GatewayMetrics {
  private readonly registry: MetricsRegistry;
  private readonly open = { value: 0 };
  private readonly frames: CounterChild;
  private readonly frameBytes: CounterChild;
  private readonly stored: CounterChild;
  private readonly slowClients: CounterChild;
  private readonly drains: CounterChild;
  private readonly storedFrameMs: HistogramChild;
  private readonly eventsInByTransport: (transport: Transport) => CounterChild;
  private readonly rejectedByReason: (reason: string) => CounterChild;
  private readonly refusedByReason: Record<'unavailable' | 'overloaded', CounterChild>;

  constructor(registry: MetricsRegistry, state: () => { eventsBuffered: number; oldestWaitMs: number; kafkaAvailable: boolean }) {
    this.registry = registry;
    registry.gauge('dwell_gateway_connections', 'Open WebSocket connections.', () => this.open.value);
    registry.gauge('dwell_gateway_buffered_event_bytes', 'Event bytes waiting for Kafka.', () => state().eventsBuffered);
    registry.gauge(
      'dwell_gateway_oldest_waiting_event_ms',
      'Age of the oldest event waiting for a Kafka produce request, ms (frames are refused beyond GATEWAY_MAX_WAIT_MS).',
      () => state().oldestWaitMs,
    );
    registry.gauge('dwell_gateway_kafka_available', '1 when the last produce succeeded.', () => (state().kafkaAvailable ? 1 : 0));
    this.frames = registry.counter('dwell_gateway_frames_received_total', 'Frames and HTTP bodies received.').labels();
    this.frameBytes = registry.counter('dwell_gateway_frame_bytes_received_total', 'Bytes of frames received.').labels();
    const eventsIn = registry.counter('dwell_gateway_events_received_total', 'Valid events received, by transport.');
    // Resolved once per transport: a frame's count is then one property write, not a label lookup.
    const byTransport = new Map<Transport, CounterChild>();
    this.eventsInByTransport = (transport) => {
      let child = byTransport.get(transport);
      if (child === undefined) {
        child = eventsIn.labels({ transport });
        byTransport.set(transport, child);
      }
      return child;
    };
    this.stored = registry.counter('dwell_gateway_events_stored_total', 'Events Kafka acknowledged.').labels();
    const rejected = registry.counter('dwell_gateway_rejected_total', 'Refused input, by reason.');
    this.rejectedByReason = (reason) => rejected.labels({ reason });
    const refused = registry.counter(
      'dwell_gateway_events_refused_total',
      'Valid events not stored and answered with a nack (WebSocket) or 503 (HTTP) for the client to resend, by reason: unavailable (Kafka) or overloaded (GATEWAY_MAX_BUFFERED_BYTES, GATEWAY_MAX_WAIT_MS).',
    );
    this.refusedByReason = { unavailable: refused.labels({ reason: 'unavailable' }), overloaded: refused.labels({ reason: 'overloaded' }) };
    this.slowClients = registry.counter('dwell_gateway_slow_clients_closed_total', 'Sockets closed for backpressure.').labels();
    this.drains = registry.counter('dwell_gateway_socket_drains_total', 'Backpressure drain events.').labels();
    this.storedFrameMs = registry
      .histogram(
        'dwell_gateway_frame_stored_ms',
        'From a WebSocket frame read to Kafka having stored its events (its ack is due), ms.',
        [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000, 5000],
      )
      .labels();
  }

  get registryRef(): MetricsRegistry {
    return this.registry;
  }
  connectionOpened(): void {
    this.open.value += 1;
  }
  connectionClosed(): void {
    this.open.value -= 1;
  }
  frameIn(bytes: number): void {
    this.frames.inc();
    this.frameBytes.inc(bytes);
  }
  eventsIn(count: number, transport: Transport): void {
    this.eventsInByTransport(transport).inc(count);
  }
  eventsStored(count: number): void {
    this.stored.inc(count);
  }
  rejected(reason: string): void {
    this.rejectedByReason(reason).inc();
  }
  eventsRefused(count: number, reason: 'unavailable' | 'overloaded'): void {
    this.refusedByReason[reason].inc(count);
  }
  slowClientClosed(): void {
    this.slowClients.inc();
  }
  frameStored(ms: number): void {
    this.storedFrameMs.observe(ms);
  }
  drained(): void {
    this.drains.inc();
  }
}
