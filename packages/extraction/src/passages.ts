/**
 * Where the signal sits: the documents and the passages of the scored tape with the strongest
 * evidence. Both are searches, so each reported p-value comes with a Bonferroni bound for the
 * search (field notes §3: a raw best-window p-value is wrong).
 */
import { bonferroniLog10, log10BinomialSf } from '@tracemark/core';

/** A window of the scored tape: `length` scored tokens from `tapeStart`, `numGreen` of them green. */
export interface TapeWindow {
  readonly tapeStart: number;
  readonly length: number;
  readonly numGreen: number;
  /** The window's own exact p-value. */
  readonly log10P: number;
  /** min(1, W·p) for the W windows searched. */
  readonly log10PCorrected: number;
}

/** Window lengths of spec §5.3: round(L·2^(j/2)) while shorter than the tape, without repeats. */
function windowLengths(total: number, minWindow: number): number[] {
  const lengths: number[] = [];
  for (let j = 0; ; j++) {
    const length = Math.round(minWindow * 2 ** (j / 2));
    if (length >= total) break;
    if (lengths.length > 0 && lengths[lengths.length - 1] === length) continue;
    lengths.push(length);
  }
  return lengths;
}

/**
 * The windows of one length, in the spec's order: starts 0, s, 2s, … (stride s), then the final
 * window when the strides miss it. Counted and visited without listing them.
 */
function windowStride(length: number): number {
  return Math.max(1, Math.floor(length / 4));
}

/** How many windows of this length the spec's order visits. */
function windowCount(total: number, length: number): number {
  const stride = windowStride(length);
  const strided = Math.floor((total - length) / stride) + 1;
  return (strided - 1) * stride === total - length ? strided : strided + 1;
}

/**
 * The best windows of the tape (the spec §5.3 family: the same lengths, strides and order, the whole
 * tape last), up to `count` of them, none overlapping another. The first one is exactly the spec's
 * best window. Every window is corrected for all the windows of the family.
 */
export function bestWindows(
  bits: Uint8Array,
  gamma: number,
  minWindow: number,
  count: number,
): {
  windowsSearched: number;
  windows: TapeWindow[];
} {
  if (!Number.isInteger(minWindow) || minWindow < 1) {
    throw new RangeError(`minWindow: expected a positive integer, got ${String(minWindow)}`);
  }
  const total = bits.length;
  const prefix = new Uint32Array(total + 1);
  for (let i = 0; i < total; i++) prefix[i + 1] = prefix[i]! + bits[i]!;
  const family = windowLengths(total, minWindow);
  const windowsSearched = family.reduce((sum, length) => sum + windowCount(total, length), 0) + 1;
  const chosen: TapeWindow[] = [];
  // The chosen windows as [start, end) pairs, for the overlap test of the searches after the first.
  const taken: number[] = [];
  while (chosen.length < count) {
    let best: { start: number; length: number; green: number; log10P: number } | null = null;
    for (const length of family) {
      // For one length the p-value falls as the green count rises: the first window with the most green is best.
      const bestStart = bestOfLength(prefix, total, length, taken);
      if (bestStart < 0) continue;
      const bestGreen = prefix[bestStart + length]! - prefix[bestStart]!;
      const log10P = log10BinomialSf(bestGreen, length, gamma);
      if (best === null || log10P < best.log10P)
        best = { start: bestStart, length, green: bestGreen, log10P };
    }
    if (chosen.length === 0) {
      const log10P = log10BinomialSf(prefix[total]!, total, gamma);
      if (best === null || log10P < best.log10P)
        best = { start: 0, length: total, green: prefix[total]!, log10P };
    }
    if (best === null || best.length === 0) break;
    taken.push(best.start, best.start + best.length);
    chosen.push({
      tapeStart: best.start,
      length: best.length,
      numGreen: best.green,
      log10P: best.log10P,
      log10PCorrected: bonferroniLog10(best.log10P, windowsSearched),
    });
    if (best.start === 0 && best.length === total) break;
  }
  return { windowsSearched, windows: chosen };
}

/**
 * The first window of `length` with the most green tokens among those that overlap no window in
 * `taken` ([start, end) pairs), visiting the spec's starts 0, s, 2s, … and then the final window when
 * the strides miss it; −1 when every window overlaps. (A function of its own, without closures: it
 * runs once or a few times a scan, over up to a few million windows, and V8 optimizes it in the loop.)
 */
function bestOfLength(prefix: Uint32Array, total: number, length: number, taken: readonly number[]): number {
  const stride = windowStride(length);
  let bestStart = -1;
  let bestGreen = -1;
  let last = -1;
  for (let start = 0; start + length <= total; start += stride) {
    last = start;
    const green = prefix[start + length]! - prefix[start]!;
    if (green > bestGreen && !overlapsTaken(start, start + length, taken)) {
      bestGreen = green;
      bestStart = start;
    }
  }
  const start = total - length;
  if (last !== start) {
    const green = prefix[total]! - prefix[start]!;
    if (green > bestGreen && !overlapsTaken(start, total, taken)) bestStart = start;
  }
  return bestStart;
}

function overlapsTaken(start: number, end: number, taken: readonly number[]): boolean {
  for (let i = 0; i < taken.length; i += 2) if (start < taken[i + 1]! && taken[i]! < end) return true;
  return false;
}

/** Per-document evidence: scored and green counts, and the exact p-value of each document. */
export interface DocumentEvidence {
  readonly document: number;
  readonly numScored: number;
  readonly numGreen: number;
  readonly log10P: number;
  /** min(1, D·p) for the D documents with at least one scored token. */
  readonly log10PCorrected: number;
}

/** The `count` documents with the smallest p-values (ties: the earlier document). */
export function topDocuments(
  documentOf: Uint32Array,
  bits: Uint8Array,
  numDocuments: number,
  gamma: number,
  count: number,
): DocumentEvidence[] {
  const scored = new Uint32Array(numDocuments);
  const green = new Uint32Array(numDocuments);
  for (let i = 0; i < bits.length; i++) {
    const document = documentOf[i]!;
    scored[document]!++;
    green[document]! += bits[i]!;
  }
  const evidence: { document: number; log10P: number }[] = [];
  for (let document = 0; document < numDocuments; document++) {
    if (scored[document]! > 0) {
      evidence.push({ document, log10P: log10BinomialSf(green[document]!, scored[document]!, gamma) });
    }
  }
  evidence.sort((a, b) => a.log10P - b.log10P || a.document - b.document);
  return evidence.slice(0, count).map(({ document, log10P }) => ({
    document,
    numScored: scored[document]!,
    numGreen: green[document]!,
    log10P,
    log10PCorrected: bonferroniLog10(log10P, evidence.length),
  }));
}
