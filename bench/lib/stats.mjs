// Small statistics helpers for benchmarks: percentiles, medians, summaries.

/** The p-th percentile (0..100) of `values` by nearest rank; NaN when empty. Does not mutate. */
export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = isSorted(values) ? values : Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Several percentiles at once (sorts once). */
export function percentiles(values, ps = [50, 90, 99, 99.9, 100]) {
  const sorted = Float64Array.from(values).sort();
  const out = {};
  for (const p of ps) out[`p${p}`] = percentile(sorted, p);
  return out;
}

/** The median; the mean of the two middle values for an even count; NaN when empty. Ignores NaN/null. */
export function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v)).sort((a, b) => a - b);
  if (xs.length === 0) return Number.NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

export function mean(values) {
  const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v));
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function min(values) {
  const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v));
  return xs.length === 0 ? Number.NaN : Math.min(...xs);
}

export function max(values) {
  const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v));
  return xs.length === 0 ? Number.NaN : Math.max(...xs);
}

/** Median of each numeric leaf across several objects of the same shape (per-round results → medians). */
export function medianOf(objects) {
  const first = objects.find((o) => o !== undefined && o !== null);
  if (first === undefined) return undefined;
  if (typeof first === 'number') return median(objects);
  if (typeof first !== 'object' || Array.isArray(first)) return first;
  const out = {};
  for (const key of Object.keys(first)) {
    const leaf = objects.map((o) => (o == null ? undefined : o[key]));
    const value = medianOf(leaf);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function isSorted(values) {
  if (!(values instanceof Float64Array)) return false;
  for (let i = 1; i < values.length; i++) if (values[i - 1] > values[i]) return false;
  return true;
}

/**
 * Percentiles of values that each stand for `weight` samples (`[value, weight]` pairs), by nearest
 * rank over the total weight: e.g. per-event percentiles from per-batch values.
 */
export function weightedPercentiles(pairs, ps = [50, 90, 99, 100]) {
  const sorted = [...pairs].filter(([, w]) => w > 0).sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((sum, [, w]) => sum + w, 0);
  const out = {};
  for (const p of ps) {
    if (total === 0) {
      out[`p${p}`] = Number.NaN;
      continue;
    }
    const rank = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (const [value, weight] of sorted) {
      seen += weight;
      if (seen >= rank) {
        out[`p${p}`] = value;
        break;
      }
    }
  }
  return out;
}

/**
 * The least-squares slope of y over x for `[x, y, weight]` triples, each standing for `weight`
 * samples; NaN with fewer than two distinct x.
 */
export function weightedSlope(triples) {
  let w = 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y, weight] of triples) {
    w += weight;
    sx += weight * x;
    sy += weight * y;
  }
  if (w === 0) return Number.NaN;
  const mx = sx / w;
  const my = sy / w;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y, weight] of triples) {
    sxx += weight * (x - mx) * (x - mx);
    sxy += weight * (x - mx) * (y - my);
  }
  return sxx === 0 ? Number.NaN : sxy / sxx;
}
