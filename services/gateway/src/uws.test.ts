import { describe, expect, it } from 'vitest';
import { NativeUwsUnavailableError, loadNativeUws } from './uws.js';

// Runs in its own worker: no other test has loaded uWebSockets.js in this module registry.
describe('loadNativeUws', () => {
  it('refuses the JavaScript fallback of uWebSockets.js', () => {
    process.env['UWS_USE_FALLBACK'] = '1';
    try {
      expect(() => loadNativeUws()).toThrow(NativeUwsUnavailableError);
      expect(() => loadNativeUws()).toThrow(/slow JavaScript fallback, which dwell refuses/);
    } finally {
      delete process.env['UWS_USE_FALLBACK'];
    }
  });
});
