export * from './bus.js';
export * from './limits.js';
export * from './outcome.js';
export * from './presence-view.js';
export * from './topics.js';
