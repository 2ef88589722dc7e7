/** Exit codes of `dwell replay` and `dwell export` (docs/audit.md). */
export const AUDIT_EXIT = {
  /** Replay: every in-scope page view compared, no difference. Export: written. */
  ok: 0,
  /** A failure: Kafka or ClickHouse unreachable, a bug. */
  error: 1,
  /** Bad command line. */
  usage: 2,
  /** Replay: the log and ClickHouse differ. */
  different: 3,
  /** Retention already deleted records of the range: it cannot be replayed any more. */
  retention: 4,
  /** Replay: no difference, but some page views could not be compared (the processor is behind). */
  incomplete: 5,
} as const;

export class AuditUsageError extends Error {
  override readonly name = 'AuditUsageError';
}
