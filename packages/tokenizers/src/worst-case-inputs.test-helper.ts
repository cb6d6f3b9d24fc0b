// Shared by the worst-case tests and bench/worst-case.bench.ts (excluded from the build): adversarial
// inputs and timing helpers.
import type { Tokenizer } from './tokenizer.js';

export const ONE_MIB: number = 1 << 20;

/** mulberry32: a small seeded generator, so that the random inputs are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomText(length: number, seed: number, first: number, count: number): string {
  const random = seededRandom(seed);
  const codes = new Uint16Array(length);
  for (let i = 0; i < length; i++) codes[i] = first + Math.floor(random() * count);
  const parts: string[] = [];
  for (let start = 0; start < length; start += 8192) {
    parts.push(String.fromCharCode(...codes.subarray(start, start + 8192)));
  }
  return parts.join('');
}

/**
 * Inputs of n = `bytes` bytes of UTF-8 (once normalized; the random characters take about 1.5 n) that make
 * one very long pre-tokenized piece, or very many short ones: what a client could send to freeze a
 * tokenizer whose merge is quadratic. Names are keyed by n.
 */
export const WORST_INPUTS: Readonly<Record<string, (bytes: number) => string>> = Object.freeze({
  '"a" × n': (bytes: number) => 'a'.repeat(bytes),
  'U+1F600 × n/4': (bytes: number) => '\u{1f600}'.repeat(bytes / 4),
  'NUL × n': (bytes: number) => '\u0000'.repeat(bytes),
  'space × n': (bytes: number) => ' '.repeat(bytes),
  'newline × n': (bytes: number) => '\n'.repeat(bytes),
  'e U+0301 × n/2': (bytes: number) => 'e\u0301'.repeat(bytes / 2),
  'n random letters a–z (one piece)': (bytes: number) => randomText(bytes, 1, 0x61, 26),
  'n random characters U+0000–U+00FF': (bytes: number) => randomText(bytes, 2, 0, 256),
});

/** The fewest milliseconds of `runs` encodings of `text` (the least disturbed by other processes). */
export function millisecondsToEncode(
  tokenizer: Tokenizer,
  text: string,
  runs: number,
): { milliseconds: number; ids: Uint32Array } {
  let milliseconds = Number.POSITIVE_INFINITY;
  let ids = new Uint32Array(0);
  for (let run = 0; run < runs; run++) {
    const start = performance.now();
    ids = tokenizer.encode(text);
    milliseconds = Math.min(milliseconds, performance.now() - start);
  }
  return { milliseconds, ids };
}

/**
 * The fastest of `rounds` encodings of `make(bytes)` and of `make(4 · bytes)`, alternated so that a burst of
 * load on the machine does not decide the comparison. O(n log n) takes about 4 times as long for the
 * larger input; a quadratic merge 16 times.
 */
export function scalingTimes(
  tokenizer: Tokenizer,
  make: (bytes: number) => string,
  bytes: number,
  rounds = 3,
): { small: number; large: number } {
  const smallText = make(bytes);
  const largeText = make(4 * bytes);
  let small = Number.POSITIVE_INFINITY;
  let large = Number.POSITIVE_INFINITY;
  for (let round = 0; round < rounds; round++) {
    small = Math.min(small, millisecondsToEncode(tokenizer, smallText, 1).milliseconds);
    large = Math.min(large, millisecondsToEncode(tokenizer, largeText, 1).milliseconds);
  }
  return { small, large };
}

/** A run of one character class between two others, repeated: `prefix + unit × runLength + suffix`. */
export type RunFamily = readonly [prefix: string, unit: string, suffix: string];

/**
 * Pre-tokenizes `length` UTF-16 units of each family (runs of `runLength`) and returns the slowest family's
 * time, with whether the pieces tiled every text; a family slower than 100 ms is timed twice more and keeps
 * its fastest time (a garbage collection or a busy machine is not the pattern's cost). A pattern that
 * backtracked quadratically within a run would take about length · runLength steps (4 · 10⁹ for 256 Ki and
 * runs of 16 Ki: seconds); a linear one takes milliseconds.
 */
export function slowestPreTokenization(
  preTokenize: (text: string) => string[],
  families: readonly RunFamily[],
  length: number = ONE_MIB,
  runLength = 4096,
): { milliseconds: number; family: string; tiled: boolean } {
  let slowest = { milliseconds: 0, family: '', tiled: true };
  for (const [prefix, unit, suffix] of families) {
    const block = prefix + unit.repeat(runLength) + suffix;
    const text = block.repeat(Math.ceil(length / block.length));
    let milliseconds = Number.POSITIVE_INFINITY;
    let tiled = slowest.tiled;
    for (let run = 0; run < 3 && milliseconds > 100; run++) {
      const start = performance.now();
      const pieces = preTokenize(text);
      milliseconds = Math.min(milliseconds, performance.now() - start);
      tiled &&= pieces.join('') === text;
    }
    slowest =
      milliseconds > slowest.milliseconds
        ? { milliseconds, family: JSON.stringify([prefix, unit, suffix]), tiled }
        : { ...slowest, tiled };
  }
  return slowest;
}
