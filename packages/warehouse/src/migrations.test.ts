import { describe, expect, it } from 'vitest';
import { MIGRATIONS, migrationChecksum } from './migrations.js';

/**
 * Every database records the checksum of each migration it applied, and refuses to start when a
 * recorded one changed: a released migration's text can never change. These are the released
 * ones; a new migration joins the list when it is released.
 */
const RELEASED: ReadonlyArray<readonly [version: number, name: string, checksum: string]> = [
  [1, 'page_events', 'e11bc1143daf9ef9'],
  [2, 'exposure', '483f41fa629d9498'],
  [3, 'audit_shadow', '39e216447b8eed55'],
  [4, 'snapshot_codec', '0706543f515c8331'],
  [5, 'minutes_by_day', 'f95a22ebf54f4c7d'],
  [6, 'billing_views', 'c3767b209d631c5f'],
  [7, 'impression_retractions', '4464f337aa87c97f'],
  [8, 'snapshot_chains', 'ebe555f19500d176'],
  [9, 'snapshot_chain_partitions', '2b991094a6c4f740'],
];

describe('migrations', () => {
  it.each(RELEASED)('migration %i (%s) keeps the checksum databases recorded for it', (version, name, checksum) => {
    const migration = MIGRATIONS.find((m) => m.version === version);
    expect(migration?.name).toBe(name);
    expect(migrationChecksum(migration as (typeof MIGRATIONS)[number])).toBe(checksum);
  });

  it('numbers migrations 1, 2, 3… without gaps or repeats', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  });
});
