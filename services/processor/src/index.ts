export * from './config.js';
export * from './processor.js';
