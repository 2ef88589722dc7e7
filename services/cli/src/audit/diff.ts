/**
 * Field-by-field comparison of recomputed rows with billed rows. Pure: the same inputs give the
 * same differences in the same order (sorted by key).
 */
import { canonicalValue, compareCodeUnits } from './canonical.js';

export const DIFFERENCE_STATUSES = {
  changed: 'both have the row; some fields differ',
  missing_from_billing: 'the log gives the row; ClickHouse does not have it',
  not_in_log: 'ClickHouse bills the row; the log does not give it',
} as const;
export type DifferenceStatus = keyof typeof DIFFERENCE_STATUSES;

export type RowKind = 'impression' | 'minute' | 'ad_day';

export interface FieldDifference {
  readonly field: string;
  readonly replay: unknown;
  readonly billed: unknown;
}

export interface Difference {
  readonly kind: RowKind;
  readonly status: DifferenceStatus;
  /** The row's key fields, e.g. `{site_id, page_view_id, impression_id}`. */
  readonly key: Readonly<Record<string, unknown>>;
  /** `changed` only. */
  readonly fields?: readonly FieldDifference[];
  /** The recomputed row (absent for `not_in_log`). */
  readonly replay?: unknown;
  /** The billed row (absent for `missing_from_billing`). */
  readonly billed?: unknown;
}

export interface RowComparison<T> {
  readonly kind: RowKind;
  readonly keyFields: readonly string[];
  readonly fields: readonly string[];
  readonly keyOf: (row: T) => string;
}

/** Compares two sets of rows keyed by `keyOf`; rows are equal when every field's canonical value is. */
export function diffRows<T extends object>(spec: RowComparison<T>, replay: readonly T[], billed: readonly T[]): Difference[] {
  const mine = new Map(replay.map((row) => [spec.keyOf(row), row]));
  const theirs = new Map(billed.map((row) => [spec.keyOf(row), row]));
  const keys = [...new Set([...mine.keys(), ...theirs.keys()])].sort(compareCodeUnits);
  const out: Difference[] = [];
  const keyOf = (row: T): Record<string, unknown> => Object.fromEntries(spec.keyFields.map((f) => [f, (row as Record<string, unknown>)[f]]));
  for (const key of keys) {
    const a = mine.get(key);
    const b = theirs.get(key);
    if (a !== undefined && b !== undefined) {
      const fields = fieldDifferences(spec.fields, a, b);
      if (fields.length > 0) out.push({ kind: spec.kind, status: 'changed', key: keyOf(a), fields, replay: a, billed: b });
    } else if (a !== undefined) {
      out.push({ kind: spec.kind, status: 'missing_from_billing', key: keyOf(a), replay: a });
    } else if (b !== undefined) {
      out.push({ kind: spec.kind, status: 'not_in_log', key: keyOf(b), billed: b });
    }
  }
  return out;
}

export function fieldDifferences(fields: readonly string[], replay: object, billed: object): FieldDifference[] {
  const out: FieldDifference[] = [];
  for (const field of fields) {
    const a = canonicalValue(replay, field);
    const b = canonicalValue(billed, field);
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ field, replay: a, billed: b });
  }
  return out;
}
