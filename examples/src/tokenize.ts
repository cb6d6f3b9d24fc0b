/**
 * Tokenizer ids bind a watermark key to a byte-pair encoding and its normalization: normalize, encode,
 * decode, and check token ids from outside before scoring them.
 * Run: pnpm --filter @tracemark/examples run tokenize
 */
import { assertTokenIds, getTokenizer, normalizeText, TOKENIZER_IDS } from '@tracemark/tokenizers';

const tokenizer = getTokenizer('cl100k_base'); // one of TOKENIZER_IDS; rank files load on first use
console.log(`tokenizers: ${TOKENIZER_IDS.join(', ')}; cl100k_base has ${tokenizer.vocabSize} ids`);

// Invisible characters are removed before NFC, so inserting them cannot change the tokens.
const disguised = 'The wa\u200Btermark survives cafe\u0301 edits.';
console.log(`normalized: ${JSON.stringify(normalizeText(disguised))}`);
const ids = tokenizer.encode(disguised);
console.log(`ids: ${ids.join(' ')}`);
console.log(
  `same ids as the clean text: ${ids.join() === tokenizer.encode('The watermark survives café edits.').join()}`,
);
console.log(`tokens: ${JSON.stringify(tokenizer.decodeTokens(ids))}`);
console.log(`decoded: ${JSON.stringify(tokenizer.decode(ids))}`);

// Special-token text is ordinary text to encode; the special ids themselves are never produced.
const special = tokenizer.encode('<|endoftext|>');
console.log(
  `"<|endoftext|>" encodes as ${special.length} ordinary tokens; special ids: ${[...tokenizer.specialTokenIds].join(' ')}`,
);

// Ids from a client are checked against the vocabulary: RangeError (TypeError for a non-array) naming the parameter.
try {
  assertTokenIds([464, 3139, 250_000], tokenizer, 'tokens');
} catch (error) {
  console.log(`${(error as Error).name}: ${(error as Error).message}`);
}
