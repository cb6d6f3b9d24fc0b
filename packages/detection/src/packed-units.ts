/**
 * What the foreign scorers' packed units ({@link ForeignKeyScorer.packedUnits}) share: a document's
 * deduplication in typed arrays instead of sets of strings, the check of its token ids, and 64-bit
 * products in 32-bit arithmetic. Each family packs its own keys (vllm-detection.ts, sglang-keys.ts,
 * synthid-keys.ts); its tests (packed-units.test.ts) hold every packing to the family's `units`.
 */
import type { ForeignKeyScorer, PackedForeignDocument, PackedForeignUnits } from './foreign.ts';

/**
 * An exact set of equal-width tuples of one array, each known by where it lies there: a document's
 * context windows (in its token ids) or unit keys (in its packed words), added without a copy. Open
 * addressing over a hash of the tuple; a hit compares every member, so a hash collision never merges
 * two tuples. The array must not change where added tuples lie.
 */
export class TupleOffsetSet {
  private readonly source: Int32Array | Uint32Array;
  private readonly width: number;
  private readonly capacity: number;
  /** Offset + 1 of each added tuple; 0 is empty. */
  private readonly slots: Int32Array;
  private count = 0;

  /** `capacity`: the most tuples that will be added (the table is sized for it once). */
  constructor(source: Int32Array | Uint32Array, width: number, capacity: number) {
    if (!Number.isInteger(width) || width < 1) throw new RangeError('width: expected a positive integer');
    let size = 16;
    while (size < 2 * capacity) size *= 2;
    this.source = source;
    this.width = width;
    this.capacity = capacity;
    this.slots = new Int32Array(size);
  }

  /**
   * Adds the tuple `source[offset … offset + width)`; returns true, and adds nothing, when an equal
   * tuple was added before.
   */
  add(offset: number): boolean {
    const { source, width, slots } = this;
    const mask = slots.length - 1;
    for (let slot = this.hashAt(offset) & mask; ; slot = (slot + 1) & mask) {
      const entry = slots[slot]!;
      if (entry === 0) {
        if (this.count === this.capacity) throw new RangeError(`capacity: more than ${this.capacity} tuples`);
        slots[slot] = offset + 1;
        this.count++;
        return false;
      }
      const at = entry - 1;
      let same = true;
      for (let i = 0; i < width && same; i++) same = source[at + i] === source[offset + i];
      if (same) return true;
    }
  }

  /** MurmurHash3's x86-32 block and finishing steps over the tuple's members. */
  private hashAt(offset: number): number {
    const { source, width } = this;
    let hash = width;
    for (let i = 0; i < width; i++) {
      let k = Math.imul(source[offset + i]!, 0xcc9e2d51);
      k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
      hash ^= k;
      hash = (Math.imul((hash << 13) | (hash >>> 19), 5) + 0xe6546b64) | 0;
    }
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35);
    return hash ^ (hash >>> 16);
  }
}

function idsBelow(ids: ArrayLike<number>, limit: number): boolean {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') return false;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < limit)) return false;
  }
  return true;
}

/**
 * `ids` when every one is an integer token id below `limit`; otherwise what the scorer's `units`
 * makes of them (its InputError), so that packed units refuse exactly what units refuse.
 */
export function checkedIds(
  ids: ArrayLike<number>,
  limit: number,
  units: (ids: ArrayLike<number>) => unknown,
): ArrayLike<number> {
  if (idsBelow(ids, limit)) return ids;
  units(ids);
  // `units` took them: an array-like whose length Array.from reads otherwise. Read them as it does.
  const copy = Array.from(ids);
  if (idsBelow(copy, limit)) return copy;
  throw new TypeError('tokens: expected an array of token ids');
}

/**
 * A scorer's `packedUnits` from its packing of one sequence (whose ids it checks): the completion's
 * units, then the prompt's keys (the scorers that pack have no units in context).
 */
export function packedUnitsOf(
  pack: (ids: ArrayLike<number>) => PackedForeignUnits,
): NonNullable<ForeignKeyScorer['packedUnits']> {
  return (ids: ArrayLike<number>, prompt?: ArrayLike<number>): PackedForeignDocument => {
    const completion = pack(ids);
    return { completion, prompt: prompt === undefined || prompt.length === 0 ? null : pack(prompt).words };
  };
}

/** The high 32 bits of the 64-bit product of two unsigned 32-bit words; each partial product fits a double. */
export function mulHigh32(a: number, b: number): number {
  const aLow = a & 0xffff;
  const aHigh = a >>> 16;
  const bLow = b & 0xffff;
  const bHigh = b >>> 16;
  const lowLow = aLow * bLow;
  const lowHigh = aLow * bHigh;
  const highLow = aHigh * bLow;
  const carry = ((lowLow >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff)) >>> 16;
  return (aHigh * bHigh + Math.floor(lowHigh / 0x10000) + Math.floor(highLow / 0x10000) + carry) >>> 0;
}
