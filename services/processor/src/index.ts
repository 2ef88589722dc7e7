export * from './config.js';
export * from './processor.js';
export * from './exposure-consumer.js';
export * from './http.js';
export { impressionRow, minuteRow } from './rows.js';
