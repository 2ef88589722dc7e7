export * from './client.js';
export * from './migrations.js';
