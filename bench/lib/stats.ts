// Summary statistics for benchmark samples: nearest-rank percentiles and medians.

/** The p-th percentile (0 < p ≤ 100) of `samples` by the nearest-rank method; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

/** The median of `samples` (mean of the two middle values for an even count); NaN when there are none. */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}

/** p50 and p99 of latency samples in milliseconds, with the sample count. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
}

/** Summarizes latency samples (milliseconds) as p50/p99. */
export function summarizeLatency(samplesMs: readonly number[]): LatencySummary {
  return { count: samplesMs.length, p50Ms: percentile(samplesMs, 50), p99Ms: percentile(samplesMs, 99) };
}
