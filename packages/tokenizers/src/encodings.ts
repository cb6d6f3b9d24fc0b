/** The tokenizers this package provides, each a tiktoken byte-pair encoding. */
export type TokenizerId = 'cl100k_base' | 'o200k_base' | 'gpt2';

export const TOKENIZER_IDS: readonly TokenizerId[] = Object.freeze([
  'cl100k_base',
  'o200k_base',
  'gpt2',
] as const);

export const DEFAULT_TOKENIZER_ID: TokenizerId = 'cl100k_base';

export function isTokenizerId(x: unknown): x is TokenizerId {
  return typeof x === 'string' && (TOKENIZER_IDS as readonly string[]).includes(x);
}

/** Static facts about an encoding, checked against the rank files by the tests. */
export interface EncodingFacts {
  /** Ordinary (byte-pair) tokens are exactly the ids 0 … ordinaryTokenCount − 1. */
  readonly ordinaryTokenCount: number;
  /** Special token text → id. */
  readonly specialTokens: Readonly<Record<string, number>>;
  /** The encoding's name in gpt-tokenizer, a second reference implementation for the tests and the bench. */
  readonly fastEncodingName: string;
}

export const ENCODING_FACTS: Readonly<Record<TokenizerId, EncodingFacts>> = Object.freeze({
  cl100k_base: Object.freeze({
    ordinaryTokenCount: 100_256,
    specialTokens: Object.freeze({
      '<|endoftext|>': 100_257,
      '<|fim_prefix|>': 100_258,
      '<|fim_middle|>': 100_259,
      '<|fim_suffix|>': 100_260,
      '<|endofprompt|>': 100_276,
    }),
    fastEncodingName: 'cl100k_base',
  }),
  o200k_base: Object.freeze({
    ordinaryTokenCount: 199_998,
    specialTokens: Object.freeze({ '<|endoftext|>': 199_999, '<|endofprompt|>': 200_018 }),
    fastEncodingName: 'o200k_base',
  }),
  gpt2: Object.freeze({
    ordinaryTokenCount: 50_256,
    specialTokens: Object.freeze({ '<|endoftext|>': 50_256 }),
    // GPT-2's encoding and r50k_base share ranks, pattern and special tokens.
    fastEncodingName: 'r50k_base',
  }),
});

/** A TypeError for a value that is not a string, a RangeError for a string that names no tokenizer. */
export function unknownTokenizerError(id: unknown, parameterName = 'id'): TypeError | RangeError {
  const valid = TOKENIZER_IDS.join(', ');
  if (typeof id !== 'string') {
    return new TypeError(
      `${parameterName} must be a tokenizer id string (one of ${valid}), got ${typeof id}`,
    );
  }
  return new RangeError(`${parameterName} must be one of ${valid}, got ${JSON.stringify(id)}`);
}
