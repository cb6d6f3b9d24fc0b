/**
 * An exact set of tuples of 32-bit integers of one width: the detectors' dedup sets (token windows,
 * 64-bit seeds as two halves, a seed with its token) without building a string per position; a
 * sequence's windows are held in place, by offset. Open addressing over a hash of the tuple; a hit
 * compares every member, so a hash collision never merges two tuples.
 */
const PRESIZE_MEMBERS = 1 << 20;

/** The widest packed unit, in words, that corpus scans take (a wider packing keeps its units as strings). */
export const MAX_PACKED_UNIT_WIDTH = 16;

/**
 * The units a detector's `detect(tokenIds, { dedup: 'strict' })` scores, packed (the detectors'
 * `strictUnits`): unit i is the tuple `words[unitWidth·i … unitWidth·(i + 1))`, which decides its
 * score, `values[i]` the score detect adds for it, `positions[i]` the position it scores. Equal
 * words are equal units, in one sequence or in two, for one detector; each detector documents its
 * packing.
 */
export interface StrictUnits {
  /** Words per unit, the same for every sequence of a detector. */
  readonly unitWidth: number;
  readonly words: Uint32Array;
  readonly values: Float64Array;
  readonly positions: Uint32Array;
}

export class Int32TupleSet {
  private readonly width: number;
  /** Window mode: the array whose windows the set holds, in place; null: tuples copied into `members`. */
  private readonly windows: ArrayLike<number> | null;
  /** Per slot, 0 empty, else the entry number + 1 (copies) or the window's offset + 1 (windows). */
  private slots: Int32Array;
  private members: Int32Array;
  private size = 0;

  /**
   * `expected`: how many tuples to make room for at once; at most 2^20 members' worth are set aside
   * ahead (the set grows past that as tuples come), so a wide tuple never reserves memory it may not use.
   * With `windows` the set holds windows of that array by their offsets ({@link addAt}), without a
   * copy, and the array must not change where added windows lie; without it tuples are copied
   * ({@link addFrom}).
   */
  constructor(width: number, expected = 16, windows: ArrayLike<number> | null = null) {
    if (!Number.isInteger(width) || width < 1) throw new RangeError('width: expected a positive integer');
    this.width = width;
    this.windows = windows;
    const ahead = Math.min(expected, Math.max(8, Math.floor(PRESIZE_MEMBERS / width)));
    let capacity = 16;
    while (capacity < ahead * 2) capacity *= 2;
    this.slots = new Int32Array(capacity);
    this.members = new Int32Array(windows === null ? (capacity >>> 1) * width : 0);
  }

  get count(): number {
    return this.size;
  }

  /**
   * Adds a copy of the tuple `source[offset … offset + width)` (each member taken as int32); returns
   * true when it was already in the set. Not in window mode.
   */
  addFrom(source: ArrayLike<number>, offset: number): boolean {
    if (this.windows !== null) throw new TypeError('addFrom: a set of windows adds them with addAt');
    const slot = this.slotOf(source, offset);
    if (this.slots[slot] !== 0) return true;
    const { width, members } = this;
    const at = this.size * width;
    for (let i = 0; i < width; i++) members[at + i] = source[offset + i]!;
    this.slots[slot] = ++this.size;
    if (this.size * 2 >= this.slots.length) this.grow();
    return false;
  }

  /**
   * Window mode: adds the window `windows[offset … offset + width)` of the set's array; returns true
   * when an equal tuple was already in the set.
   */
  addAt(offset: number): boolean {
    const windows = this.windows;
    if (windows === null) throw new TypeError('addAt: the set was made without an array of windows');
    const slot = this.slotOf(windows, offset);
    if (this.slots[slot] !== 0) return true;
    this.slots[slot] = offset + 1;
    this.size++;
    if (this.size * 2 >= this.slots.length) this.grow();
    return false;
  }

  /** The slot that holds the tuple `source[offset … offset + width)`, or the empty slot where it would go. */
  private slotOf(source: ArrayLike<number>, offset: number): number {
    const { width, slots, windows } = this;
    const store = windows ?? this.members;
    const mask = slots.length - 1;
    for (let slot = this.hashOf(source, offset) & mask; ; slot = (slot + 1) & mask) {
      const entry = slots[slot]!;
      if (entry === 0) return slot;
      const at = windows === null ? (entry - 1) * width : entry - 1;
      let i = 0;
      while (i < width && (store[at + i]! | 0) === (source[offset + i]! | 0)) i++;
      if (i === width) return slot;
    }
  }

  private hashOf(source: ArrayLike<number>, offset: number): number {
    let hash = 0x9e3779b9 | 0;
    for (let i = 0; i < this.width; i++) {
      hash = Math.imul(hash ^ (source[offset + i]! | 0), 0x85ebca6b);
      hash ^= hash >>> 13;
    }
    hash = Math.imul(hash ^ (hash >>> 16), 0xc2b2ae35);
    return hash ^ (hash >>> 16);
  }

  private grow(): void {
    const { width, windows } = this;
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    let store: ArrayLike<number> | null = windows;
    if (windows === null) {
      const members = new Int32Array((slots.length >>> 1) * width);
      members.set(this.members);
      this.members = members;
      store = members;
    }
    for (const entry of this.slots) {
      if (entry === 0) continue;
      let slot = this.hashOf(store!, windows === null ? (entry - 1) * width : entry - 1) & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = entry;
    }
    this.slots = slots;
  }
}
