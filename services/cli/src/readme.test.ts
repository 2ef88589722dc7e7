import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '@dwell/runtime';
import { GATEWAY_SETTINGS } from '@dwell/gateway';
import { PROCESSOR_SETTINGS } from '@dwell/processor';

describe('README', () => {
  it('documents every environment variable the services read, as the code declares it', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const table = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme)?.[1];
    expect(table, 'README has a configuration table between the markers').toBeDefined();
    const rows = new Map<string, string>();
    for (const row of [...describeConfig(GATEWAY_SETTINGS), ...describeConfig(PROCESSOR_SETTINGS)]) {
      rows.set(row.split('|')[1] ?? row, row);
    }
    expect(table).toBe(['| variable | default | meaning |', '|---|---|---|', ...rows.values()].join('\n'));
  });
});
