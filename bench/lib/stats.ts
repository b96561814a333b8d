// Percentiles of recorded samples.

/** Sorted copy of the samples, ascending. */
export function sorted(samples: readonly number[]): Float64Array {
  return Float64Array.from(samples).sort();
}

/** The q-th quantile (0..1) of ascending samples, interpolated between neighbours; NaN when empty. */
export function quantile(ascending: Float64Array, q: number): number {
  if (ascending.length === 0) return NaN;
  const pos = (ascending.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, ascending.length - 1);
  return ascending[lo] + (ascending[hi] - ascending[lo]) * (pos - lo);
}
