export * from './client.js';
export * from './migrations.js';
export * from './billing.js';
export * from './exposure-store.js';
export * from './audit.js';
export * from './row-binary.js';
