// Small arithmetic every benchmark script uses.

/** The middle value (the upper one of an even count); the input is not reordered. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}
