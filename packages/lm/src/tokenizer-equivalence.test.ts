import { getTokenizer, type TokenizerId } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import { loadHumanCorpus } from './human-corpus.js';

// Proves that encodeFast (gpt-tokenizer) gives the ids of encode (js-tiktoken) on every corpus document;
// tokenizer-equivalence.slow.test.ts does the same for o200k_base and gpt2.
async function expectIdenticalIds(id: TokenizerId): Promise<void> {
  const tokenizer = getTokenizer(id);
  const documents = await loadHumanCorpus({ split: 'all' });
  let mismatches = 0;
  for (const document of documents) {
    const reference = tokenizer.encode(document.text);
    const fast = tokenizer.encodeFast(document.text);
    if (reference.length !== fast.length || reference.some((token, i) => token !== fast[i])) {
      mismatches++;
      expect.soft(fast, document.id).toEqual(reference);
    }
  }
  expect(mismatches).toBe(0);
  expect(documents).toHaveLength(5500);
}

describe('encodeFast on the whole Brown corpus and nlp-corpus', () => {
  it('gives the ids of encode for cl100k_base', () => expectIdenticalIds('cl100k_base'), 120_000);
});
