import { describe, expect, it } from 'vitest';
import { createPreTokenizer } from './byte-pair-encoder.js';
import { TOKENIZER_IDS } from './encodings.js';
import { loadRankFile } from './reference-encoders.test-helper.js';
import { getTokenizer } from './tokenizer.js';
import {
  millisecondsToEncode,
  ONE_MIB,
  type RunFamily,
  scalingTimes,
  slowestPreTokenization,
  WORST_INPUTS,
} from './worst-case-inputs.test-helper.js';

const BOUND_MS = 5000;

// One character of each class that the patterns' alternatives tell apart: whitespace (space, newline, CR,
// no-break space), letters (lowercase, uppercase, titlecase, modifier, other), a combining mark, a digit,
// punctuation, the apostrophe and the s of contractions, the slash of o200k, an emoji, NUL, a lone surrogate.
const CLASSES = [
  ' ',
  '\n',
  '\r',
  '\u00a0',
  'a',
  'A',
  '\u01c5',
  '\u02b0',
  '\u65e5',
  '\u0301',
  '0',
  '!',
  "'",
  's',
  '/',
  '\u{1f600}',
  '\u0000',
  '\ud800',
];

describe.each(TOKENIZER_IDS)('%s', (id) => {
  const tokenizer = getTokenizer(id);

  it.each(Object.keys(WORST_INPUTS))(
    'encodes %s in bounded time, sub-quadratically',
    (name) => {
      const make = WORST_INPUTS[name]!;
      const text = make(ONE_MIB);
      const { milliseconds, ids } = millisecondsToEncode(tokenizer, text, 1);
      expect(milliseconds).toBeLessThan(BOUND_MS);
      expect(tokenizer.decode(ids)).toBe(tokenizer.normalize(text));
      // The 50 ms keep a garbage collection from failing a fast input (NULs take milliseconds).
      const { small, large } = scalingTimes(tokenizer, make, ONE_MIB / 4, 5);
      expect(large).toBeLessThan(8 * small + 50);
    },
    600_000,
  );

  it('pre-tokenizes every run of one class between any two others in linear time', () => {
    const preTokenize = createPreTokenizer(loadRankFile(id).pat_str);
    const families: RunFamily[] = [];
    for (const unit of CLASSES) {
      for (const prefix of CLASSES)
        for (const suffix of ['', ...CLASSES]) families.push([prefix, unit, suffix]);
    }
    // A quadratic backtrack within the runs of 16 Ki would take about 4 · 10⁹ steps on these 256 Ki texts;
    // linear pre-tokenization takes 5 to 50 ms.
    const slowest = slowestPreTokenization(preTokenize, families, ONE_MIB / 4, 16_384);
    expect(slowest.milliseconds, slowest.family).toBeLessThan(1000);
    expect(slowest.tiled).toBe(true);
  }, 600_000);
});
