/** Corrections for testing many documents at once, in log10 so that p-values far into the tail keep their order. */

export interface CorrectedTest {
  /** Rejected (a discovery) at false discovery rate α. */
  readonly rejected: boolean;
  /** The Benjamini–Hochberg adjusted p-value (q-value), log10; rejected exactly when it is ≤ log10 α. */
  readonly log10PAdjusted: number;
}

/**
 * The Benjamini–Hochberg step-up procedure, which controls the false discovery rate at α for
 * independent (or positively dependent) tests (Benjamini & Hochberg 1995,
 * https://doi.org/10.1111/j.2517-6161.1995.tb02031.x). With the N p-values sorted ascending,
 * p(1) ≤ … ≤ p(N), k is the largest i with p(i) ≤ α·i/N, and the k smallest are rejected, including
 * any among them above their own threshold. The adjusted p-value of p(i) is
 * min over j ≥ i of min(1, p(j)·N/j). Ties keep input order. Results are in input order.
 */
export function benjaminiHochberg(log10PValues: readonly number[], alpha: number): CorrectedTest[] {
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be strictly between 0 and 1, got ${alpha}`);
  log10PValues.forEach((value, i) => {
    if (!(value <= 0)) throw new RangeError(`log10PValues[${i}] must be a log10 p-value (≤ 0), got ${value}`);
  });
  const count = log10PValues.length;
  const order = log10PValues.map((_, i) => i).sort((a, b) => log10PValues[a]! - log10PValues[b]! || a - b);
  let rejectedCount = 0;
  for (let rank = count; rank >= 1; rank--) {
    if (log10PValues[order[rank - 1]!]! <= Math.log10((alpha * rank) / count)) {
      rejectedCount = rank;
      break;
    }
  }
  const results = new Array<CorrectedTest>(count);
  let running = 0;
  for (let rank = count; rank >= 1; rank--) {
    const index = order[rank - 1]!;
    running = Math.min(running, log10PValues[index]! + Math.log10(count / rank));
    results[index] = { rejected: rank <= rejectedCount, log10PAdjusted: running };
  }
  return results;
}
