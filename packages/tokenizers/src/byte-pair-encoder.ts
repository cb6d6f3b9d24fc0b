import { asciiPieceScanner, cl100kAsciiPieceEnd, NOT_ASCII } from './ascii-pieces.js';
import { mergeOnArrays, mergeWithHeap } from './byte-pair-merge.js';
import { NO_TOKEN, type TokenTable } from './token-table.js';
import { createWasmAsciiEncoder, MAX_WASM_UNITS } from './wasm-encoder.js';

/** tiktoken's encoding of ordinary text, in O(n log n) time for any input. */
export interface BytePairEncoder {
  /**
   * The ids tiktoken gives `text` with no special tokens allowed or disallowed: special-token text is
   * encoded as ordinary text. No normalization.
   */
  encode(text: string): Uint32Array;
  /** The token table, shared with the tests. */
  readonly table: TokenTable;
  /** Whether ASCII pieces go to the WebAssembly encoder (cl100k_base, where WebAssembly runs). */
  readonly wasm: boolean;
}

export interface BytePairEncoderOptions {
  /** The rank file's `pat_str`: pre-tokenization uses it with the flags `gu`, exactly as tiktoken does. */
  readonly pattern: string;
  /** The ordinary tokens. */
  readonly table: TokenTable;
  /**
   * Pieces of at most this many bytes merge on arrays in O(length²), longer ones with a heap in
   * O(length · log length); the default suits ordinary text. 0 sends every piece to the heap (tests).
   */
  readonly arrayMergeLimit?: number;
  /**
   * Whether cl100k_base's ASCII pieces go to the WebAssembly encoder (src/wasm-encoder.ts) where it can
   * run; default true. It gives the same ids; false keeps every piece in JavaScript (tests).
   */
  readonly wasm?: boolean;
}

/**
 * A text whose pre-tokenization V8's regular-expression engine cannot finish: one piece of millions of
 * characters (a run of letters with no space or punctuation) overflows the engine's backtracking stack
 * (on Node 20, a run of 4 Mi CJK letters does; 3 Mi does not). Thrown instead of that RangeError, with a
 * stable `code` for callers that report input errors.
 */
export class PieceTooLongError extends RangeError {
  override readonly name = 'PieceTooLongError';
  readonly code = 'TM_ERR_PIECE_TOO_LONG';
  /** Where the piece starts (UTF-16 units). */
  readonly index: number;
  constructor(index: number) {
    super(
      `the text from character ${index} on is one piece too long to pre-tokenize (millions of characters ` +
        'with no space or punctuation); split it',
    );
    this.index = index;
  }
}

/** The pattern's answer at `position` (test, or exec when `search`); PieceTooLongError for a stack overflow. */
function matchAt<T>(run: () => T, position: number): T {
  try {
    return run();
  } catch (error) {
    throw error instanceof RangeError ? new PieceTooLongError(position) : error;
  }
}

export const DEFAULT_ARRAY_MERGE_LIMIT = 64;

/**
 * Texts through every path of the encoder: ASCII words, a contraction, digits, punctuation, whitespace
 * runs, a rare word (a merge), non-ASCII letters (the expression), an emoji, a lone surrogate; then pieces
 * of over 64 bytes (the heap merge, and a run of spaces that is one token).
 */
const WARM_UP_TEXT = "It's 12345 words, café naïve\r\n\t  Zzyzxq 😀 \ud800 end.";
const WARM_UP_LONG_PIECES = `${WARM_UP_TEXT} ${'x'.repeat(70)}${' '.repeat(70)}end.`;
const WARM_UP_CALLS = 12;
/** Scratch buffers longer than this are not kept between calls. */
const KEPT_BUFFER_LENGTH = 1 << 16;

const utf8 = new TextEncoder();

/** The length of the UTF-8 encoding of `text.slice(start, end)` (a lone surrogate: U+FFFD, 3 bytes). */
function utf8Length(text: string, start: number, end: number): number {
  return utf8.encode(text.slice(start, end)).length;
}

