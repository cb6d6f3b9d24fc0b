/**
 * The learnability table of the spoofing-artefact test (@tracemark/detection `createSpoofingChecker`):
 * bigram counts of the Brown corpus's training split in a tokenizer's ids. Human text the default model
 * was trained on and no watermark touched: the pairs common there are the pairs an attacker can learn.
 * The gateway and `tracemark detect` both take it from here, so the same text gets the same numbers.
 */
import { createNgramCounts, type NgramCounts } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import { loadHumanCorpus } from './human-corpus.js';

/** What {@link brownBigramCounts} counts, as the spoofing test reports it. */
export const BROWN_BIGRAMS_LEARNABILITY = 'bigram counts of the Brown corpus (training split)';

const built = new WeakMap<Tokenizer, Promise<NgramCounts>>();

/**
 * Bigram counts of the Brown corpus's training split, encoded with `tokenizer`: built once per tokenizer
 * in a process (about 1.5 s and 30 MB; a failed build is tried again on the next call).
 */
export function brownBigramCounts(tokenizer: Tokenizer): Promise<NgramCounts> {
  let counts = built.get(tokenizer);
  if (counts === undefined) {
    counts = loadHumanCorpus({ split: 'train', source: 'brown' }).then((documents) =>
      createNgramCounts(
        documents.map((document) => tokenizer.encodeFast(document.text)),
        2,
      ),
    );
    built.set(tokenizer, counts);
    counts.catch(() => built.delete(tokenizer));
  }
  return counts;
}
