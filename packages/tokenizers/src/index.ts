export { PieceTooLongError } from './byte-pair-encoder.js';
export {
  DEFAULT_TOKENIZER_ID,
  ENCODING_FACTS,
  type EncodingFacts,
  isTokenizerId,
  TOKENIZER_IDS,
  type TokenizerId,
} from './encodings.js';
export { normalizeText } from './normalize.js';
export { assertTokenIds, getTokenizer, type Tokenizer } from './tokenizer.js';
