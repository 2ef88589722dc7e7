#!/usr/bin/env node
// Rewrites the tables in README.md and docs/protocol.md that are generated from the code (the
// configuration settings and the rejection reasons), after `npm run build`. Unit tests fail when
// a table and the code disagree; this is how to bring them back in step.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { describeConfig } = await import(`${root}packages/runtime/dist/index.js`);
const { GATEWAY_SETTINGS } = await import(`${root}services/gateway/dist/index.js`);
const { PROCESSOR_SETTINGS } = await import(`${root}services/processor/dist/index.js`);
const { RejectionReason } = await import(`${root}packages/protocol/dist/index.js`);

export function configTable() {
  const rows = new Map();
  for (const row of [...describeConfig(GATEWAY_SETTINGS), ...describeConfig(PROCESSOR_SETTINGS)]) rows.set(row.split('|')[1], row);
  return ['| variable | default | meaning |', '|---|---|---|', ...rows.values()].join('\n');
}

export function rejectionTable() {
  return [
    '| reason | scope | retriable | meaning |',
    '|---|---|---|---|',
    ...Object.entries(RejectionReason).map(
      ([code, info]) => `| \`${code}\` | ${info.scope} | ${info.retriable ? 'yes' : 'no'} | ${info.description} |`,
    ),
  ].join('\n');
}

function replace(file, marker, table) {
  const path = `${root}${file}`;
  const text = readFileSync(path, 'utf8');
  const pattern = new RegExp(`(<!-- ${marker}:start -->\\n)[\\s\\S]*?(\\n<!-- ${marker}:end -->)`);
  if (!pattern.test(text)) throw new Error(`${file} has no ${marker} markers`);
  writeFileSync(path, text.replace(pattern, (_m, start, end) => `${start}${table}${end}`));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  replace('README.md', 'config-table', configTable());
  replace('docs/protocol.md', 'rejection-table', rejectionTable());
  console.log('README.md and docs/protocol.md tables updated');
}
