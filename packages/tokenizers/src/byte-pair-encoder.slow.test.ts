import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENCODING_FACTS, TOKENIZER_IDS } from './encodings.js';
import {
  encoderVariants,
  loadCorpus,
  REPEATED_UNITS,
  referenceEncode,
  repeatTo,
} from './reference-encoders.test-helper.js';
import { getTokenizer } from './tokenizer.js';

const require = createRequire(import.meta.url);

interface SecondReference {
  encode(text: string, options: { disallowedSpecial: Set<string> }): number[];
}

const ALLOW_SPECIAL_TEXT = { disallowedSpecial: new Set<string>() };

function sameIds(actual: ArrayLike<number>, expected: ArrayLike<number>): boolean {
  if (actual.length !== expected.length) return false;
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) return false;
  return true;
}

describe.each(TOKENIZER_IDS)('%s', (id) => {
  const tokenizer = getTokenizer(id);
  const { heapOnly, arraysOnly } = encoderVariants(id);

  it('gives the ids of js-tiktoken and gpt-tokenizer on the whole Brown corpus and nlp-corpus', async () => {
    const second = require(
      `gpt-tokenizer/cjs/encoding/${ENCODING_FACTS[id].fastEncodingName}`,
    ) as SecondReference;
    const documents = await loadCorpus('all');
    expect(documents).toHaveLength(5500);
    const mismatches: string[] = [];
    for (const document of documents) {
      const normalized = tokenizer.normalize(document.text);
      const expected = referenceEncode(id, normalized);
      const ids = tokenizer.encode(document.text);
      if (
        !sameIds(ids, expected) ||
        !sameIds(heapOnly.encode(normalized), expected) ||
        !sameIds(second.encode(normalized, ALLOW_SPECIAL_TEXT), expected)
      ) {
        mismatches.push(document.id);
      }
    }
    expect(mismatches).toEqual([]);
  }, 600_000);

  it('gives the ids of js-tiktoken on random strings (property, long runs)', () => {
    const unit = fc.constantFrom(...REPEATED_UNITS);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(unit, fc.integer({ min: 1, max: 200 })), { minLength: 1, maxLength: 4 }),
        fc.string({ unit: 'binary', maxLength: 20 }),
        (runs, noise) => {
          const text = runs.map(([part, count]) => part.repeat(count)).join(noise);
          const expected = referenceEncode(id, text);
          expect([...heapOnly.encode(text)]).toEqual(expected);
          expect([...arraysOnly.encode(text)]).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  }, 600_000);

  it.each(REPEATED_UNITS)(
    'gives the ids of js-tiktoken on runs of %j up to 1,500 characters',
    (unit) => {
      // js-tiktoken's merge is quadratic: 1,500 CJK characters (4,500 bytes in one piece) take it seconds.
      for (const length of [700, 1500]) {
        const text = tokenizer.normalize(repeatTo(unit, length));
        const expected = referenceEncode(id, text);
        expect([...tokenizer.encode(text)], `${length}`).toEqual(expected);
        expect([...heapOnly.encode(text)], `${length}`).toEqual(expected);
      }
    },
    600_000,
  );

  it.each(REPEATED_UNITS)(
    'merges runs of %j of 10,000 characters alike on the heap and on arrays',
    (unit) => {
      const text = repeatTo(unit, 10_000);
      expect(sameIds(heapOnly.encode(text), arraysOnly.encode(text))).toBe(true);
    },
    600_000,
  );
});
