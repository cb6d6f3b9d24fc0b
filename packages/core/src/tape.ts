/** The dedup tape (spec §6): a hash set of (seed, token) keys, each marked prompt or scored. */

export const TAPE_PROMPT = 1;
export const TAPE_SCORED = 2;

/** Generations run from 1 to this, then the slots are zeroed and they start again. */
const LAST_GENERATION = 2 ** 29;
/** Above this many slots, {@link DedupTape.clear} allocates afresh at the size asked rather than keep them. */
const KEPT_CAPACITY = 1 << 16;

/** Open-addressing set of 96-bit keys (seed high, seed low, token) with a one-byte mark. */
export class DedupTape {
  /**
   * Four words a slot: seed high, seed low, token, and the generation and mark (generation << 2 | mark).
   * A slot of an earlier generation is empty: {@link clear} empties the set in O(1), without touching
   * the slots. With no clear there are no deletions, so a key's probe sequence still reaches it first.
   */
  private words: Uint32Array;
  private capacity: number;
  private mask: number;
  private count = 0;
  private generation = 1;

  constructor(initialCapacity = 64) {
    const capacity = capacityFor(initialCapacity);
    this.words = new Uint32Array(capacity * 4);
    this.capacity = capacity;
    this.mask = capacity - 1;
  }

  /** Number of keys held. */
  get size(): number {
    return this.count;
  }

  /**
   * Empties the set, ready for about `expectedKeys` keys; reusing a tape this way spares allocating one
   * per document.
   */
  clear(expectedKeys = 64): void {
    const capacity = capacityFor(expectedKeys);
    this.count = 0;
    if (capacity > this.capacity || (this.capacity > KEPT_CAPACITY && capacity < this.capacity)) {
      this.words = new Uint32Array(capacity * 4);
      this.capacity = capacity;
      this.mask = capacity - 1;
      this.generation = 1;
      return;
    }
    if (this.generation === LAST_GENERATION) {
      this.words.fill(0);
      this.generation = 1;
    } else this.generation++;
  }

  /**
   * Returns the mark already held for the key, or 0 after inserting it with `mark`.
   */
  insert(seedHigh: number, seedLow: number, token: number, mark: number): number {
    if ((this.count + 1) * 2 > this.capacity) this.grow();
    const words = this.words;
    const high = seedHigh >>> 0;
    const low = seedLow >>> 0;
    const generation = this.generation;
    let slot = (low ^ Math.imul(token, 0x9e3779b1) ^ high) & this.mask;
    for (;;) {
      const at = slot << 2;
      const held = words[at + 3]!;
      if (held >>> 2 !== generation) {
        words[at] = high;
        words[at + 1] = low;
        words[at + 2] = token;
        words[at + 3] = (generation << 2) | mark;
        this.count++;
        return 0;
      }
      if (words[at] === high && words[at + 1] === low && words[at + 2] === token) return held & 3;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.words;
    const generation = this.generation;
    this.capacity *= 2;
    this.words = new Uint32Array(this.capacity * 4);
    this.mask = this.capacity - 1;
    this.count = 0;
    this.generation = 1;
    for (let at = 0; at < old.length; at += 4) {
      const held = old[at + 3]!;
      if (held >>> 2 === generation) this.insert(old[at]!, old[at + 1]!, old[at + 2]!, held & 3);
    }
  }
}

/** Slots for `keys` keys at a load factor of at most 1/2: a power of two, 16 at the least. */
function capacityFor(keys: number): number {
  let capacity = 16;
  while (capacity < keys * 2) capacity *= 2;
  return capacity;
}
