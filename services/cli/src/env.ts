/**
 * Defaults `dwell up` applies for the embedded, single-machine setup. Anything set in the
 * environment wins.
 */
export const DEV_SITE_ID = 'demo';
export const DEV_SITE_SECRET = 'dwell-dev-secret-change-me';
export const DEV_SITES_JSON = JSON.stringify({ [DEV_SITE_ID]: { secret: DEV_SITE_SECRET, origins: ['*'] } });

export function withDevDefaults(
  source: NodeJS.ProcessEnv,
  defaults: Readonly<Record<string, string>>,
): Record<string, string | undefined> {
  const merged: Record<string, string | undefined> = { ...source };
  for (const [key, value] of Object.entries(defaults)) {
    if (merged[key] === undefined || merged[key] === '') merged[key] = value;
  }
  return merged;
}
