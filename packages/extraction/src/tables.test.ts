import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PairTable, TupleTable } from './tables.ts';

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

describe('PairTable', () => {
  it('matches a Map through many rehashes, and keeps each pair’s flags', () => {
    const table = new PairTable(2);
    const reference = new Map<string, { id: number; flags: number }>();
    let state = 12345;
    for (let i = 0; i < 50_000; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const a = state % 3000;
      const b = i % 7 === 0 ? 2 ** 32 - 1 - (state % 11) : (state >>> 12) % 97;
      const key = `${a},${b}`;
      const id = table.insert(a, b);
      const held = reference.get(key);
      if (held === undefined) {
        expect(id).toBe(reference.size);
        reference.set(key, { id, flags: 0 });
      } else expect(id).toBe(held.id);
      const flag = 1 << (i % 3);
      table.addFlags(flag);
      reference.get(key)!.flags |= flag;
      expect(table.lastFlags).toBe(reference.get(key)!.flags);
    }
    expect(table.size).toBe(reference.size);
    const flags = table.flagsById();
    for (const [key, { id, flags: expected }] of reference) {
      const [a, b] = key.split(',').map(Number);
      expect(table.find(a!, b!)).toBe(id);
      expect(table.firstOf(id)).toBe(a);
      expect(table.secondOf(id)).toBe(b);
      expect(flags[id]).toBe(expected);
    }
    expect(table.find(5000, 5000)).toBe(-1);
  });
});
