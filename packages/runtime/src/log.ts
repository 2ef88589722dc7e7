/**
 * Structured logs: one JSON object per line on stderr (`LOG_FORMAT=json`, the default when stderr
 * is not a terminal) or a short human line on a terminal. Levels follow the usual order.
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  readonly level: LogLevel;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly format?: 'json' | 'pretty';
  readonly write?: (line: string) => void;
  readonly base?: LogFields;
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const format = options.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const base = options.base ?? {};

  const emit = (at: LogLevel, message: string, fields: LogFields | undefined): void => {
    if (rank[at] < rank[level]) return;
    const all = { ...base, ...fields };
    if (format === 'json') {
      write(JSON.stringify({ time: new Date().toISOString(), level: at, msg: message, ...serialisable(all) }));
      return;
    }
    const extra = Object.entries(all)
      .filter(([key]) => key !== 'component')
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(serialisable({ v: value })['v'])}`)
      .join(' ');
    const component = typeof all['component'] === 'string' ? `[${all['component']}] ` : '';
    write(`${at === 'info' ? '' : at.toUpperCase() + ' '}${component}${message}${extra === '' ? '' : ' ' + extra}`);
  };

  return {
    level,
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => createLogger({ level, format, write, base: { ...base, ...fields } }),
  };
}

function serialisable(fields: LogFields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] =
      value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value;
  }
  return out;
}
