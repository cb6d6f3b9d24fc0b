import { NO_TOKEN, type TokenTable } from './token-table.js';

/**
 * tiktoken's byte-pair merge of one piece: start from single bytes, then repeatedly merge the adjacent pair
 * of parts whose concatenation is the token of lowest rank (id), the leftmost such pair on ties, until no
 * adjacent pair is a token. Writes the ids of the final parts to `out` from `outPosition` (`out` must have
 * room for `length` more ids) and returns the position after the last.
 *
 * The whole-piece lookup that tiktoken does first is the caller's (encodePieceBytes).
 */
export type ByteMerge = (
  bytes: Uint8Array,
  length: number,
  table: TokenTable,
  out: Uint32Array,
  outPosition: number,
) => number;

const NO_RANK = 0x7fffffff;

let scratchStarts = new Int32Array(257);
let scratchRanks = new Int32Array(257);
let scratchIds = new Int32Array(257);

// Every part is a token (a single byte, or a pair whose bytes are a token), so a pair's rank is the id of
// its bytes; the ids of the parts are tracked, not looked up again at the end.
function rankOf(table: TokenTable, bytes: Uint8Array, start: number, end: number): number {
  const id = table.idOf(bytes, start, end);
  return id === NO_TOKEN ? NO_RANK : id;
}

function byteRank(table: TokenTable, bytes: Uint8Array, at: number): number {
  const id = table.pairIds[(bytes[at]! << 8) | bytes[at + 1]!]!;
  return id === NO_TOKEN ? NO_RANK : id;
}

/**
 * The merge on arrays, as tiktoken's reference implementation does it: O(length²) lookups, fastest for the
 * short pieces of ordinary text. Use {@link mergeWithHeap} for long pieces.
 */
export const mergeOnArrays: ByteMerge = (bytes, length, table, out, outPosition) => {
  if (scratchStarts.length <= length) {
    const capacity = Math.max(length + 1, scratchStarts.length * 2);
    scratchStarts = new Int32Array(capacity);
    scratchRanks = new Int32Array(capacity);
    scratchIds = new Int32Array(capacity);
  }
  // Part i is token ids[i], bytes[starts[i] … starts[i + 1]); ranks[i] is the rank of parts i and i + 1 merged.
  const starts = scratchStarts;
  const ranks = scratchRanks;
  const ids = scratchIds;
  const { byteIds } = table;
  for (let i = 0; i < length; i++) {
    starts[i] = i;
    ids[i] = byteIds[bytes[i]!]!;
    ranks[i] = i + 1 < length ? byteRank(table, bytes, i) : NO_RANK;
  }
  starts[length] = length;
  let parts = length;
  while (parts > 1) {
    let best = 0;
    let bestRank = ranks[0]!;
    for (let i = 1; i < parts - 1; i++) {
      if (ranks[i]! < bestRank) {
        bestRank = ranks[i]!;
        best = i;
      }
    }
    if (bestRank === NO_RANK) break;
    // Parts best and best + 1 become token bestRank: drop entry best + 1 of each array.
    parts--;
    ids[best] = bestRank;
    for (let i = best + 1; i < parts; i++) {
      starts[i] = starts[i + 1]!;
      ids[i] = ids[i + 1]!;
      ranks[i] = ranks[i + 1]!;
    }
    starts[parts] = length;
    ranks[best] = best + 1 < parts ? rankOf(table, bytes, starts[best]!, starts[best + 2]!) : NO_RANK;
    if (best > 0) ranks[best - 1] = rankOf(table, bytes, starts[best - 1]!, starts[best + 1]!);
  }
  for (let i = 0; i < parts; i++) out[outPosition++] = ids[i]!;
  return outPosition;
};

// Heap keys are rank · 2³² + start: exact in a float64 since ranks are below 2²¹ (MAX_ORDINARY_TOKENS) and
// a piece of a JavaScript string has fewer than 2³¹ bytes (at most 3 per UTF-16 unit, and under 2²⁹ units),
// which `| 0` on the start read back relies on.
const KEY_RANK_UNIT = 2 ** 32;

/**
 * The same merge in O(length · log length) for any input. Parts form a doubly linked list indexed by their
 * first byte. A 4-ary min-heap (half the depth of a binary one) holds keys (rank of a part merged with the
 * next, start of the part), so its top is the lowest-rank pair, leftmost on ties. A merge changes two pairs:
 * their new keys are pushed and the old ones left behind, recognized as stale when popped (a pair's bytes
 * only grow, so its rank never takes an earlier value again). At most 3 · length keys are ever pushed.
 * No recursion; memory is 40 bytes per byte of the piece.
 */
export const mergeWithHeap: ByteMerge = (bytes, length, table, out, outPosition) => {
  const id = new Int32Array(length); // token of the part starting here
  const next = new Int32Array(length); // start of the following part (length after the last)
  const previous = new Int32Array(length); // start of the preceding part (−1 before the first)
  const rank = new Int32Array(length); // rank of this part merged with the next; NO_RANK if none or merged away
  const heap = new Float64Array(3 * length);
  let size = 0;

  const push = (key: number): void => {
    let index = size++;
    while (index > 0) {
      const parent = (index - 1) >> 2;
      const parentKey = heap[parent]!;
      if (parentKey <= key) break;
      heap[index] = parentKey;
      index = parent;
    }
    heap[index] = key;
  };

  const { byteIds } = table;
  for (let start = 0; start < length; start++) {
    id[start] = byteIds[bytes[start]!]!;
    next[start] = start + 1;
    previous[start] = start - 1;
    const pair = start + 1 < length ? byteRank(table, bytes, start) : NO_RANK;
    rank[start] = pair;
    if (pair !== NO_RANK) push(pair * KEY_RANK_UNIT + start);
  }

  while (size > 0) {
    const top = heap[0]!;
    // Pop: move the last key down from the root.
    const last = heap[--size]!;
    let index = 0;
    for (;;) {
      const first = 4 * index + 1;
      if (first >= size) break;
      let child = first;
      let childKey = heap[first]!;
      const stop = Math.min(first + 4, size);
      for (let other = first + 1; other < stop; other++) {
        if (heap[other]! < childKey) {
          child = other;
          childKey = heap[other]!;
        }
      }
      if (last <= childKey) break;
      heap[index] = childKey;
      index = child;
    }
    heap[index] = last;

    // | 0: both are integers below 2^31, and callees compiled for small integers stay so (a double here
    // deoptimized rankOf and everything it inlines)
    const merged = Math.floor(top / KEY_RANK_UNIT) | 0;
    const start = (top - merged * KEY_RANK_UNIT) | 0;
    if (rank[start] !== merged) continue; // stale
    const middle = next[start]!;
    const end = next[middle]!;
    id[start] = merged;
    rank[middle] = NO_RANK;
    next[start] = end;
    if (end < length) {
      previous[end] = start;
      const pair = rankOf(table, bytes, start, next[end]!);
      rank[start] = pair;
      if (pair !== NO_RANK) push(pair * KEY_RANK_UNIT + start);
    } else {
      rank[start] = NO_RANK;
    }
    const before = previous[start]!;
    if (before >= 0) {
      const pair = rankOf(table, bytes, before, end);
      rank[before] = pair;
      if (pair !== NO_RANK) push(pair * KEY_RANK_UNIT + before);
    }
  }

  for (let start = 0; start < length; start = next[start]!) out[outPosition++] = id[start]!;
  return outPosition;
};
