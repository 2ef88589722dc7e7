import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

export class NativeUwsUnavailableError extends Error {
  override readonly name = 'NativeUwsUnavailableError';
}

/**
 * Loads uWebSockets.js and refuses its JavaScript fallback. The package we install silently falls
 * back to a slow `ws`-based implementation when its native binary does not load (wrong glibc, wrong
 * Node ABI) and only prints a warning; a gateway on the fallback would meet none of its targets.
 */
export function loadNativeUws(): Uws {
  const require = createRequire(import.meta.url);
  const warnings: unknown[][] = [];
  const originalWarn = console.warn;
  const originalLog = console.log;
  // The package announces its fallback on the console; capture it for a useful error instead.
  console.warn = (...args: unknown[]) => void warnings.push(args);
  console.log = (...args: unknown[]) => void warnings.push(args);
  let uws: Uws;
  try {
    uws = require('uWebSockets.js') as Uws;
  } finally {
    console.warn = originalWarn;
    console.log = originalLog;
  }
  if (!isNative(uws)) {
    throw new NativeUwsUnavailableError(
      `uWebSockets.js did not load its native binary for Node ${process.versions.node} (ABI ${process.versions.modules}, ` +
        `${process.platform}-${process.arch}) and would run on its slow JavaScript fallback, which dwell refuses. ` +
        `Unset UWS_USE_FALLBACK and use Node 20 on glibc ≥ 2.27. Loader said: ${warnings.map((w) => w.join(' ')).join(' ').trim()}`,
    );
  }
  return uws;
}

function isNative(uws: Uws): boolean {
  return typeof uws.App === 'function' && Function.prototype.toString.call(uws.App).includes('[native code]');
}
