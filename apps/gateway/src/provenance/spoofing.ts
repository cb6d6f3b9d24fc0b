/**
 * The spoofing-artefact test of `/v1/verify`: the shared checker (@tracemark/detection
 * `createSpoofingChecker`, which `tracemark detect` runs too) with the Brown corpus's bigram counts in the
 * serving tokenizer as learnability, built once, on the first verification that needs them.
 */
import { createSpoofingChecker as createSharedChecker, type SpoofingChecker } from '@tracemark/detection';
import { BROWN_BIGRAMS_LEARNABILITY, brownBigramCounts } from '@tracemark/lm';
import type { Tokenizer } from '@tracemark/tokenizers';

export {
  SPOOF_TEST_ALPHA,
  SPOOF_TEST_MAX_TOKENS,
  SPOOF_TEST_NAME,
  type SpoofingChecker,
  type SpoofingInput,
  type SpoofingResult,
} from '@tracemark/detection';

export function createSpoofingChecker(tokenizer: Tokenizer): SpoofingChecker {
  return createSharedChecker(tokenizer, {
    bigrams: () => brownBigramCounts(tokenizer),
    learnability: BROWN_BIGRAMS_LEARNABILITY,
  });
}
