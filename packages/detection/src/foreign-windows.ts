/**
 * Windowed detection (spec §5.3) for engines' keys: the same windows, in the same order, over the
 * tape of a document's scored units (a family's `strict` deduplication), each window's sum tested
 * with the family's exact tail, the best corrected by Bonferroni over the windows searched.
 */
import { bonferroniLog10, DEFAULT_MIN_WINDOW, forEachWindow, type WindowResult } from '@tracemark/core';
import type { ForeignUnits } from './foreign.ts';

/** Log10 P(S ≥ score) for `count` units under the null. */
export type UnitTail = (score: number, count: number) => number;

/**
 * Searches the windows of spec §5.3 over the units' values. `numGreen` is the best window's sum
 * rounded when `integerScores` (green counts), else 0 with the sum in `score`.
 */
export function foreignWindowScan(
  units: ForeignUnits,
  tail: UnitTail,
  integerScores: boolean,
  minWindow: number = DEFAULT_MIN_WINDOW,
): WindowResult {
  const values = units.values;
  const T = values.length;
  const prefix = new Float64Array(T + 1);
  for (let i = 0; i < T; i++) prefix[i + 1] = prefix[i]! + values[i]!;
  let best = { start: 0, length: T, score: prefix[T]!, log10P: Number.POSITIVE_INFINITY };
  const windows = forEachWindow(T, minWindow, (start, length) => {
    const score = Math.max(0, prefix[start + length]! - prefix[start]!);
    const log10P = length === 0 ? 0 : tail(integerScores ? Math.round(score) : score, length);
    if (log10P < best.log10P) best = { start, length, score, log10P };
  });
  const positions = units.positions;
  return {
    startToken: best.length === 0 ? 0 : positions[best.start]!,
    endToken: best.length === 0 ? 0 : positions[best.start + best.length - 1]!,
    tapeStart: best.start,
    length: best.length,
    numGreen: integerScores ? Math.round(best.score) : 0,
    score: best.score,
    log10P: best.log10P,
    windowsSearched: windows,
    log10PCorrected: bonferroniLog10(best.log10P, windows),
  };
}
