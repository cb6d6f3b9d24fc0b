/**
 * Summary statistics for the experiments: ROC-AUC, exact binomial intervals, and means, medians and
 * standard deviations from simple-statistics (a chosen dependency), here only given NaN for no values.
 */
import { logBinomialCdf, logBinomialSf } from '@tracemark/core';
import * as ss from 'simple-statistics';

/**
 * ROC-AUC of a score (higher means "watermarked") as the Mann-Whitney statistic: the probability that
 * a random positive outscores a random negative, ties counting one half.
 */
export function rocAuc(positives: readonly number[], negatives: readonly number[]): number {
  if (positives.length === 0 || negatives.length === 0) return Number.NaN;
  const all = [
    ...positives.map((score) => ({ score, positive: true })),
    ...negatives.map((score) => ({ score, positive: false })),
  ].sort((a, b) => a.score - b.score);
  let rankSum = 0;
  for (let start = 0; start < all.length; ) {
    let end = start;
    while (end + 1 < all.length && all[end + 1]!.score === all[start]!.score) end++;
    const midrank = (start + end + 2) / 2;
    for (let i = start; i <= end; i++) if (all[i]!.positive) rankSum += midrank;
    start = end + 1;
  }
  const p = positives.length;
  return (rankSum - (p * (p + 1)) / 2) / (p * negatives.length);
}

/** Share of values at or below a threshold. */
export function shareAtOrBelow(values: ArrayLike<number>, threshold: number): number {
  if (values.length === 0) return Number.NaN;
  let count = 0;
  for (let i = 0; i < values.length; i++) if (values[i]! <= threshold) count++;
  return count / values.length;
}

function bisect(increasing: (p: number) => number, target: number): number {
  // Works on log p so that rates down to 1e-12 keep full relative precision.
  let lo = Math.log(1e-300);
  let hi = 0;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (increasing(Math.exp(mid)) < target) lo = mid;
    else hi = mid;
  }
  return Math.exp((lo + hi) / 2);
}

/** Exact (Clopper-Pearson) two-sided interval for a binomial rate k/n. */
export function clopperPearson(k: number, n: number, confidence = 0.95): [number, number] {
  const tail = Math.log((1 - confidence) / 2);
  const lower = k === 0 ? 0 : bisect((p) => logBinomialSf(k, n, p), tail);
  // P[X ≤ k] decreases in p: bisect its negation.
  const upper = k === n ? 1 : bisect((p) => -logBinomialCdf(k, n, p), -tail);
  return [lower, upper];
}

/** Smallest c with P[Bin(n, p) ≤ c] ≥ q: the q-quantile of the count. */
export function binomialQuantile(n: number, p: number, q: number): number {
  const target = Math.log(q);
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (logBinomialCdf(mid, n, p) >= target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Arithmetic mean (simple-statistics' compensated sum); NaN for no values, where simple-statistics throws. */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : ss.mean(values);
}

/** Median (the mean of the two middle values for an even count); NaN for no values. */
export function median(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : ss.median(values);
}

/** Mean with a normal-approximation 95% interval (half-width 1.96 sample standard errors). */
export function meanWithInterval(values: readonly number[]): { mean: number; halfWidth: number } {
  const m = mean(values);
  if (values.length < 2) return { mean: m, halfWidth: Number.NaN };
  const sd = ss.sampleStandardDeviation(values);
  return { mean: m, halfWidth: (1.959963984540054 * sd) / Math.sqrt(values.length) };
}
