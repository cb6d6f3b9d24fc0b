import { createRequire } from 'node:module';
import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';
import { ENCODING_FACTS, isTokenizerId, type TokenizerId, unknownTokenizerError } from './encodings.js';
import { normalizeText } from './normalize.js';

/** A byte-pair tokenizer together with the text normalization that is part of its id's definition. */
export interface Tokenizer {
  readonly id: TokenizerId;
  /** One more than the largest token id, special tokens included. */
  readonly vocabSize: number;
  /** Ids of the special tokens (such as `<|endoftext|>`); {@link Tokenizer.encode} never produces them. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Ordinary tokens are the ids 0 … ordinaryTokenCount − 1; the rest are special tokens or unused ids. */
  readonly ordinaryTokenCount: number;
  /** Whether `id` is an ordinary byte-pair token (neither special nor an unused id). */
  isOrdinaryToken(id: number): boolean;
  /** {@link normalizeText}. */
  normalize(text: string): string;
  /** Normalizes, then encodes. Special-token text is encoded as ordinary text, never as a special token. */
  encode(text: string): Uint32Array;
  /**
   * The same ids as {@link Tokenizer.encode}, from a faster implementation (gpt-tokenizer); the tests prove
   * the two identical on the project's corpora and on random strings. Use it for bulk detection.
   */
  encodeFast(text: string): Uint32Array;
  /** The text of a token sequence; invalid UTF-8 (a split character) decodes to U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /** Each token's own text, for display; a token holding part of a UTF-8 character shows U+FFFD. */
  decodeTokens(ids: ArrayLike<number>): string[];
}

interface FastEncoder {
  encode(text: string, options: { disallowedSpecial: Set<string> }): number[];
}

const require = createRequire(import.meta.url);
const NO_SPECIAL_TOKENS: string[] = [];
const ALLOW_SPECIAL_TEXT: { disallowedSpecial: Set<string> } = { disallowedSpecial: new Set() };
const tokenizers = new Map<TokenizerId, Tokenizer>();

/** The tokenizer for `id`; rank files load on first use and are shared by every caller. */
export function getTokenizer(id: TokenizerId): Tokenizer {
  if (!isTokenizerId(id)) throw unknownTokenizerError(id, 'id');
  let tokenizer = tokenizers.get(id);
  if (tokenizer === undefined) {
    tokenizer = createTokenizer(id);
    tokenizers.set(id, tokenizer);
  }
  return tokenizer;
}

/**
 * Throws a RangeError naming `parameterName` unless every id is an integer in [0, vocabSize).
 * `vocabulary` is a tokenizer, a model, or anything with a `vocabSize`.
 */
export function assertTokenIds(
  ids: ArrayLike<number>,
  vocabulary: { readonly vocabSize: number },
  parameterName = 'ids',
): void {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw new TypeError(`${parameterName} must be an array of token ids`);
  }
  const { vocabSize } = vocabulary;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(
        `${parameterName}[${i}] must be an integer token id in [0, ${vocabSize}), got ${String(id)}`,
      );
    }
  }
}

function loadRanks(id: TokenizerId): TiktokenBPE {
  const loaded = require(`js-tiktoken/ranks/${id}`) as TiktokenBPE | { default: TiktokenBPE };
  return 'default' in loaded ? loaded.default : loaded;
}

/** Every token's bytes, concatenated, with offsets: decoding needs no per-token allocation. */
interface ByteTable {
  readonly bytes: Uint8Array;
  readonly offsets: Uint32Array;
}

