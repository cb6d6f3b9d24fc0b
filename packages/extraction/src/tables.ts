/**
 * Hash tables keyed on token tuples, with dense ids in insertion order. Keys are compared exactly, so
 * the tables never merge two different tuples, whatever the hash does.
 */

const DIRECT_LIMIT = 1 << 22;

/** 32-bit mix of one word into a running hash (MurmurHash3's body step). */
function mix(hash: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  hash ^= Math.imul(k, 0x1b873593);
  hash = (hash << 13) | (hash >>> 19);
  return (Math.imul(hash, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3's finalizer. */
function finish(hash: number): number {
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  return hash ^ (hash >>> 16);
}

/** Slots of an open-addressing table for the largest bucket: a power of two, at most half full. */
function bucketCapacity(largest: number): number {
  let capacity = 16;
  while (capacity < 2 * largest) capacity *= 2;
  return capacity;
}

/** Grows a typed array to hold at least `needed` elements, doubling. */
export function grown<T extends Uint32Array | Uint8Array | Int32Array | Float64Array>(
  array: T,
  needed: number,
): T {
  if (needed <= array.length) return array;
  let capacity = Math.max(16, array.length);
  while (capacity < needed) capacity *= 2;
  const next = new (array.constructor as new (length: number) => T)(capacity);
  next.set(array);
  return next;
}

/**
 * A set of fixed-width token tuples (`width` ≥ 0) mapping each to a dense id. Width 0 holds at most
 * one tuple, the empty one.
 */
export class TupleTable {
  readonly width: number;
  private data: Uint32Array;
  /** Two words a slot: the tuple's hash and its id + 1 (0 = empty), so most misses cost one line. */
  private slots: Int32Array;
  private mask: number;
  private count = 0;
  /** Width 1: id + 1 by token for tokens below DIRECT_LIMIT (vocabularies are far smaller). */
  private direct: Int32Array | null;

  constructor(width: number, initialCapacity = 1024) {
    if (!Number.isInteger(width) || width < 0 || width > 16) {
      throw new RangeError(`width: expected an integer from 0 to 16, got ${String(width)}`);
    }
    this.width = width;
    let capacity = 16;
    while (capacity < 2 * initialCapacity) capacity *= 2;
    this.slots = new Int32Array(2 * capacity);
    this.mask = capacity - 1;
    this.data = new Uint32Array(Math.max(1, initialCapacity * width));
    this.direct = width === 1 ? new Int32Array(1 << 16) : null;
  }

  get size(): number {
    return this.count;
  }

  private hashOf(source: ArrayLike<number>, start: number): number {
    let hash = 0x2f6b1d3a ^ this.width;
    for (let j = 0; j < this.width; j++) hash = mix(hash, source[start + j]!);
    return finish(hash);
  }

  private equals(id: number, source: ArrayLike<number>, start: number): boolean {
    const data = this.data;
    const base = id * this.width;
    for (let j = 0; j < this.width; j++) if (data[base + j] !== source[start + j]) return false;
    return true;
  }

  /** The id of the tuple `source[start .. start + width)`, or −1. */
  find(source: ArrayLike<number>, start: number): number {
    const direct = this.direct;
    if (direct !== null && source[start]! < DIRECT_LIMIT) {
      const token = source[start]!;
      return token < direct.length ? direct[token]! - 1 : -1;
    }
    const hash = this.hashOf(source, start);
    const slots = this.slots;
    let slot = hash & this.mask;
    for (;;) {
      const held = slots[2 * slot + 1]!;
      if (held === 0) return -1;
      if (slots[2 * slot] === hash && this.equals(held - 1, source, start)) return held - 1;
      slot = (slot + 1) & this.mask;
    }
  }

  /** The id of the tuple `source[start .. start + width)`, inserted if new (then id === size − 1). */
  insert(source: ArrayLike<number>, start: number): number {
    const direct = this.direct;
    if (direct !== null && source[start]! < DIRECT_LIMIT) {
      const token = source[start]!;
      if (token < direct.length && direct[token] !== 0) return direct[token]! - 1;
    }
    const hash = this.hashOf(source, start);
    const slots = this.slots;
    let slot = hash & this.mask;
    for (;;) {
      const held = slots[2 * slot + 1]!;
      if (held === 0) break;
      if (slots[2 * slot] === hash && this.equals(held - 1, source, start)) return held - 1;
      slot = (slot + 1) & this.mask;
    }
    const id = this.count++;
    if (this.count * this.width > this.data.length) this.data = grown(this.data, this.count * this.width);
    for (let j = 0; j < this.width; j++) this.data[id * this.width + j] = source[start + j]!;
    slots[2 * slot] = hash;
    slots[2 * slot + 1] = id + 1;
    if (this.count * 2 > this.mask + 1) this.rehash();
    if (direct !== null && source[start]! < DIRECT_LIMIT) {
      this.direct = grown(direct, source[start]! + 1);
      this.direct[source[start]!] = id + 1;
    }
    return id;
  }

  /** All tuples, `width` tokens each, in id order (a view: later inserts may overwrite it). */
  tuples(): Uint32Array {
    return this.data.subarray(0, this.count * this.width);
  }

  /** Doubles the table, visiting old slots in order (see {@link PairSet} for why). */
  private rehash(): void {
    const old = this.slots;
    const capacity = 2 * (this.mask + 1);
    const slots = new Int32Array(2 * capacity);
    const mask = capacity - 1;
    for (let from = 0; from < old.length; from += 2) {
      const held = old[from + 1]!;
      if (held === 0) continue;
      const hash = old[from]!;
      let slot = hash & mask;
      while (slots[2 * slot + 1] !== 0) slot = (slot + 1) & mask;
      slots[2 * slot] = hash;
      slots[2 * slot + 1] = held;
    }
    this.slots = slots;
    this.mask = mask;
  }
}

/**
 * Linear probing from `slot` in a table of (tag, b) slots (tag 0: empty), `mask` + 1 of them: puts the
 * pair in the first empty slot and returns true, or returns false where the pair is held already.
 */
function insertPair(slots: Uint32Array, slot: number, mask: number, tag: number, b: number): boolean {
  for (;;) {
    const at = slot << 1;
    const held = slots[at]!;
    if (held === 0) {
      slots[at] = tag;
      slots[at + 1] = b;
      return true;
    }
    if (held === tag && slots[at + 1] === b) return false;
    slot = (slot + 1) & mask;
  }
}

/**
 * A set of (a, b) pairs with a < 2^32 − 1 and b < 2^32: 8-byte slots (a + 1, b), 0 marking an empty
 * slot. On a corpus-sized set nearly every lookup is a cache miss, so the slot is kept as small as
 * the key, and the table half full at most.
 */
export class PairSet {
  private slots: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(initialCapacity = 1024) {
    let capacity = 16;
    while (capacity < 2 * initialCapacity) capacity *= 2;
    this.slots = new Uint32Array(2 * capacity);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  private static hashOf(a: number, b: number): number {
    return finish(mix(mix(0x5bd1e995, a), b));
  }

  /** True when (a, b) is in the set. */
  has(a: number, b: number): boolean {
    const tag = (a + 1) >>> 0;
    b >>>= 0;
    const slots = this.slots;
    let slot = PairSet.hashOf(a >>> 0, b) & this.mask;
    for (;;) {
      const held = slots[slot << 1]!;
      if (held === 0) return false;
      if (held === tag && slots[(slot << 1) + 1] === b) return true;
      slot = (slot + 1) & this.mask;
    }
  }

  /** Adds (a, b); true when it was not there yet. */
  add(a: number, b: number): boolean {
    if (a >>> 0 === 0xffffffff) throw new RangeError('a: expected a value below 2^32 − 1');
    const tag = (a + 1) >>> 0;
    b >>>= 0;
    if (!insertPair(this.slots, PairSet.hashOf(a >>> 0, b) & this.mask, this.mask, tag, b)) return false;
    if (++this.count * 2 > this.mask + 1) this.rehash();
    return true;
  }

  /**
   * Doubles the table. Old slots are visited in order, so the writes go to two regions that advance
   * together (an entry lands near its old home or one old capacity further): far fewer cache misses
   * than reinserting in any other order.
   */
  private rehash(): void {
    const old = this.slots;
    const capacity = 2 * (this.mask + 1);
    const slots = new Uint32Array(2 * capacity);
    const mask = capacity - 1;
    for (let from = 0; from < old.length; from += 2) {
      const tag = old[from]!;
      if (tag === 0) continue;
      const b = old[from + 1]!;
      let slot = PairSet.hashOf((tag - 1) >>> 0, b) & mask;
      while (slots[slot << 1] !== 0) slot = (slot + 1) & mask;
      slots[slot << 1] = tag;
      slots[(slot << 1) + 1] = b;
    }
    this.slots = slots;
    this.mask = mask;
  }
}

/** Top bits of a pair's hash by which a batch is ordered before it goes into a {@link SweptPairSet}. */
const SWEEP_BITS = 16;

/**
 * A set of (a, b) pairs (a < 2^32 − 1) filled a batch at a time: {@link addBatch} marks which pairs of
 * the batch occur for the first time, against the set and the batch's earlier pairs, as
 * {@link PairSet.add} on each in turn would. A pair's slot is the top bits of its hash, and a batch is
 * inserted in the order of those bits (a stable counting sort), so the inserts sweep the table from
 * one end to the other: on a corpus-sized set, inserting in the batch's own order misses in cache and
 * in the TLB on nearly every pair.
 */
export class SweptPairSet {
  /** Two words a slot: a + 1 (0: empty) and b. */
  private slots: Uint32Array;
  /** The table has 2^bits slots. */
  private bits: number;
  private count = 0;
  private hashes = new Int32Array(0);
  private order = new Uint32Array(0);
  private starts = new Uint32Array(0);

  constructor(initialCapacity = 1024) {
    let bits = 4;
    while (1 << bits < 2 * initialCapacity) bits++;
    this.bits = bits;
    this.slots = new Uint32Array(2 << bits);
  }

  get size(): number {
    return this.count;
  }

  /**
   * For i < count in order: first[i] = 1 when (a[i], b[i]) is neither in the set nor earlier in the
   * batch, else 0; the batch's pairs are in the set afterwards.
   */
  addBatch(a: Uint32Array, b: Uint32Array, count: number, first: Uint8Array): void {
    if (this.hashes.length < count) {
      this.hashes = new Int32Array(count);
      this.order = new Uint32Array(count);
    }
    // One loop a function here and below: V8 compiles a long loop while it runs, and code after it
    // that has not run yet would throw that code away at every batch.
    // Fewer buckets for a small batch (a few per pair at most): the order is by fewer top bits, still a sweep.
    let bits = 1;
    while (bits < SWEEP_BITS && 1 << bits < count) bits++;
    if (this.starts.length < (1 << bits) + 1) this.starts = new Uint32Array((1 << bits) + 1);
    hashPairs(a, b, count, this.hashes, this.starts, bits);
    sumBuckets(this.starts, bits);
    bucketOrder(this.hashes, count, this.starts, this.order, bits);
    // A table at least four times the batch: the pairs swept so far all have slots in the low part of
    // the table, and a batch much larger than the table packs them there into one run that each later
    // insert probes to its end, doubling or not (195,000 pairs into 4,096 slots took 1.1 s; 0.05 s one
    // pair at a time). With a quarter, the swept part is at most three quarters full.
    while (count * 4 > 2 ** this.bits) this.grow();
    // Equal pairs have equal hashes, so they keep their batch order: the earliest is the first.
    this.insertInOrder(a, b, count, first);
  }

  /** Inserts the batch in the order `order` holds; `first` as {@link addBatch} says. */
  private insertInOrder(a: Uint32Array, b: Uint32Array, count: number, first: Uint8Array): void {
    const { hashes, order } = this;
    for (let k = 0; k < count; k++) {
      const i = order[k]!;
      first[i] = this.insert(hashes[i]!, a[i]! + 1, b[i]!) ? 1 : 0;
    }
  }

  /** Inserts the pair (tag − 1, b) of hash `hash`; true when it was not there. */
  private insert(hash: number, tag: number, b: number): boolean {
    const mask = (1 << this.bits) - 1;
    if (!insertPair(this.slots, hash >>> (32 - this.bits), mask, tag, b)) return false;
    if (++this.count * 2 > mask + 1) this.grow();
    return true;
  }

  /**
   * Makes room for `pairs` more pairs at once (a table at most half full): when their number is known
   * ahead, the table is made at its final size instead of doubling its way there (each doubling
   * rehashes every pair into new memory).
   */
  reserve(pairs: number): void {
    let bits = this.bits;
    while ((this.count + pairs) * 2 > 2 ** bits && bits < 30) bits++;
    if (bits > this.bits) this.grow(bits - this.bits);
  }

  /**
   * Doubles the table (`times` times over in one pass). A pair's slot gains bits of its hash, so the old
   * slots, read in order, land in order: a sweep, as a batch is.
   */
  private grow(times = 1): void {
    const old = this.slots;
    this.bits += times;
    const slots = new Uint32Array(2 << this.bits);
    const mask = (1 << this.bits) - 1;
    for (let from = 0; from < old.length; from += 2) {
      const tag = old[from]!;
      if (tag === 0) continue;
      const b = old[from + 1]!;
      let slot = finish(mix(mix(0x5bd1e995, tag - 1), b)) >>> (32 - this.bits);
      while (slots[slot << 1] !== 0) slot = (slot + 1) & mask;
      slots[slot << 1] = tag;
      slots[(slot << 1) + 1] = b;
    }
    this.slots = slots;
  }
}

/**
 * The pairs' hashes (as {@link SweptPairSet} places them), and how many fall in each of the 2^bits buckets
 * of their top bits (at bucket + 1).
 */
function hashPairs(
  a: Uint32Array,
  b: Uint32Array,
  count: number,
  hashes: Int32Array,
  starts: Uint32Array,
  bits: number,
): void {
  starts.fill(0, 0, (1 << bits) + 1);
  for (let i = 0; i < count; i++) {
    if (a[i] === 0xffffffff) throw new RangeError('a: expected a value below 2^32 − 1');
    const hash = finish(mix(mix(0x5bd1e995, a[i]!), b[i]!));
    hashes[i] = hash;
    starts[(hash >>> (32 - bits)) + 1]!++;
  }
}

/** Bucket counts (at + 1) to bucket starts, for 2^bits buckets. */
function sumBuckets(starts: Uint32Array, bits: number): void {
  for (let bucket = 1; bucket <= 1 << bits; bucket++) starts[bucket]! += starts[bucket - 1]!;
}

/** The indices by bucket, stably (a counting sort); moves each bucket's start to its end. */
function bucketOrder(
  hashes: Int32Array,
  count: number,
  starts: Uint32Array,
  order: Uint32Array,
  bits: number,
): void {
  for (let i = 0; i < count; i++) order[starts[hashes[i]! >>> (32 - bits)]!++] = i;
}

/**
 * True when the 64-bit values `words` holds as word pairs are all distinct: (high, low) pairs, or
 * (low, high) with `highAt` 1 (WebAssembly's little-endian i64). Reorders the pairs: they are bucketed
 * by the top 8 bits in place (an American flag sort), then each bucket is checked in a small table that
 * stays in cache. A corpus' worth of window seeds costs two passes instead of a cache miss each, and no
 * memory the size of the input (each 4 KB page of which costs a fault when first written).
 */
export function allDistinct64(words: Uint32Array, highAt: 0 | 1 = 0): boolean {
  const n = words.length >>> 1;
  const lowAt = 1 - highAt;
  const starts = new Uint32Array(257);
  for (let i = 0; i < n; i++) starts[(words[2 * i + highAt]! >>> 24) + 1]!++;
  let largest = 0;
  for (let b = 0; b < 256; b++) {
    largest = Math.max(largest, starts[b + 1]!);
    starts[b + 1] = starts[b + 1]! + starts[b]!;
  }
  // Each pair goes to the next free place of its bucket, displacing the pair there, which goes on to
  // its own bucket in turn, until a pair of the bucket being filled comes back.
  const next = starts.slice(0, 256);
  for (let b = 0; b < 256; b++) {
    const end = starts[b + 1]!;
    for (let at = next[b]!; at < end; at = next[b]!) {
      let x = words[2 * at]!;
      let y = words[2 * at + 1]!;
      let bucket = (highAt === 0 ? x : y) >>> 24;
      while (bucket !== b) {
        const to = next[bucket]!++;
        const u = words[2 * to]!;
        const v = words[2 * to + 1]!;
        words[2 * to] = x;
        words[2 * to + 1] = y;
        x = u;
        y = v;
        bucket = (highAt === 0 ? x : y) >>> 24;
      }
      words[2 * at] = x;
      words[2 * at + 1] = y;
      next[b] = at + 1;
    }
  }
  const capacity = bucketCapacity(largest);
  const mask = capacity - 1;
  const slots = new Uint32Array(2 * capacity);
  // The bucket that last wrote each slot (+ 1): no clearing between buckets.
  const owner = new Uint16Array(capacity);
  for (let b = 0; b < 256; b++) {
    const stamp = b + 1;
    for (let at = starts[b]!; at < starts[b + 1]!; at++) {
      const high = words[2 * at + highAt]!;
      const low = words[2 * at + lowAt]!;
      let slot = finish(mix(low, high)) & mask;
      while (owner[slot] === stamp) {
        if (slots[2 * slot] === high && slots[2 * slot + 1] === low) return false;
        slot = (slot + 1) & mask;
      }
      owner[slot] = stamp;
      slots[2 * slot] = high;
      slots[2 * slot + 1] = low;
    }
  }
  return true;
}

/** The hash of the tuple `source[start .. start + width)` (the one {@link TupleTable} uses). */
export function tupleHash(source: Uint32Array, start: number, width: number): number {
  let hash = 0x2f6b1d3a ^ width;
  for (let j = 0; j < width; j++) hash = mix(hash, source[start + j]!);
  return finish(hash);
}

/**
 * Dense ids in order of first occurrence for `count` tuples of `width` tokens, tuple k being
 * `source[ends[k] − width .. ends[k])` (`ends` null: the tuples lie one after another, tuple k at
 * `source[k · width … (k + 1) · width)`) with hash `hashes[k]`: writes `ids[k]` and returns the number
 * of distinct tuples. Tuples are compared exactly. `ids` may share memory with `hashes` (every hash is
 * read before any id is written).
 *
 * The same answer as inserting the tuples one by one into a {@link TupleTable}, without its
 * corpus-sized table: (hash, k) entries are bucketed by the top bits of the hash (a stable counting
 * sort, so each bucket keeps corpus order), and each bucket is deduplicated in a small table that
 * stays in cache; tuples of equal hash are compared in `source`. Only repeats are written back; a
 * last pass in corpus order numbers the first occurrences. `scratch` (optional): two arrays of at
 * least `count` entries each that the bucketed entries may be written to (their content is lost), in
 * place of new ones, and with `ends` a third for where the bucketed tuples start.
 */
export function tupleIdsInOrder(
  source: Uint32Array,
  ends: Uint32Array | null,
  hashes: Int32Array,
  count: number,
  width: number,
  ids: Uint32Array,
  scratch: readonly [Uint32Array, Uint32Array, Uint32Array?] | null = null,
): number {
  let bits = 0;
  while (bits < 16 && count >>> bits > 4096) bits++;
  const buckets = 1 << bits;
  // bits = 0: one bucket (a shift by 32 would shift by 0).
  const shift = bits === 0 ? 31 : 32 - bits;
  const keep = bits === 0 ? 0 : 0xffffffff;
  const bucketStarts = new Uint32Array(buckets + 1);
  for (let k = 0; k < count; k++) bucketStarts[((hashes[k]! >>> shift) & keep) + 1]!++;
  let largest = 0;
  for (let b = 0; b < buckets; b++) {
    largest = Math.max(largest, bucketStarts[b + 1]!);
    bucketStarts[b + 1] = bucketStarts[b + 1]! + bucketStarts[b]!;
  }
  // (hash, k) by bucket. Not the tuples too: with them this was 6 words a position at width 4 (82 MB
  // for 3.4 M positions, each page a fault when first touched), and the tuples are read only where
  // two hashes are equal, nearly always a repeat.
  const usable = scratch !== null && scratch[0].length >= count && scratch[1].length >= count;
  const bucketHash = usable
    ? new Int32Array(scratch[0].buffer, scratch[0].byteOffset, count)
    : new Int32Array(count);
  const bucketIndex = usable ? scratch[1] : new Uint32Array(count);
  // With `ends`, where each bucketed tuple starts in `source`, beside its index: a comparison then reads
  // the two tuples and nothing else at random (looking `ends` up there too took four cache misses, not
  // two: 260 → 170 ms for 3.2 M windows of 3 tokens, 150 → 120 ms at 4).
  const third = scratch?.[2];
  const bucketStart =
    ends === null ? null : third !== undefined && third.length >= count ? third : new Uint32Array(count);
  const next = bucketStarts.slice(0, buckets);
  for (let k = 0; k < count; k++) {
    const hash = hashes[k]!;
    const at = next[(hash >>> shift) & keep]!++;
    bucketHash[at] = hash;
    bucketIndex[at] = k;
    if (bucketStart !== null) bucketStart[at] = ends![k]! - width;
  }
  ids.fill(0xffffffff, 0, count);
  // Per slot: the bucketed place of a first occurrence + 1 (0: empty), cleared per bucket.
  const slots = new Uint32Array(bucketCapacity(largest));
  const mask = slots.length - 1;
  for (let b = 0; b < buckets; b++) {
    if (b > 0) slots.fill(0);
    for (let at = bucketStarts[b]!; at < bucketStarts[b + 1]!; at++) {
      const hash = bucketHash[at]!;
      const k = bucketIndex[at]!;
      let slot = hash & mask;
      for (;;) {
        const held = slots[slot]!;
        if (held === 0) {
          slots[slot] = at + 1;
          break;
        }
        const other = held - 1;
        if (bucketHash[other] === hash) {
          const mine = bucketStart === null ? k * width : bucketStart[at]!;
          const theirs = bucketStart === null ? bucketIndex[other]! * width : bucketStart[other]!;
          let j = 0;
          while (j < width && source[theirs + j] === source[mine + j]) j++;
          if (j === width) {
            ids[k] = bucketIndex[other]!;
            break;
          }
        }
        slot = (slot + 1) & mask;
      }
    }
  }
  // In corpus order: a first occurrence (still 0xffffffff) takes the next id, a repeat its first's
  // id (already rewritten, since it comes earlier).
  let distinct = 0;
  for (let k = 0; k < count; k++) {
    const first = ids[k]!;
    ids[k] = first === 0xffffffff ? distinct++ : ids[first]!;
  }
  return distinct;
}

/**
 * Which of the pairs (a[i], b[i]), i < count, occur for the first time at i: `first[i]` is 1 there
 * and 0 at every repeat. The same answer as adding the pairs to a {@link PairSet} in turn, without
 * its corpus-sized table: the pairs are bucketed by the top bits of their hash (a stable counting
 * sort, so each bucket keeps their order), and each bucket is deduplicated in a small table that
 * stays in cache. `scratch` (optional): three arrays of at least `count` entries each that the
 * bucketed pairs may be written to (their content is lost), in place of new ones.
 */
export function firstOccurrences(
  a: Uint32Array,
  b: Uint32Array,
  count: number,
  scratch: readonly Uint32Array[] | null = null,
): Uint8Array {
  let bits = 0;
  while (bits < 16 && count >>> bits > 4096) bits++;
  const buckets = 1 << bits;
  // bits = 0: one bucket (a shift by 32 would shift by 0).
  const shift = bits === 0 ? 31 : 32 - bits;
  const keep = bits === 0 ? 0 : 0xffffffff;
  // The hashes are computed again where they are needed rather than kept (4 bytes a pair, each page of
  // which costs a fault when first written).
  const bucketStarts = new Uint32Array(buckets + 1);
  for (let i = 0; i < count; i++) {
    bucketStarts[((finish(mix(mix(0x5bd1e995, a[i]!), b[i]!)) >>> shift) & keep) + 1]!++;
  }
  let largest = 0;
  for (let bucket = 0; bucket < buckets; bucket++) {
    largest = Math.max(largest, bucketStarts[bucket + 1]!);
    bucketStarts[bucket + 1] = bucketStarts[bucket + 1]! + bucketStarts[bucket]!;
  }
  // (a, b, i) by bucket, in three arrays (a bucket's entries stay in cache while it is deduplicated).
  const usable = scratch !== null && scratch.length >= 3 && scratch.every((array) => array.length >= count);
  const bucketA = usable ? scratch[0]! : new Uint32Array(count);
  const bucketB = usable ? scratch[1]! : new Uint32Array(count);
  const bucketIndex = usable ? scratch[2]! : new Uint32Array(count);
  const next = bucketStarts.slice(0, buckets);
  for (let i = 0; i < count; i++) {
    const pairA = a[i]!;
    const pairB = b[i]!;
    const at = next[(finish(mix(mix(0x5bd1e995, pairA), pairB)) >>> shift) & keep]!++;
    bucketA[at] = pairA;
    bucketB[at] = pairB;
    bucketIndex[at] = i;
  }
  const first = new Uint8Array(count);
  // Per slot: the bucketed place of a first occurrence + 1 (0: empty), cleared per bucket.
  const slots = new Uint32Array(bucketCapacity(largest));
  const mask = slots.length - 1;
  for (let bucket = 0; bucket < buckets; bucket++) {
    if (bucket > 0) slots.fill(0);
    for (let at = bucketStarts[bucket]!; at < bucketStarts[bucket + 1]!; at++) {
      const pairA = bucketA[at]!;
      const pairB = bucketB[at]!;
      // Within a bucket the top bits agree: the low bits place the pair (the hash again: reading
      // it back by index would miss in cache).
      let slot = finish(mix(mix(0x5bd1e995, pairA), pairB)) & mask;
      for (;;) {
        const held = slots[slot]!;
        if (held === 0) {
          slots[slot] = at + 1;
          first[bucketIndex[at]!] = 1;
          break;
        }
        if (bucketA[held - 1] === pairA && bucketB[held - 1] === pairB) break;
        slot = (slot + 1) & mask;
      }
    }
  }
  return first;
}
