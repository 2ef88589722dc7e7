import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));
// Tests import workspace packages from their TypeScript sources, so a unit test never needs a build.
const alias = Object.fromEntries(
  [
    ['@dwell/runtime', 'packages/runtime'],
    ['@dwell/protocol', 'packages/protocol'],
    ['@dwell/exposure', 'packages/exposure'],
    ['@dwell/kafka', 'packages/kafka'],
    ['@dwell/warehouse', 'packages/warehouse'],
    ['@dwell/commands', 'packages/commands'],
    ['@dwell/sdk', 'packages/sdk'],
    ['@dwell/gateway', 'services/gateway'],
    ['@dwell/processor', 'services/processor'],
    ['@dwell/cli', 'services/cli'],
  ].map(([name, dir]) => [name, `${root}${dir}/src/index.ts`]),
);

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'scripts/**/*.test.ts'],
          exclude: ['**/*.integration.test.ts', '**/node_modules/**', '**/dist/**'],
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['packages/*/src/**/*.integration.test.ts', 'services/*/src/**/*.integration.test.ts'],
          globalSetup: ['test/integration-setup.ts'],
          // chDB allows one data directory per process: each test file runs in its own fork.
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
