#!/usr/bin/env node
// The `dwell` command. The CLI is TypeScript compiled to dist/ by `npm run build` (which
// `npm start` and `npm test` run first); this shim exists so the bin link is valid on a fresh
// install, before anything is built.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('dwell: not built yet; run `npm run build` in the repository first\n');
  process.exit(1);
}
await import(main.href);
