/** The windows of spec §5.3, in their order, for every windowed search (green bits, Gumbel scores, engines' units). */

/**
 * Visits the windows of spec §5.3 on a tape of `numScored` tokens: lengths round(L·2^(j/2)) below the
 * tape's (duplicates skipped), each at starts 0, s, 2s, … with stride s = max(1, floor(ℓ/4)) plus the
 * final window when it is not among them, then the whole tape last. Returns W, the windows visited.
 */
export function forEachWindow(
  numScored: number,
  minWindow: number,
  visit: (start: number, length: number) => void,
): number {
  if (!Number.isInteger(minWindow) || minWindow < 1) {
    throw new RangeError(`minWindow: expected a positive integer, got ${String(minWindow)}`);
  }
  let windows = 0;
  let previous = 0;
  for (let j = 0; ; j++) {
    const length = Math.round(minWindow * 2 ** (j / 2));
    if (length >= numScored) break;
    if (length === previous) continue;
    previous = length;
    const stride = Math.max(1, Math.floor(length / 4));
    let last = -1;
    for (let start = 0; start + length <= numScored; start += stride) {
      visit(start, length);
      windows++;
      last = start;
    }
    if (last !== numScored - length) {
      visit(numScored - length, length);
      windows++;
    }
  }
  visit(0, numScored);
  return windows + 1;
}
