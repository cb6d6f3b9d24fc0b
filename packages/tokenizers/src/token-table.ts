import type { ByteTable } from './byte-table.js';

/** Returned by {@link TokenTable.idOf} for bytes that are no token. */
export const NO_TOKEN = -1;
/** The merge's heap keys hold a rank in 21 bits. */
export const MAX_ORDINARY_TOKENS: number = 2 ** 21;

/** FNV-1a over the bytes, then murmur3's finalizer so that the low bits used as the slot are mixed. */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return finishHash(hash);
}

/** murmur3's finalizer of {@link hashBytes}. */
function finishHash(hash: number): number {
  let mixed = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  mixed = Math.imul(mixed ^ (mixed >>> 13), 0xc2b2ae35);
  return mixed ^ (mixed >>> 16);
}

/** Bytes of a token held in its slot (two words); longer tokens compare the rest in the byte table. */
const INLINE_BYTES = 8;
/** A slot's second word: the id in the low 21 bits, the length above (0 for a length of 1024 or more). */
const ID_BITS = 21;
const ID_MASK = (1 << ID_BITS) - 1;
const MAX_SLOT_LENGTH = 1023;

/** The first `INLINE_BYTES` bytes of `source[start … end)` as two little-endian words, zero-padded. */
function inlineWord(source: Uint8Array, start: number, end: number): number {
  let word = 0;
  const stop = Math.min(end, start + 4);
  for (let i = stop - 1; i >= start; i--) word = (word << 8) | source[i]!;
  return word;
}

/** A table's slots and the arrays derived with them: what {@link TokenTable} builds, and a table file holds. */
export interface TokenTableSlots {
  /** Four words a slot: hash, id | length << 21 (−1 when empty), first bytes (two words). */
  readonly slots: Int32Array;
  readonly byteIds: Int32Array;
  readonly pairIds: Int32Array;
  readonly longestToken: number;
  readonly longestProbe: number;
}

/**
 * The ordinary tokens `0 … ordinaryTokenCount − 1` of a byte table (special tokens excluded), found by their
 * bytes in an open-addressing hash table. Hashing a piece's UTF-8 bytes is faster in V8 than looking the
 * piece's text up in a Map or an object (a fresh string must be hashed and compared there too). Each slot
 * is four words, its hash, id and length, and the token's first 8 bytes: a lookup of a token of up to 8
 * bytes (most of them) reads one cache line, where separate arrays of ids, hashes, offsets and bytes cost
 * a cache miss each (they were most of the encoder's time).
 */
export class TokenTable {
  /** Id of the token for each single byte; every byte is a token in tiktoken's encodings. */
  readonly byteIds: Int32Array;
  /** Id of the two-byte token `b0 b1` at `b0 << 8 | b1`, or {@link NO_TOKEN}: the first merges hash nothing. */
  readonly pairIds: Int32Array;
  /** Length in bytes of the longest token: longer byte ranges are no token, without hashing. */
  readonly longestToken: number;
  /** The most slots any lookup probes; bounded by the fixed vocabulary, whatever the input. */
  readonly longestProbe: number;
  private readonly bytes: Uint8Array;
  private readonly offsets: Uint32Array;
  private readonly ordinaryTokenCount: number;
  /** Four words a slot: hash, id | length << 21 (−1 when empty), first bytes (two words). */
  private readonly slots: Int32Array;
  private readonly mask: number;

