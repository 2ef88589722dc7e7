/**
 * Environment configuration, parsed once at start against a declared schema. Every invalid key is
 * reported at once, by name, with the bad value and what was expected, so a misconfigured service
 * fails fast with one readable message. Adapters receive the parsed objects; they never read the
 * environment themselves.
 */

export interface Setting<T> {
  /** What the setting means, shown in `dwell config` and the README table. */
  readonly doc: string;
  /** The default as text (`undefined`: required or optional-without-default). */
  readonly defaultText: string | undefined;
  parse(raw: string | undefined): T;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

class InvalidValue extends Error {}

function setting<T>(doc: string, defaultText: string | undefined, parse: (raw: string | undefined) => T): Setting<T> {
  return { doc, defaultText, parse };
}

export const env = {
  /** `shownDefault` documents a computed default (e.g. `<hostname>-<pid>`). */
  string(doc: string, fallback: string, shownDefault?: string): Setting<string> {
    return setting(doc, shownDefault ?? (fallback === '' ? '(empty)' : fallback), (raw) =>
      raw === undefined || raw === '' ? fallback : raw,
    );
  },
  optionalString(doc: string): Setting<string | undefined> {
    return setting(doc, undefined, (raw) => (raw === undefined || raw === '' ? undefined : raw));
  },
  int(doc: string, fallback: number, bounds: { min?: number; max?: number } = {}): Setting<number> {
    return setting(doc, String(fallback), (raw) => {
      if (raw === undefined || raw === '') return fallback;
      const value = Number(raw);
      const min = bounds.min ?? Number.MIN_SAFE_INTEGER;
      const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
        throw new InvalidValue(`expected an integer in [${min}, ${max}]`);
      }
      return value;
    });
  },
  boolean(doc: string, fallback: boolean): Setting<boolean> {
    return setting(doc, String(fallback), (raw) => {
      if (raw === undefined || raw === '') return fallback;
      if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
      if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
      throw new InvalidValue('expected true or false');
    });
  },
  oneOf<const T extends string>(doc: string, values: readonly T[], fallback: T): Setting<T> {
    return setting(doc, fallback, (raw) => {
      if (raw === undefined || raw === '') return fallback;
      if (!(values as readonly string[]).includes(raw)) throw new InvalidValue(`expected one of ${values.join(', ')}`);
      return raw as T;
    });
  },
  list(doc: string, fallback: readonly string[] | undefined): Setting<readonly string[] | undefined> {
    return setting(doc, fallback?.join(','), (raw) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    });
  },
  json<T>(doc: string, fallbackText: string | undefined, check: (value: unknown) => T): Setting<T | undefined> {
    return setting(doc, fallbackText, (raw) => {
      const text = raw === undefined || raw === '' ? fallbackText : raw;
      if (text === undefined) return undefined;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new InvalidValue('expected JSON');
      }
      try {
        return check(value);
      } catch (error) {
        throw new InvalidValue(error instanceof Error ? error.message : String(error));
      }
    });
  },
} as const;

export type ConfigSchema = Readonly<Record<string, Setting<unknown>>>;
export type ConfigOf<S extends ConfigSchema> = { readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** Parses `source` (normally `process.env`) against the schema; throws one ConfigError naming every bad key. */
export function parseConfig<S extends ConfigSchema>(
  schema: S,
  source: Readonly<Record<string, string | undefined>>,
): ConfigOf<S> {
  const problems: string[] = [];
  const result: Record<string, unknown> = {};
  for (const [key, definition] of Object.entries(schema)) {
    const raw = source[key];
    try {
      result[key] = definition.parse(raw);
    } catch (error) {
      if (!(error instanceof InvalidValue)) throw error;
      problems.push(`${key}=${JSON.stringify(raw)}: ${error.message} (${definition.doc})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result as ConfigOf<S>;
}

/** Markdown table rows of a schema: `| KEY | default | meaning |`. */
export function describeConfig(schema: ConfigSchema): string[] {
  return Object.entries(schema).map(
    ([key, definition]) => `| \`${key}\` | ${definition.defaultText === undefined ? '—' : `\`${definition.defaultText}\``} | ${definition.doc} |`,
  );
}
