import { describe, expect, it } from 'vitest';
import { createRandom } from '../random.ts';
import { Int32TupleSet } from './tuple-set.ts';

describe('Int32TupleSet', () => {
  it('answers as a set of joined strings does, across growth, negative members and repeats', () => {
    const rng = createRandom(3);
    for (const width of [1, 2, 3, 5]) {
      const set = new Int32TupleSet(width);
      const reference = new Set<string>();
      const tuple = new Int32Array(width);
      for (let k = 0; k < 20_000; k++) {
        // few distinct values: many repeats; the sign bit and −1 included
        for (let i = 0; i < width; i++)
          tuple[i] = [0, -1, 1, 0x7fffffff, -0x80000000, rng.nextUint32() % 9][k % 6]!;
        const key = tuple.join(',');
        expect(set.addFrom(tuple, 0)).toBe(reference.has(key));
        reference.add(key);
      }
      expect(set.count).toBe(reference.size);
    }
  });

  it('reads a tuple at an offset of a longer array', () => {
    const set = new Int32TupleSet(2);
    const tokens = [5, 6, 5, 6, 6, 5];
    const seen = tokens.slice(0, -1).map((_, at) => set.addFrom(tokens, at));
    expect(seen).toEqual([false, false, true, false, true]);
    expect(() => new Int32TupleSet(0)).toThrow(/width/);
  });
});

describe('Int32TupleSet memory', () => {
  it('a wide tuple reserves a bounded amount ahead, and still grows to hold every tuple', () => {
    const set = new Int32TupleSet(4096, 10_000_000);
    const tuple = new Int32Array(4096);
    for (let k = 0; k < 600; k++) {
      tuple[k % 4096] = k + 1;
      expect(set.addFrom(tuple, 0)).toBe(false);
    }
    expect(set.count).toBe(600);
    tuple.fill(0);
    expect(set.addFrom(tuple, 0)).toBe(false);
    expect(set.addFrom(tuple, 0)).toBe(true);
  });
});

describe('Int32TupleSet of windows', () => {
  it('holds windows of its array in place, across growth, and answers as a set of joined strings', () => {
    const rng = createRandom(4);
    const values = [0, -1, 1, 0x7fffffff, -0x80000000, 0xffffffff];
    for (const windows of [
      Int32Array.from({ length: 12_000 }, () => values[rng.nextUint32() % 6]!),
      Uint32Array.from({ length: 12_000 }, () => values[rng.nextUint32() % 6]! >>> 0),
      Array.from({ length: 12_000 }, () => rng.nextUint32() % 7),
    ]) {
      for (const width of [1, 2, 5]) {
        const set = new Int32TupleSet(width, 16, windows);
        const reference = new Set<string>();
        for (let offset = 0; offset + width <= windows.length; offset++) {
          const key = Array.from({ length: width }, (_, i) => windows[offset + i]! | 0).join(',');
          expect(set.addAt(offset)).toBe(reference.has(key));
          reference.add(key);
        }
        expect(set.count).toBe(reference.size);
      }
    }
  });

  it('adds windows with addAt only, and copies with addFrom only', () => {
    expect(() => new Int32TupleSet(2, 16, [1, 2, 3]).addFrom([1, 2], 0)).toThrow(/addAt/);
    expect(() => new Int32TupleSet(2).addAt(0)).toThrow(/windows/);
  });
});
