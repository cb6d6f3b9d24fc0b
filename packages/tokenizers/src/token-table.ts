import type { ByteTable } from './byte-table.js';

/** Returned by {@link TokenTable.idOf} for bytes that are no token. */
export const NO_TOKEN = -1;
/** The merge's heap keys hold a rank in 21 bits. */
export const MAX_ORDINARY_TOKENS: number = 2 ** 21;

/** FNV-1a over the bytes, then murmur3's finalizer so that the low bits used as the slot are mixed. */
function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return hash ^ (hash >>> 16);
}

/**
 * The ordinary tokens `0 … ordinaryTokenCount − 1` of a byte table (special tokens excluded), found by their
 * bytes in an open-addressing hash table. Hashing a piece's UTF-8 bytes is faster in V8 than looking the
 * piece's text up in a Map or an object (a fresh string must be hashed and compared there too).
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
  private readonly slotIds: Int32Array;
  private readonly slotHashes: Int32Array;
  private readonly mask: number;

  constructor(table: ByteTable, ordinaryTokenCount: number) {
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
    const slotIds = new Int32Array(capacity).fill(NO_TOKEN);
    const slotHashes = new Int32Array(capacity);
    const byteIds = new Int32Array(256).fill(NO_TOKEN);
    const pairIds = new Int32Array(1 << 16).fill(NO_TOKEN);

    for (let id = 0; id < ordinaryTokenCount; id++) {
      const start = offsets[id]!;
      const end = offsets[id + 1]!;
      if (start === end) continue;
      const hash = hashBytes(bytes, start, end);
      let slot = hash & mask;
      while (slotIds[slot] !== NO_TOKEN) slot = (slot + 1) & mask;
      slotIds[slot] = id;
      slotHashes[slot] = hash;
      if (end - start === 1) byteIds[bytes[start]!] = id;
      if (end - start === 2) pairIds[(bytes[start]! << 8) | bytes[start + 1]!] = id;
    }
    for (let byte = 0; byte < 256; byte++) {
      if (byteIds[byte] === NO_TOKEN) throw new Error(`the rank file has no token for the byte ${byte}`);
    }

    // A lookup stops at the first empty slot, so it probes at most the longest run of full slots plus one.
    let longestRun = 0;
    let run = 0;
    let firstEmpty = 0;
    while (slotIds[firstEmpty] !== NO_TOKEN) firstEmpty++;
    for (let k = 1; k <= capacity; k++) {
      if (slotIds[(firstEmpty + k) & mask] === NO_TOKEN) run = 0;
      else if (++run > longestRun) longestRun = run;
    }

    this.byteIds = byteIds;
    this.pairIds = pairIds;
    this.longestToken = longestToken;
    this.longestProbe = longestRun + 1;
    this.bytes = bytes;
    this.offsets = offsets;
    this.slotIds = slotIds;
    this.slotHashes = slotHashes;
    this.mask = mask;
  }

  /** The id of the token whose bytes are `source[start … end)`, or {@link NO_TOKEN}. */
  idOf(source: Uint8Array, start: number, end: number): number {
    const length = end - start;
    if (length > this.longestToken) return NO_TOKEN;
    const { bytes, offsets, slotIds, slotHashes, mask } = this;
    const hash = hashBytes(source, start, end);
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const id = slotIds[slot]!;
      if (id === NO_TOKEN) return NO_TOKEN;
      if (slotHashes[slot] !== hash) continue;
      const tokenStart = offsets[id]!;
      if (offsets[id + 1]! - tokenStart !== length) continue;
      let equal = true;
      for (let i = 0; i < length; i++) {
        if (bytes[tokenStart + i] !== source[start + i]) {
          equal = false;
          break;
        }
      }
      if (equal) return id;
    }
  }
}