function buildByteTable(
  ranks: TiktokenBPE,
  vocabSize: number,
  specialTokens: Record<string, number>,
): ByteTable {
  const pieces: Uint8Array[] = new Array(vocabSize);
  let total = 0;
  for (const line of ranks.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const offset = Number.parseInt(fields[1]!, 10);
    for (let i = 2; i < fields.length; i++) {
      const binary = atob(fields[i]!);
      const piece = new Uint8Array(binary.length);
      for (let j = 0; j < binary.length; j++) piece[j] = binary.charCodeAt(j);
      pieces[offset + i - 2] = piece;
      total += piece.length;
    }
  }
  const encoder = new TextEncoder();
  for (const [text, id] of Object.entries(specialTokens)) {
    const piece = encoder.encode(text);
    pieces[id] = piece;
    total += piece.length;
  }
  const bytes = new Uint8Array(total);
  const offsets = new Uint32Array(vocabSize + 1);
  let position = 0;
  for (let id = 0; id < vocabSize; id++) {
    offsets[id] = position;
    const piece = pieces[id];
    if (piece !== undefined) {
      bytes.set(piece, position);
      position += piece.length;
    }
  }
  offsets[vocabSize] = position;
  return { bytes, offsets };
}

function createTokenizer(id: TokenizerId): Tokenizer {
  const facts = ENCODING_FACTS[id];
  const specialIds = Object.values(facts.specialTokens);
  const vocabSize = Math.max(facts.ordinaryTokenCount, ...specialIds.map((x) => x + 1));
  const specialTokenIds: ReadonlySet<number> = new Set(specialIds);
  const { ordinaryTokenCount } = facts;

  let ranks: TiktokenBPE | undefined;
  let encoder: Tiktoken | undefined;
  let fastEncoder: FastEncoder | undefined;
  let byteTable: ByteTable | undefined;
  const textDecoder = new TextDecoder('utf-8');

  const getRanks = (): TiktokenBPE => (ranks ??= loadRanks(id));
  const getByteTable = (): ByteTable =>
    (byteTable ??= buildByteTable(getRanks(), vocabSize, facts.specialTokens));

  const checkDecodable = (ids: ArrayLike<number>): void => {
    assertTokenIds(ids, { vocabSize }, 'ids');
    for (let i = 0; i < ids.length; i++) {
      const token = ids[i]!;
      if (token >= ordinaryTokenCount && !specialTokenIds.has(token)) {
        throw new RangeError(`ids[${i}] is ${token}, an id that ${id} leaves unused`);
      }
    }
  };

  const tokenizer: Tokenizer = {
    id,
    vocabSize,
    specialTokenIds,
    ordinaryTokenCount,
    isOrdinaryToken: (token) => Number.isInteger(token) && token >= 0 && token < ordinaryTokenCount,
    normalize: normalizeText,
    encode(text) {
      encoder ??= new Tiktoken(getRanks());
      return Uint32Array.from(encoder.encode(normalizeText(text), NO_SPECIAL_TOKENS, NO_SPECIAL_TOKENS));
    },
    encodeFast(text) {
      fastEncoder ??= require(`gpt-tokenizer/cjs/encoding/${facts.fastEncodingName}`) as FastEncoder;
      return Uint32Array.from(fastEncoder.encode(normalizeText(text), ALLOW_SPECIAL_TEXT));
    },
    decode(ids) {
      checkDecodable(ids);
      const { bytes, offsets } = getByteTable();
      let length = 0;
      for (let i = 0; i < ids.length; i++) length += offsets[ids[i]! + 1]! - offsets[ids[i]!]!;
      const out = new Uint8Array(length);
      let position = 0;
      for (let i = 0; i < ids.length; i++) {
        const start = offsets[ids[i]!]!;
        const end = offsets[ids[i]! + 1]!;
        out.set(bytes.subarray(start, end), position);
        position += end - start;
      }
      return textDecoder.decode(out);
    },
    decodeTokens(ids) {
      checkDecodable(ids);
      const { bytes, offsets } = getByteTable();
      const pieces: string[] = new Array(ids.length);
      for (let i = 0; i < ids.length; i++) {
        pieces[i] = textDecoder.decode(bytes.subarray(offsets[ids[i]!]!, offsets[ids[i]! + 1]!));
      }
      return pieces;
    },
  };
  return Object.freeze(tokenizer);
}
