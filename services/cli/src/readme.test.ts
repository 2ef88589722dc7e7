import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '@dwell/runtime';
import { GATEWAY_SETTINGS } from '@dwell/gateway';
import { PROCESSOR_SETTINGS } from '@dwell/processor';
import { RejectionReason } from '@dwell/protocol';

// The generated tables in the docs must say what the code does. `node scripts/docs-tables.mjs`
// (after `npm run build`) rewrites them.
const read = (file: string): string => readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');

function between(file: string, marker: string): string | undefined {
  const text = read(file);
  return new RegExp(`<!-- ${marker}:start -->\\n([\\s\\S]*?)\\n<!-- ${marker}:end -->`).exec(text)?.[1];
}

describe('generated documentation tables', () => {
  it('README lists every environment variable the services read, as the code declares it', () => {
    const rows = new Map<string, string>();
    for (const row of [...describeConfig(GATEWAY_SETTINGS), ...describeConfig(PROCESSOR_SETTINGS)]) {
      rows.set(row.split('|')[1] ?? row, row);
    }
    expect(between('README.md', 'config-table')).toBe(['| variable | default | meaning |', '|---|---|---|', ...rows.values()].join('\n'));
  });

  it('docs/protocol.md lists every rejection reason as the code declares it', () => {
    const rows = Object.entries(RejectionReason).map(
      ([code, info]) => `| \`${code}\` | ${info.scope} | ${info.retriable ? 'yes' : 'no'} | ${info.description} |`,
    );
    expect(between('docs/protocol.md', 'rejection-table')).toBe(
      ['| reason | scope | retriable | meaning |', '|---|---|---|---|', ...rows].join('\n'),
    );
  });
});

describe('deployment files', () => {
  it('.env.example sets every variable docker-compose.yml reads, with the same default', () => {
    const code = (text: string): string[] => text.split('\n').filter((line) => !/^\s*#/.test(line));
    const compose = new Map<string, string>();
    for (const line of code(read('docker-compose.yml')))
      for (const m of line.matchAll(/\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}/g)) compose.set(m[1] ?? '', m[2] ?? '');
    const example = new Map(
      code(read('.env.example'))
        .map((line) => /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1] ?? '', m[2] ?? ''] as const),
    );
    expect(compose.size).toBeGreaterThan(10);
    expect(Object.fromEntries([...compose].filter(([name, value]) => example.get(name) !== value))).toEqual({});
  });

  it('the Prometheus alert rules name only metrics the services export', () => {
    const rules = read('infra/compose/prometheus/alerts.yml');
    const named = new Set([...rules.matchAll(/\b(dwell_[a-z_]+?)(?:_bucket|_sum|_count)?\b/g)].map((m) => m[1] ?? ''));
    const sources = ['services/gateway/src/metrics.ts', 'services/gateway/src/gateway.ts', 'services/processor/src/exposure-consumer.ts', 'services/processor/src/processor.ts']
      .map(read)
      .join('\n');
    expect(named.size).toBeGreaterThan(5);
    expect([...named].filter((metric) => !sources.includes(`'${metric}'`))).toEqual([]);
  });
});
