/** The dedup tape (spec §6): a hash set of (seed, token) keys, each marked prompt or scored. */

export const TAPE_PROMPT = 1;
export const TAPE_SCORED = 2;

/** Open-addressing set of 96-bit keys (seed high, seed low, token) with a one-byte mark. */
export class DedupTape {
  /** Four words a slot: seed high, seed low, token, mark (0 = empty). */
  private words: Uint32Array;
  private capacity: number;
  private mask: number;
  private count = 0;

  constructor(initialCapacity = 64) {
    let capacity = 16;
    while (capacity < initialCapacity * 2) capacity *= 2;
    this.words = new Uint32Array(capacity * 4);
    this.capacity = capacity;
    this.mask = capacity - 1;
  }

  /** Number of keys held. */
  get size(): number {
    return this.count;
  }

  /**
   * Returns the mark already held for the key, or 0 after inserting it with `mark`.
   */
  insert(seedHigh: number, seedLow: number, token: number, mark: number): number {
    if ((this.count + 1) * 2 > this.capacity) this.grow();
    const words = this.words;
    const high = seedHigh >>> 0;
    const low = seedLow >>> 0;
    let slot = (low ^ Math.imul(token, 0x9e3779b1) ^ high) & this.mask;
    for (;;) {
      const at = slot << 2;
      const held = words[at + 3]!;
      if (held === 0) {
        words[at] = high;
        words[at + 1] = low;
        words[at + 2] = token;
        words[at + 3] = mark;
        this.count++;
        return 0;
      }
      if (words[at] === high && words[at + 1] === low && words[at + 2] === token) return held;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.words;
    this.capacity *= 2;
    this.words = new Uint32Array(this.capacity * 4);
    this.mask = this.capacity - 1;
    this.count = 0;
    for (let at = 0; at < old.length; at += 4) {
      const mark = old[at + 3]!;
      if (mark !== 0) this.insert(old[at]!, old[at + 1]!, old[at + 2]!, mark);
    }
  }
}
