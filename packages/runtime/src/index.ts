export * from './config.js';
export * from './errors.js';
export * from './log.js';
export * from './metrics.js';
export * from './shutdown.js';
export * from './threads.js';
