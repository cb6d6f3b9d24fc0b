/**
 * An exact set of tuples of 32-bit integers of one width: the detectors' dedup sets (token windows,
 * 64-bit seeds as two halves, a seed with its token) without building a string per position.
 * Open addressing over a hash of the tuple; a hit compares every member, so a hash collision never
 * merges two tuples.
 */
const PRESIZE_MEMBERS = 1 << 20;

export class Int32TupleSet {
  private readonly width: number;
  /** Entry number + 1 per slot; 0 is empty. */
  private slots: Int32Array;
  private members: Int32Array;
  private size = 0;

  /**
   * `expected`: how many tuples to make room for at once; at most 2^20 members' worth are set aside
   * ahead (the set grows past that as tuples come), so a wide tuple never reserves memory it may not use.
   */
  constructor(width: number, expected = 16) {
    if (!Number.isInteger(width) || width < 1) throw new RangeError('width: expected a positive integer');
    this.width = width;
    const ahead = Math.min(expected, Math.max(8, Math.floor(PRESIZE_MEMBERS / width)));
    let capacity = 16;
    while (capacity < ahead * 2) capacity *= 2;
    this.slots = new Int32Array(capacity);
    this.members = new Int32Array((capacity >>> 1) * width);
  }

  get count(): number {
    return this.size;
  }

  /**
   * Adds the tuple `source[offset … offset + width)` (each member taken as int32); returns true when
   * it was already in the set.
   */
  addFrom(source: ArrayLike<number>, offset: number): boolean {
    const { width } = this;
    const mask = this.slots.length - 1;
    for (let slot = this.hashOf(source, offset) & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]!;
      if (entry === 0) {
        const at = this.size * width;
        for (let i = 0; i < width; i++) this.members[at + i] = source[offset + i]!;
        this.slots[slot] = ++this.size;
        if (this.size * 2 > mask) this.grow();
        return false;
      }
      const at = (entry - 1) * width;
      let same = true;
      for (let i = 0; i < width && same; i++) same = this.members[at + i] === (source[offset + i]! | 0);
      if (same) return true;
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
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    const members = new Int32Array((slots.length >>> 1) * this.width);
    members.set(this.members);
    for (let entry = 1; entry <= this.size; entry++) {
      let slot = this.hashOf(members, (entry - 1) * this.width) & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = entry;
    }
    this.slots = slots;
    this.members = members;
  }
}