  /**
   * Builds the table of `table`'s first `ordinaryTokenCount` tokens, or takes `built`, the slots such a
   * build made (read from a table file; only their shapes are checked here).
   */
  constructor(table: ByteTable, ordinaryTokenCount: number, built?: TokenTableSlots) {
    if (
      !Number.isInteger(ordinaryTokenCount) ||
      ordinaryTokenCount < 1 ||
      ordinaryTokenCount > MAX_ORDINARY_TOKENS
    ) {
      throw new RangeError(
        `ordinaryTokenCount must be an integer in [1, ${MAX_ORDINARY_TOKENS}], got ${ordinaryTokenCount}`,
      );
    }
    const { bytes, offsets } = table;
    this.bytes = bytes;
    this.offsets = offsets;
    this.ordinaryTokenCount = ordinaryTokenCount;
    if (built !== undefined) {
      const { slots, byteIds, pairIds } = built;
      const capacity = slots.length / 4;
      if (
        !Number.isInteger(capacity) ||
        capacity < 1024 ||
        (capacity & (capacity - 1)) !== 0 ||
        byteIds.length !== 256 ||
        pairIds.length !== 1 << 16
      ) {
        throw new RangeError('built: slots, byteIds or pairIds of the wrong length');
      }
      // The encoder takes a one-byte piece's id from byteIds without a lookup: each must be a token.
      if (byteIds.includes(NO_TOKEN)) throw new RangeError('built: a single byte without a token');
      this.slots = slots;
      this.mask = capacity - 1;
      this.byteIds = byteIds;
      this.pairIds = pairIds;
      this.longestToken = built.longestToken;
      this.longestProbe = built.longestProbe;
      return;
    }
    let tokenCount = 0;
    let longestToken = 0;
    for (let id = 0; id < ordinaryTokenCount; id++) {
      const length = offsets[id + 1]! - offsets[id]!;
      if (length === 0) continue;
      tokenCount++;
      if (length > longestToken) longestToken = length;
    }

    // A load factor of at most 1/2 keeps probe sequences short.
    let capacity = 1024;
    while (capacity < tokenCount * 2) capacity *= 2;
    const mask = capacity - 1;
    const slots = new Int32Array(4 * capacity);
    for (let at = 1; at < slots.length; at += 4) slots[at] = NO_TOKEN;
    const byteIds = new Int32Array(256).fill(NO_TOKEN);
    const pairIds = new Int32Array(1 << 16).fill(NO_TOKEN);

    for (let id = 0; id < ordinaryTokenCount; id++) {
      const start = offsets[id]!;
      const end = offsets[id + 1]!;
      if (start === end) continue;
      const hash = hashBytes(bytes, start, end);
      let slot = hash & mask;
      while (slots[4 * slot + 1] !== NO_TOKEN) slot = (slot + 1) & mask;
      const length = end - start;
      slots[4 * slot] = hash;
      slots[4 * slot + 1] = id | ((length <= MAX_SLOT_LENGTH ? length : 0) << ID_BITS);
      slots[4 * slot + 2] = inlineWord(bytes, start, end);
      slots[4 * slot + 3] = inlineWord(bytes, start + 4, end);
      if (length === 1) byteIds[bytes[start]!] = id;
      if (length === 2) pairIds[(bytes[start]! << 8) | bytes[start + 1]!] = id;
    }
    for (let byte = 0; byte < 256; byte++) {
      if (byteIds[byte] === NO_TOKEN) throw new Error(`the rank file has no token for the byte ${byte}`);
    }

    // A lookup stops at the first empty slot, so it probes at most the longest run of full slots plus one.
    let longestRun = 0;
    let run = 0;
    let firstEmpty = 0;
    while (slots[4 * firstEmpty + 1] !== NO_TOKEN) firstEmpty++;
    for (let k = 1; k <= capacity; k++) {
      if (slots[4 * ((firstEmpty + k) & mask) + 1] === NO_TOKEN) run = 0;
      else if (++run > longestRun) longestRun = run;
    }

    this.byteIds = byteIds;
    this.pairIds = pairIds;
    this.longestToken = longestToken;
    this.longestProbe = longestRun + 1;
    this.slots = slots;
    this.mask = mask;
  }

  /** The slots and derived arrays, to write to a table file. */
  built(): TokenTableSlots {
    const { slots, byteIds, pairIds, longestToken, longestProbe } = this;
    return { slots, byteIds, pairIds, longestToken, longestProbe };
  }

  /**
   * The ordinary tokens' bytes, from which the WebAssembly encoder builds its own table: token `id` (below
   * `count`) is `bytes[offsets[id] … offsets[id + 1])`.
   */
  tokenBytes(): { readonly bytes: Uint8Array; readonly offsets: Uint32Array; readonly count: number } {
    return { bytes: this.bytes, offsets: this.offsets, count: this.ordinaryTokenCount };
  }

  /** The id of the token whose bytes are `source[start … end)`, or {@link NO_TOKEN}. */
  idOf(source: Uint8Array, start: number, end: number): number {
    const length = end - start;
    if (length > this.longestToken) return NO_TOKEN;
    return this.find(
      hashBytes(source, start, end),
      inlineWord(source, start, end),
      inlineWord(source, start + 4, end),
      source,
      start,
      length,
    );
  }

  /**
   * {@link idOf} for ASCII text: writes the char codes of `text.slice(start, end)` (each below 0x80) to
   * `bytes` from 0, and returns the id of the token with those bytes, or {@link NO_TOKEN}. One pass over
   * the text copies, hashes and takes the first 8 bytes (idOf reads a piece three times after its copy).
   */
  idOfAscii(text: string, start: number, end: number, bytes: Uint8Array): number {
    const length = end - start;
    let hash = 0x811c9dc5;
    let head = 0;
    let tail = 0;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(start + i);
      bytes[i] = code;
      hash = Math.imul(hash ^ code, 0x01000193);
      if (i < 4) head |= code << (8 * i);
      else if (i < INLINE_BYTES) tail |= code << (8 * (i - 4));
    }
    if (length > this.longestToken) return NO_TOKEN;
    return this.find(finishHash(hash), head, tail, bytes, 0, length);
  }

  /** The probe of {@link idOf}, given the bytes' hash and first 8 bytes as two words. */
  private find(
    hash: number,
    head: number,
    tail: number,
    source: Uint8Array,
    start: number,
    length: number,
  ): number {
    const { slots, mask } = this;
    const lengthField = (length <= MAX_SLOT_LENGTH ? length : 0) << ID_BITS;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const at = slot << 2;
      const held = slots[at + 1]!;
      if (held === NO_TOKEN) return NO_TOKEN;
      if (
        slots[at] !== hash ||
        (held & ~ID_MASK) !== lengthField ||
        slots[at + 2] !== head ||
        slots[at + 3] !== tail
      ) {
        continue;
      }
      const id = held & ID_MASK;
      if (length <= INLINE_BYTES || this.restEquals(id, source, start, length)) return id;
    }
  }

  /** Whether the token's bytes after the first 8 equal `source`'s, for a token of `length` bytes. */
  private restEquals(id: number, source: Uint8Array, start: number, length: number): boolean {
    const { bytes, offsets } = this;
    const tokenStart = offsets[id]!;
    if (offsets[id + 1]! - tokenStart !== length) return false;
    for (let i = INLINE_BYTES; i < length; i++) {
      if (bytes[tokenStart + i] !== source[start + i]) return false;
    }
    return true;
  }
}
