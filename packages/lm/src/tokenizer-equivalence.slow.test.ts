import { getTokenizer, type TokenizerId } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import { loadHumanCorpus } from './human-corpus.js';

// The same proof as tokenizer-equivalence.test.ts, for the tokenizers other than the default.
describe.each(['o200k_base', 'gpt2'] as const satisfies readonly TokenizerId[])('%s', (id) => {
  it('encodeFast gives the ids of encode on the whole Brown corpus and nlp-corpus', async () => {
    const tokenizer = getTokenizer(id);
    const documents = await loadHumanCorpus({ split: 'all' });
    expect(documents).toHaveLength(5500);
    for (const document of documents) {
      expect(tokenizer.encodeFast(document.text), document.id).toEqual(tokenizer.encode(document.text));
    }
  });
});
