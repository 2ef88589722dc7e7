/** Command-line and environment settings shared by `dwell replay` and `dwell export`. */
import { processorConfigFromEnv, type ProcessorConfig } from '@dwell/processor';
import { BillingUsageError, parseTime } from '../commands/billing.js';
import { AuditUsageError } from './exit-codes.js';
import type { AuditScope } from './replay-engine.js';

/** Where `dwell up` starts its broker. */
export const DEFAULT_KAFKA_BROKERS = ['127.0.0.1:9092'];

/** `--from`, `--to` and at most one of `--ad`, `--campaign`, `--site`. */
export function scopeFrom(values: Readonly<Record<string, string | boolean | undefined>>): AuditScope {
  const text = (name: string): string | undefined => {
    const value = values[name];
    if (typeof value === 'boolean') throw new AuditUsageError(`--${name} needs a value`);
    if (value === '') throw new AuditUsageError(`--${name} must not be empty`);
    return value;
  };
  const from = text('from');
  const to = text('to');
  if (from === undefined || to === undefined) throw new AuditUsageError('--from and --to are required (ISO date or date-time, or Unix ms)');
  let fromMs: number;
  let toMs: number;
  try {
    fromMs = parseTime(from, '--from');
    toMs = parseTime(to, '--to');
  } catch (error) {
    if (error instanceof BillingUsageError) throw new AuditUsageError(error.message);
    throw error;
  }
  if (toMs <= fromMs) throw new AuditUsageError('--to must be after --from');
  const filters = (['ad', 'campaign', 'site'] as const).filter((name) => text(name) !== undefined);
  if (filters.length > 1) throw new AuditUsageError(`give at most one of --ad, --campaign, --site (got ${filters.map((f) => `--${f}`).join(', ')})`);
  return { fromMs, toMs, ad: text('ad'), campaign: text('campaign'), site: text('site') };
}

export interface AuditEnvironment {
  readonly config: ProcessorConfig;
  readonly brokers: readonly string[];
}

/** The processor's settings (topic, ClickHouse, HTTP port) from the environment; Kafka defaulting to `dwell up`'s broker. */
export function auditEnvironment(env: Readonly<Record<string, string | undefined>>): AuditEnvironment {
  const config = processorConfigFromEnv(env);
  return { config, brokers: config.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS };
}

export function describeFilter(scope: AuditScope): string {
  if (scope.ad !== undefined) return `ad=${scope.ad}`;
  if (scope.campaign !== undefined) return `campaign=${scope.campaign}`;
  if (scope.site !== undefined) return `site=${scope.site}`;
  return 'all';
}