/**
 * Writes the UTF-8 encoding of `text.slice(start, end)` into `bytes` (which holds at least 3 × its length)
 * and returns its length. A lone surrogate becomes U+FFFD, as TextEncoder does.
 */
export function encodeUtf8Into(
  text: string,
  bytes: Uint8Array,
  start = 0,
  end: number = text.length,
): number {
  let length = 0;
  const units = end;
  for (let i = start; i < units; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      bytes[length++] = code;
      continue;
    }
    if (code < 0x800) {
      bytes[length++] = 0xc0 | (code >> 6);
      bytes[length++] = 0x80 | (code & 0x3f);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const low = i + 1 < units ? text.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        i++;
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        bytes[length++] = 0xf0 | (code >> 18);
        bytes[length++] = 0x80 | ((code >> 12) & 0x3f);
        bytes[length++] = 0x80 | ((code >> 6) & 0x3f);
        bytes[length++] = 0x80 | (code & 0x3f);
        continue;
      }
      code = 0xfffd;
    }
    bytes[length++] = 0xe0 | (code >> 12);
    bytes[length++] = 0x80 | ((code >> 6) & 0x3f);
    bytes[length++] = 0x80 | (code & 0x3f);
  }
  return length;
}

/**
 * tiktoken's encoding of one pre-tokenized piece given as bytes: the whole piece if it is a token, otherwise
 * the byte-pair merge (from `merges` when it holds the piece, and kept there). Writes to `out` from
 * `outPosition` (room for `length` ids) and returns the end.
 */
export function encodePieceBytes(
  bytes: Uint8Array,
  length: number,
  table: TokenTable,
  out: Uint32Array,
  outPosition: number,
  arrayMergeLimit: number = DEFAULT_ARRAY_MERGE_LIMIT,
  merges?: MergeCache,
): number {
  if (length === 0) return outPosition;
  // Most pieces of ordinary text are one token.
  const whole = length === 1 ? table.byteIds[bytes[0]!]! : table.idOf(bytes, 0, length);
  if (whole !== NO_TOKEN) {
    out[outPosition] = whole;
    return outPosition + 1;
  }
  return mergePiece(bytes, length, table, out, outPosition, arrayMergeLimit, merges);
}

/** The merge of a piece that is not one token (encodePieceBytes after its whole-piece lookup). */
function mergePiece(
  bytes: Uint8Array,
  length: number,
  table: TokenTable,
  out: Uint32Array,
  outPosition: number,
  arrayMergeLimit: number,
  merges: MergeCache | undefined,
): number {
  if (merges !== undefined) {
    const cached = merges.read(bytes, length, out, outPosition);
    if (cached >= 0) return cached;
  }
  const end =
    length <= arrayMergeLimit
      ? mergeOnArrays(bytes, length, table, out, outPosition)
      : mergeWithHeap(bytes, length, table, out, outPosition);
  merges?.write(bytes, length, out, outPosition, end);
  return end;
}

/** Longest piece, in bytes, whose merge {@link MergeCache} keeps; and the most ids it keeps for one. */
const CACHED_PIECE_BYTES = 24;
const CACHED_PIECE_TOKENS = 12;
/**
 * Entries of the cache (a power of two; 80 bytes each, 2.6 MB): 16 MB of documentation has about 163,000
 * pieces that need a merge, 71,000 of them distinct; 8,192 entries kept 31% of them from merging, 32,768
 * keep 44% (a merge costs tens of lookups, a hit one compare).
 */
const CACHE_ENTRIES = 32768;

/**
 * The merges of recent pieces that are not one token, by their bytes: a piece's merge is a function of its
 * bytes alone, and the pieces that need one (a twentieth of ordinary text) repeat (the same rare words,
 * numbers, names), where a merge costs tens of lookups. Direct-mapped: an entry holds the last piece whose
 * hash chose it; a hit compares every byte, so the cache only ever gives the merge's own ids.
 */
export class MergeCache {
  /** Per entry: the piece's hash, and its length in bytes | its count of ids << 8 (0: empty). */
  private readonly keys = new Int32Array(2 * CACHE_ENTRIES);
  private readonly bytes = new Uint8Array(CACHE_ENTRIES * CACHED_PIECE_BYTES);
  private readonly ids = new Uint32Array(CACHE_ENTRIES * CACHED_PIECE_TOKENS);

