import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PairSet, TupleTable } from './tables.ts';

describe('TupleTable', () => {
  it('maps equal tuples to one id and different tuples to different ids, in insertion order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.array(
          fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(2 ** 32 - 1), fc.constant(2 ** 22 + 3)),
          {
            maxLength: 3000,
          },
        ),
        (width, tokens) => {
          const table = new TupleTable(width, 4);
          const reference = new Map<string, number>();
          const source = Uint32Array.from(tokens);
          for (let start = 0; start + width <= source.length; start++) {
            const key = Array.from(source.subarray(start, start + width)).join(',');
            const expected = reference.get(key) ?? reference.size;
            reference.set(key, expected);
            expect(table.insert(source, start)).toBe(expected);
            expect(table.find(source, start)).toBe(expected);
          }
          expect(table.size).toBe(reference.size);
          const tuples = table.tuples();
          [...reference.keys()].forEach((key, id) => {
            expect(Array.from(tuples.subarray(id * width, (id + 1) * width)).join(',')).toBe(key);
          });
        },
      ),
      { numRuns: 60, seed: 7 },
    );
  });

  it('answers −1 for an absent tuple and rejects a bad width', () => {
    const table = new TupleTable(2);
    table.insert([1, 2], 0);
    expect(table.find([2, 1], 0)).toBe(-1);
    expect(new TupleTable(1).find([5], 0)).toBe(-1);
    expect(() => new TupleTable(17)).toThrow(RangeError);
  });
});

describe('PairSet', () => {
  it('matches a Set through many rehashes', () => {
    const set = new PairSet(2);
    const reference = new Set<string>();
    let state = 12345;
    for (let i = 0; i < 50_000; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const a = i % 5 === 0 ? 2 ** 32 - 2 - (state % 3) : state % 3000;
      const b = i % 7 === 0 ? 2 ** 32 - 1 - (state % 11) : (state >>> 12) % 97;
      const key = `${a},${b}`;
      expect(set.add(a, b)).toBe(!reference.has(key));
      reference.add(key);
      expect(set.has(a, b)).toBe(true);
    }
    expect(set.size).toBe(reference.size);
    for (const key of reference) {
      const [a, b] = key.split(',').map(Number);
      expect(set.has(a!, b!)).toBe(true);
      expect(set.has(a!, (b! + 100) % 2 ** 32)).toBe(reference.has(`${a},${(b! + 100) % 2 ** 32}`));
    }
    expect(() => set.add(2 ** 32 - 1, 0)).toThrow(RangeError);
  });
});
