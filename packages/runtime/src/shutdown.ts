import type { Logger } from './log.js';

/**
 * Runs `stop` once on the first SIGINT or SIGTERM; a second signal exits at once. The process
 * exits with 0 after a clean stop, 1 when stopping failed or exceeded `timeoutMs`.
 */
export function onShutdownSignal(
  stop: (signal: NodeJS.Signals) => Promise<void>,
  options: { readonly logger?: Logger; readonly timeoutMs?: number } = {},
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      options.logger?.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    stopping = true;
    options.logger?.info('stopping', { signal });
    const timer = setTimeout(() => {
      options.logger?.error('shutdown took too long: exiting', { timeoutMs: options.timeoutMs ?? 30_000 });
      process.exit(1);
    }, options.timeoutMs ?? 30_000);
    timer.unref();
    stop(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        options.logger?.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
