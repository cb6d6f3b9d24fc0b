/**
 * Hash tables keyed on token tuples, with dense ids in insertion order. Keys are compared exactly, so
 * the tables never merge two different tuples, whatever the hash does.
 */

const EMPTY = -1;
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

/** Grows a typed array to hold at least `needed` elements, doubling. */
export function grown<T extends Uint32Array | Uint8Array | Int32Array>(array: T, needed: number): T {
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
  private hashes: Int32Array;
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
    this.slots = new Int32Array(capacity).fill(EMPTY);
    this.mask = capacity - 1;
    this.data = new Uint32Array(Math.max(1, initialCapacity * width));
    this.hashes = new Int32Array(initialCapacity);
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
    let slot = hash & this.mask;
    for (;;) {
      const id = this.slots[slot]!;
      if (id === EMPTY) return -1;
      if (this.hashes[id] === hash && this.equals(id, source, start)) return id;
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
    let slot = hash & this.mask;
    for (;;) {
      const id = this.slots[slot]!;
      if (id === EMPTY) break;
      if (this.hashes[id] === hash && this.equals(id, source, start)) return id;
      slot = (slot + 1) & this.mask;
    }
    const id = this.count++;
    this.data = grown(this.data, this.count * this.width);
    this.hashes = grown(this.hashes, this.count);
    for (let j = 0; j < this.width; j++) this.data[id * this.width + j] = source[start + j]!;
    this.hashes[id] = hash;
    this.slots[slot] = id;
    if (this.count * 2 > this.slots.length) this.rehash();
    if (direct !== null && source[start]! < DIRECT_LIMIT) {
      this.direct = grown(direct, source[start]! + 1);
      this.direct[source[start]!] = id + 1;
    }
    return id;
  }

  /** All tuples, `width` tokens each, in id order (a copy). */
  tuples(): Uint32Array {
    return this.data.slice(0, this.count * this.width);
  }

  private rehash(): void {
    const capacity = this.slots.length * 2;
    this.slots = new Int32Array(capacity).fill(EMPTY);
    this.mask = capacity - 1;
    for (let id = 0; id < this.count; id++) {
      let slot = this.hashes[id]! & this.mask;
      while (this.slots[slot] !== EMPTY) slot = (slot + 1) & this.mask;
      this.slots[slot] = id;
    }
  }
}

/**
 * A set of (a, b) pairs of 32-bit unsigned integers mapping each to a dense id, with a few flag bits
 * per pair. Each slot holds the key inline (a, b, id + 1, flags), so a lookup and its flags touch
 * one cache line: on a corpus-sized table every other access is a cache miss.
 */
export class PairTable {
  private first: Uint32Array;
  private second: Uint32Array;
  private slots: Uint32Array;
  private mask: number;
  private count = 0;
  /** Word index of the slot of the last pair inserted or found. */
  lastSlot = 0;

  constructor(initialCapacity = 1024) {
    let capacity = 16;
    while (capacity < 2 * initialCapacity) capacity *= 2;
    this.slots = new Uint32Array(4 * capacity);
    this.mask = capacity - 1;
    this.first = new Uint32Array(initialCapacity);
    this.second = new Uint32Array(initialCapacity);
  }

  get size(): number {
    return this.count;
  }

  private static hashOf(a: number, b: number): number {
    return finish(mix(mix(0x5bd1e995, a), b));
  }

  /** The id of (a, b), or −1. */
  find(a: number, b: number): number {
    a >>>= 0;
    b >>>= 0;
    const slots = this.slots;
    let slot = PairTable.hashOf(a, b) & this.mask;
    for (;;) {
      const at = slot << 2;
      const held = slots[at + 2]!;
      if (held === 0) return -1;
      if (slots[at] === a && slots[at + 1] === b) {
        this.lastSlot = at;
        return held - 1;
      }
      slot = (slot + 1) & this.mask;
    }
  }

  /** The id of (a, b), inserted if new (then id === size − 1); `lastSlot` points at its slot. */
  insert(a: number, b: number): number {
    a >>>= 0;
    b >>>= 0;
    const slots = this.slots;
    let slot = PairTable.hashOf(a, b) & this.mask;
    for (;;) {
      const at = slot << 2;
      const held = slots[at + 2]!;
      if (held === 0) break;
      if (slots[at] === a && slots[at + 1] === b) {
        this.lastSlot = at;
        return held - 1;
      }
      slot = (slot + 1) & this.mask;
    }
    const id = this.count++;
    const at = slot << 2;
    slots[at] = a;
    slots[at + 1] = b;
    slots[at + 2] = id + 1;
    this.lastSlot = at;
    if (id >= this.first.length) {
      this.first = grown(this.first, id + 1);
      this.second = grown(this.second, id + 1);
    }
    this.first[id] = a;
    this.second[id] = b;
    if (this.count * 2 > this.mask + 1) {
      this.rehash();
      this.find(a, b);
    }
    return id;
  }

  /** Flags of the pair at `lastSlot`. */
  get lastFlags(): number {
    return this.slots[this.lastSlot + 3]!;
  }

  /** Sets flag bits of the pair at `lastSlot`. */
  addFlags(flags: number): void {
    this.slots[this.lastSlot + 3] = this.slots[this.lastSlot + 3]! | flags;
  }

  /** Flags of every pair, by id. */
  flagsById(): Uint8Array {
    const flags = new Uint8Array(this.count);
    const slots = this.slots;
    for (let at = 0; at < slots.length; at += 4)
      if (slots[at + 2] !== 0) flags[slots[at + 2]! - 1] = slots[at + 3]!;
    return flags;
  }

  firstOf(id: number): number {
    return this.first[id]!;
  }

  secondOf(id: number): number {
    return this.second[id]!;
  }

  /**
   * Doubles the table. Old slots are visited in order, so the writes go to two regions that advance
   * together (a slot's entries land near s or s + old capacity): far fewer cache misses than
   * reinserting by id, whose slots are random.
   */
  private rehash(): void {
    const old = this.slots;
    const capacity = 2 * (this.mask + 1);
    const slots = new Uint32Array(4 * capacity);
    const mask = capacity - 1;
    for (let from = 0; from < old.length; from += 4) {
      if (old[from + 2] === 0) continue;
      const a = old[from]!;
      const b = old[from + 1]!;
      let slot = PairTable.hashOf(a, b) & mask;
      while (slots[(slot << 2) + 2] !== 0) slot = (slot + 1) & mask;
      const at = slot << 2;
      slots[at] = a;
      slots[at + 1] = b;
      slots[at + 2] = old[from + 2]!;
      slots[at + 3] = old[from + 3]!;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
