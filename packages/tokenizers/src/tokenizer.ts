import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { TiktokenBPE } from 'js-tiktoken/lite';
import { type BytePairEncoder, createBytePairEncoder } from './byte-pair-encoder.js';
import { type ByteTable, buildByteTable } from './byte-table.js';
import { ENCODING_FACTS, isTokenizerId, type TokenizerId, unknownTokenizerError } from './encodings.js';
import { normalizeText } from './normalize.js';
import { rankSource, readTableFile, writeTableFile } from './table-file.js';
import { TokenTable } from './token-table.js';

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
  /**
   * Normalizes, then encodes. Special-token text is encoded as ordinary text, never as a special token.
   * The ids are tiktoken's (the tests prove them identical to js-tiktoken's on the project's corpora, random
   * strings and adversarial runs); time is O(n log n) for any text, with no recursion.
   */
  encode(text: string): Uint32Array;
  /**
   * {@link Tokenizer.encode} itself: it is also the fastest encoder this package has. Kept so that the bulk
   * detection paths that call it need not change.
   */
  encodeFast(text: string): Uint32Array;
  /** The text of a token sequence; invalid UTF-8 (a split character) decodes to U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /** Each token's own text, for display; a token holding part of a UTF-8 character shows U+FFFD. */
  decodeTokens(ids: ArrayLike<number>): string[];
  /**
   * A token's own bytes (a copy), part of a UTF-8 character included: what OpenAI's `logprobs.bytes`
   * holds, from which a client joins split characters back.
   */
  tokenBytes(id: number): Uint8Array;
}

const require = createRequire(import.meta.url);
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

/** How js-tiktoken's rank files begin: the rest is a JSON object and a semicolon. */
const RANK_FILE_PREFIX = 'module.exports = ';

function loadRanks(id: TokenizerId): TiktokenBPE {
  const specifier = `js-tiktoken/ranks/${id}`;
  // Parsing the file's object as JSON costs a third of compiling it as a module (in every worker
  // thread); a file of another shape is required as before.
  try {
    const text = readFileSync(require.resolve(specifier), 'utf8');
    if (text.startsWith(RANK_FILE_PREFIX)) {
      const body = text.slice(RANK_FILE_PREFIX.length).trimEnd();
      const ranks = JSON.parse(body.endsWith(';') ? body.slice(0, -1) : body) as TiktokenBPE;
      if (typeof ranks.pat_str === 'string' && typeof ranks.bpe_ranks === 'string') return ranks;
    }
  } catch {
    // required below, which reports what is wrong
  }
  const loaded = require(specifier) as TiktokenBPE | { default: TiktokenBPE };
  return 'default' in loaded ? loaded.default : loaded;
}

/** The tokenizers whose tables `pnpm build` writes to dist/tables/ (the default one: the others build at first use). */
export const TABLE_FILE_IDS: readonly TokenizerId[] = Object.freeze(['cl100k_base'] as const);

/** A tokenizer's tables: its pattern and byte table, and its token table, built at first use. */
interface Tables {
  readonly pattern: string;
  readonly byteTable: ByteTable;
  tokenTable(): TokenTable;
}

function vocabularyOf(id: TokenizerId): { vocabSize: number; ordinaryTokenCount: number } {
  const facts = ENCODING_FACTS[id];
  const specialIds = Object.values(facts.specialTokens);
  return {
    vocabSize: Math.max(facts.ordinaryTokenCount, ...specialIds.map((x) => x + 1)),
    ordinaryTokenCount: facts.ordinaryTokenCount,
  };
}

/** The tables from the rank file. */
function buildTables(id: TokenizerId): Tables {
  const ranks = loadRanks(id);
  const { vocabSize, ordinaryTokenCount } = vocabularyOf(id);
  const byteTable = buildByteTable(ranks, vocabSize, ENCODING_FACTS[id].specialTokens);
  let tokenTable: TokenTable | undefined;
  return {
    pattern: ranks.pat_str,
    byteTable,
    tokenTable: () => (tokenTable ??= new TokenTable(byteTable, ordinaryTokenCount)),
  };
}

/** The tables from dist/tables/ when a file there was made from the installed rank file; else built. */
function loadTables(id: TokenizerId): Tables {
  const { vocabSize, ordinaryTokenCount } = vocabularyOf(id);
  if (TABLE_FILE_IDS.includes(id)) {
    const file = readTableFile(new URL(`./tables/${id}.bin`, import.meta.url), id, rankSource(id));
    if (
      file !== null &&
      file.ordinaryTokenCount === ordinaryTokenCount &&
      file.byteTable.offsets.length === vocabSize + 1
    ) {
      const tokenTable = new TokenTable(file.byteTable, ordinaryTokenCount, file.slots);
      return { pattern: file.pattern, byteTable: file.byteTable, tokenTable: () => tokenTable };
    }
  }
  return buildTables(id);
}

/** Writes the table files of {@link TABLE_FILE_IDS} to `directory` (the build does, into dist/tables/). */
export function writeTableFiles(directory: string): string[] {
  mkdirSync(directory, { recursive: true });
  return TABLE_FILE_IDS.map((id) => {
    const tables = buildTables(id);
    const path = join(directory, `${id}.bin`);
    writeTableFile(path, id, rankSource(id), {
      pattern: tables.pattern,
      ordinaryTokenCount: ENCODING_FACTS[id].ordinaryTokenCount,
      byteTable: tables.byteTable,
      slots: tables.tokenTable().built(),
    });
    return path;
  });
}

function createTokenizer(id: TokenizerId): Tokenizer {
  const facts = ENCODING_FACTS[id];
  const { vocabSize, ordinaryTokenCount } = vocabularyOf(id);
  const specialTokenIds: ReadonlySet<number> = new Set(Object.values(facts.specialTokens));

  let tables: Tables | undefined;
  let encoder: BytePairEncoder | undefined;
  const textDecoder = new TextDecoder('utf-8');

  const getTables = (): Tables => (tables ??= loadTables(id));
  const getByteTable = (): ByteTable => getTables().byteTable;

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
      const normalized = normalizeText(text);
      encoder ??= createBytePairEncoder({
        pattern: getTables().pattern,
        table: getTables().tokenTable(),
      });
      return encoder.encode(normalized);
    },
    encodeFast(text) {
      return tokenizer.encode(text);
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
    tokenBytes(token) {
      checkDecodable([token]);
      const { bytes, offsets } = getByteTable();
      return bytes.slice(offsets[token]!, offsets[token + 1]!);
    },
  };
  return Object.freeze(tokenizer);
}
