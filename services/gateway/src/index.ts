export * from './auth.js';
export * from './close-codes.js';
export * from './config.js';
export * from './event-log.js';
export * from './gateway.js';
export * from './server.js';
export * from './uws.js';
export * from './workers.js';
