import { describe, expect, it } from 'vitest';
import { createPreTokenizer } from './byte-pair-encoder.js';
import { TOKENIZER_IDS } from './encodings.js';
import { loadRankFile } from './reference-encoders.test-helper.js';
import { getTokenizer } from './tokenizer.js';
import {
  millisecondsToEncode,
  ONE_MIB,
  scalingTimes,
  slowestPreTokenization,
  WORST_INPUTS,
} from './worst-case-inputs.test-helper.js';

// js-tiktoken and gpt-tokenizer take minutes on these inputs (their merge is quadratic in a piece's length)
// and gpt-tokenizer overflows the stack on 130,000 NULs. The bounds are generous so that a loaded machine
// cannot fail them; a quadratic merge would exceed them by orders of magnitude.
const BOUND_MS = 5000;
const DEFAULT_SUITE_INPUTS = [
  '"a" × n',
  'U+1F600 × n/4',
  'NUL × n',
  'e U+0301 × n/2',
  'n random letters a–z (one piece)',
  'n random characters U+0000–U+00FF',
];

describe('cl100k_base on the worst inputs of n = 1 MiB', () => {
  const tokenizer = getTokenizer('cl100k_base');

  // The slow suite adds runs of spaces and newlines, and the other two encodings.
  it.each(DEFAULT_SUITE_INPUTS)('encodes %s in bounded time, and decodes it back', (name) => {
    const text = WORST_INPUTS[name]!(ONE_MIB);
    const { milliseconds, ids } = millisecondsToEncode(tokenizer, text, 1);
    expect(milliseconds).toBeLessThan(BOUND_MS);
    expect(tokenizer.decode(ids)).toBe(tokenizer.normalize(text));
  });

  it('takes less than 8 times as long for 4 times the input (not quadratic)', () => {
    // 64 Ki against 256 Ki here; encode-worst-case.slow.test.ts does 256 Ki against 1 Mi for every input.
    // The 50 ms keep a garbage collection from failing a fast input.
    const { small, large } = scalingTimes(tokenizer, WORST_INPUTS['"a" × n']!, ONE_MIB / 16);
    expect(large).toBeLessThan(8 * small + 50);
  });
});

describe.each(TOKENIZER_IDS)('%s', (id) => {
  it('encodes 1 MiB of NULs without overflowing the stack', () => {
    const tokenizer = getTokenizer(id);
    const text = '\u0000'.repeat(ONE_MIB);
    const ids = tokenizer.encode(text);
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it('pre-tokenizes the hardest runs for a backtracking pattern in linear time', () => {
    const slowest = slowestPreTokenization(createPreTokenizer(loadRankFile(id).pat_str), [
      // A long whitespace run before a non-space: `\s*[\r\n]+` and `\s+(?!\S)` scan it and back off.
      ['', ' ', 'a'],
      ['\n', ' ', 'a'],
      [' ', '\n', ' '],
      ['', '\t', '0'],
      ['', '\u00a0', '\u0000'],
      // Uppercase (o200k's first alternative scans it, finds no lowercase, backs off) and mixed letter kinds.
      ['', 'A', '0'],
      ['\u02b0', 'A', '!'],
      ['a', 'A', "'s"],
      ['', '\u01c5', ' '],
      ['', '\u65e5', 'A'],
      ['', 'e\u0301', '0'],
      // Runs of one piece: punctuation, emoji, NULs, digits, lone surrogates.
      ['', '!', '\n'],
      ['', '\u{1f600}', 'a'],
      ['', '\u0000', ' '],
      ['', '0', 'a'],
      ['', '\ud800', ''],
    ]);
    // A quadratic backtrack within the runs of 4096 would take seconds on these 1 Mi texts.
    expect(slowest.milliseconds, slowest.family).toBeLessThan(1000);
    expect(slowest.tiled).toBe(true);
  });
});
