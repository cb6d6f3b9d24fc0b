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
  const overlaps = (start: number, length: number): boolean =>
    chosen.some((c) => start < c.tapeStart + c.length && c.tapeStart < start + length);
  while (chosen.length < count) {
    let best: { start: number; length: number; green: number; log10P: number } | null = null;
    for (const length of family) {
      // For one length the p-value falls as the green count rises: the first window with the most green is best.
      let bestStart = -1;
      let bestGreen = -1;
      const stride = windowStride(length);
      const visit = (start: number): void => {
        const green = prefix[start + length]! - prefix[start]!;
        if (green > bestGreen && !overlaps(start, length)) {
          bestGreen = green;
          bestStart = start;
        }
      };
      let last = -1;
      for (let start = 0; start + length <= total; start += stride) {
        visit(start);
        last = start;
      }
      if (last !== total - length) visit(total - length);
      if (bestStart < 0) continue;
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
