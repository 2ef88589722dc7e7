#!/usr/bin/env node
// The dependency rule, enforced: each unit imports only what its row in RULES below allows.
// One adapter package per external system; the exposure core imports no infrastructure at all.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** unit folder → allowed bare imports (workspace packages and npm packages); node:* per flag. */
const RULES = {
  'packages/runtime': { node: true, allow: [] },
  'packages/protocol': { node: true, allow: ['avsc'] },
  'packages/exposure': { node: false, allow: ['@dwell/protocol'] },
  'packages/kafka': { node: true, allow: ['kafkajs', '@dwell/runtime'] },
  'packages/warehouse': { node: true, allow: ['@clickhouse/client', 'chdb', 'chdb/connection', '@dwell/runtime'] },
  'packages/sdk': { node: false, allow: [] },
  'packages/commands': { node: true, allow: ['@dwell/kafka', '@dwell/protocol', '@dwell/runtime'] },
  'services/gateway': {
    node: true,
    allow: ['@dwell/protocol', '@dwell/kafka', '@dwell/runtime', '@dwell/commands', 'uWebSockets.js'],
  },
  'services/processor': {
    node: true,
    allow: ['@dwell/exposure', '@dwell/kafka', '@dwell/warehouse', '@dwell/protocol', '@dwell/runtime'],
  },
  'services/cli': { node: true, allow: ['*'] },
};

// Test files may also use the test tooling and the shared test support.
const TEST_ALLOW = ['vitest', 'fast-check', 'ws', 'playwright-core', '@testcontainers/kafka', '@testcontainers/clickhouse'];

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/g;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (name.endsWith('.ts')) yield path;
  }
}

const problems = [];
for (const [unit, rule] of Object.entries(RULES)) {
  let src;
  try {
    src = join(root, unit, 'src');
    statSync(src);
  } catch {
    continue;
  }
  for (const file of files(src)) {
    // Tests and their support code may use the test tooling (they never reach dist/).
    const isTest = file.endsWith('.test.ts') || file.includes('/test-support/');
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[1] ?? match[2] ?? match[3];
      if (spec === undefined || spec.startsWith('.')) continue;
      if (spec.startsWith('node:')) {
        if (!rule.node && !isTest) problems.push(`${relative(root, file)}: ${unit} may not import ${spec} (it must stay free of Node APIs)`);
        continue;
      }
      if (rule.allow.includes('*') || rule.allow.includes(spec)) continue;
      if (isTest && (TEST_ALLOW.includes(spec) || rule.allow.includes(spec))) continue;
      problems.push(`${relative(root, file)}: ${unit} may not import ${spec} (allowed: ${rule.allow.join(', ') || 'nothing'})`);
    }
  }
}

if (problems.length > 0) {
  console.error(`dependency rule violated (scripts/check-boundaries.mjs, RULES):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('dependency rule: ok');