  /** FNV-1a over the bytes, finalized so that the low bits are mixed. */
  private static hash(bytes: Uint8Array, length: number): number {
    let hash = 0x811c9dc5;
    for (let i = 0; i < length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
    hash = Math.imul(hash ^ (hash >>> 15), 0x2c1b3c6d);
    return hash ^ (hash >>> 12);
  }

  /** Writes the cached ids of `bytes[0 … length)` to `out` from `at` and returns the end; -1 if not held. */
  read(bytes: Uint8Array, length: number, out: Uint32Array, at: number): number {
    if (length > CACHED_PIECE_BYTES) return -1;
    const hash = MergeCache.hash(bytes, length);
    const entry = hash & (CACHE_ENTRIES - 1);
    const shape = this.keys[2 * entry + 1]!;
    if (this.keys[2 * entry] !== hash || (shape & 0xff) !== length) return -1;
    const base = entry * CACHED_PIECE_BYTES;
    for (let i = 0; i < length; i++) if (this.bytes[base + i] !== bytes[i]) return -1;
    const count = shape >>> 8;
    const from = entry * CACHED_PIECE_TOKENS;
    for (let i = 0; i < count; i++) out[at + i] = this.ids[from + i]!;
    return at + count;
  }

  /** Keeps the ids `out[from … to)` of the piece `bytes[0 … length)` (if short enough). */
  write(bytes: Uint8Array, length: number, out: Uint32Array, from: number, to: number): void {
    const count = to - from;
    if (length > CACHED_PIECE_BYTES || count > CACHED_PIECE_TOKENS) return;
    const hash = MergeCache.hash(bytes, length);
    const entry = hash & (CACHE_ENTRIES - 1);
    this.keys[2 * entry] = hash;
    this.keys[2 * entry + 1] = length | (count << 8);
    // loops, not set(subarray(…)): a view is an allocation, and pieces are a few bytes
    const base = entry * CACHED_PIECE_BYTES;
    for (let i = 0; i < length; i++) this.bytes[base + i] = bytes[i]!;
    const at = entry * CACHED_PIECE_TOKENS;
    for (let i = 0; i < count; i++) this.ids[at + i] = out[from + i]!;
  }
}

/**
 * tiktoken's pre-tokenization: the pieces of `text` that `pattern` (a rank file's `pat_str`) matches, with
 * the flags `gu` as tiktoken compiles it. Every pattern here matches at every position, so the pieces tile
 * the text. The patterns run in linear time on any input (the tests time their worst cases).
 */
export function createPreTokenizer(pattern: string): (text: string) => string[] {
  const regex = new RegExp(pattern, 'gu');
  return (text) => text.match(regex) ?? [];
}

/** An encoder for one rank file. It reuses scratch buffers between calls: safe, since a call never yields. */
export function createBytePairEncoder(options: BytePairEncoderOptions): BytePairEncoder {
  const { table } = options;
  const { byteIds } = table;
  const arrayMergeLimit = options.arrayMergeLimit ?? DEFAULT_ARRAY_MERGE_LIMIT;
  // The pieces of createPreTokenizer, found as ranges: a sticky regex's `test` only moves `lastIndex`,
  // where `match` builds a string per piece (most of the encoder's garbage).
  const sticky = new RegExp(options.pattern, 'yu');
  const search = new RegExp(options.pattern, 'gu');
  let pieceBytes = new Uint8Array(3 * 256);
  let output: Uint32Array = new Uint32Array(1024);

  // Pieces of ASCII text are found by a scanner where the pattern has one (the expression is the slow part).
  const scanAscii = asciiPieceScanner(options.pattern);
  const merges = new MergeCache();
  // cl100k_base's ASCII pieces in WebAssembly, where it runs (the merge limit is its own: tests that set
  // another want the JavaScript merges).
  const fast =
    options.wasm !== false &&
    scanAscii === cl100kAsciiPieceEnd &&
    arrayMergeLimit === DEFAULT_ARRAY_MERGE_LIMIT
      ? createWasmAsciiEncoder(table)
      : null;

  const encode = (text: string): Uint32Array => {
    let out: Uint32Array = output;
    let count = 0;
    const units = text.length;
    let position = 0;
    // With WebAssembly: the text's UTF-8 bytes are in its memory, `byte` is the byte at `position`, and
    // the ids go to its output (room for one id a byte: the growth below never happens there).
    const wasm = fast !== null && units <= MAX_WASM_UNITS && fast.load(text) ? fast : null;
    let byte = 0;
    if (wasm !== null) out = wasm.output;
    while (position < units) {
      if (wasm !== null) {
        const stop = wasm.encode(byte, count);
        count = wasm.produced();
        position += stop - byte;
        byte = stop;
        if (position >= units) break;
      }
      let start = position;
      let end = scanAscii === undefined ? NOT_ASCII : scanAscii(text, position);
      if (end !== NOT_ASCII) {
        // An ASCII piece: its bytes are its character codes.
        const length = end - start;
        if (length > pieceBytes.length && length <= KEPT_BUFFER_LENGTH)
          pieceBytes = new Uint8Array(3 * length);
        const bytes = length <= pieceBytes.length ? pieceBytes : new Uint8Array(length);
        position = end;
        byte += length;
        if (count + length > out.length) out = grow(out, count + length);
        // Most pieces of ordinary text are one token.
        const whole =
          length === 1 ? byteIds[text.charCodeAt(start)]! : table.idOfAscii(text, start, end, bytes);
        if (whole !== NO_TOKEN) out[count++] = whole;
        else count = mergePiece(bytes, length, table, out, count, arrayMergeLimit, merges);
        continue;
      }
      sticky.lastIndex = position;
      if (matchAt(() => sticky.test(text), position)) end = sticky.lastIndex;
      else {
        // No piece starts here (no pattern here allows that): skip to the next one, as match does.
        search.lastIndex = position;
        const found = matchAt(() => search.exec(text), position);
        if (found === null) break;
        start = found.index;
        end = start + found[0].length;
        if (wasm !== null) byte += utf8Length(text, position, start);
      }
      if (end === start) {
        // No pattern here matches the empty string; were one to, match would step on one code point.
        position = start + ((text.codePointAt(start) ?? 0) > 0xffff ? 2 : 1);
        if (wasm !== null) byte += utf8Length(text, start, position);
        continue;
      }
      position = end;
      // A UTF-16 unit takes at most 3 bytes, and a piece has at most as many tokens as bytes.
      const byteBound = 3 * (end - start);
      if (byteBound > pieceBytes.length && byteBound <= KEPT_BUFFER_LENGTH)
        pieceBytes = new Uint8Array(byteBound);
      const bytes = byteBound <= pieceBytes.length ? pieceBytes : new Uint8Array(byteBound);
      const length = encodeUtf8Into(text, bytes, start, end);
      byte += length;
      if (count + length > out.length) out = grow(out, count + length);
      count = encodePieceBytes(bytes, length, table, out, count, arrayMergeLimit, merges);
    }
    if (wasm === null && out.length <= KEPT_BUFFER_LENGTH) output = out;
    return out.slice(0, count);
  };

  // Every path of `encode` before V8 optimizes it: code optimized before a path had run is thrown away the
  // first time a text takes that path (a non-ASCII piece, a long one), and compiled again. V8 records
  // which paths ran only from a function's ninth call or so on (its feedback is allocated lazily).
  // The long pieces only at the end: a heap merge called often would be optimized for nothing.
  for (let i = 0; i < WARM_UP_CALLS; i++) encode(i < WARM_UP_CALLS - 2 ? WARM_UP_TEXT : WARM_UP_LONG_PIECES);
  return Object.freeze({ encode, table, wasm: fast !== null });
}

function grow(buffer: Uint32Array, needed: number): Uint32Array<ArrayBuffer> {
  const grown = new Uint32Array(Math.max(needed, 2 * buffer.length));
  grown.set(buffer);
  return grown;
}
