import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allDistinct64,
  firstOccurrences,
  PairSet,
  SweptPairSet,
  TupleTable,
  tupleHash,
  tupleIdsInOrder,
} from './tables.ts';

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

/** A small pseudo-random generator (LCG), so that the cases are the same on every run. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 8;
  };
}

describe('tupleIdsInOrder', () => {
  it('gives the ids TupleTable.insert gives, with real and with colliding hashes', () => {
    for (const width of [1, 2, 3, 4]) {
      for (const colliding of [false, true]) {
        const next = lcg(width * 31 + (colliding ? 1 : 0));
        const source = new Uint32Array(30_000);
        for (let i = 0; i < source.length; i++) {
          const r = next();
          source[i] = r % 13 === 0 ? 2 ** 32 - 1 - (r % 3) : r % (width === 1 ? 500 : 9);
        }
        // Every third position skipped, as ineligible positions are.
        const ends: number[] = [];
        for (let end = width; end <= source.length; end++) if (end % 3 !== 0) ends.push(end);
        const hashes = Int32Array.from(ends, (end) =>
          colliding ? (source[end - width]! % 4) << 30 : tupleHash(source, end - width, width),
        );
        // The ids take the hashes' memory, as the evidence tape does.
        // Scratch arrays of any content, long enough or one entry short (then new arrays are used), two
        // or three (the third for where the tuples start).
        for (const [spare, third] of [
          [0, false],
          [7, false],
          [-1, false],
          [7, true],
          [-1, true],
        ] as const) {
          const ids = new Uint32Array(hashes.slice().buffer);
          const two = [
            new Uint32Array(ends.length + spare).fill(0xdeadbeef),
            new Uint32Array(ends.length + spare).fill(12345),
          ] as const;
          const scratch =
            spare === 0
              ? null
              : third
                ? ([...two, new Uint32Array(ends.length + spare).fill(777)] as const)
                : two;
          const distinct = tupleIdsInOrder(
            source,
            Uint32Array.from(ends),
            new Int32Array(ids.buffer),
            ends.length,
            width,
            ids,
            scratch,
          );
          const table = new TupleTable(width);
          ends.forEach((end, k) => {
            expect(ids[k]).toBe(table.insert(source, end - width));
          });
          expect(distinct).toBe(table.size);
        }
      }
    }
  });
});

describe('firstOccurrences', () => {
  it('marks the pairs a PairSet adds first', () => {
    for (const count of [0, 1, 5000, 40_000]) {
      const next = lcg(count);
      const a = new Uint32Array(count);
      const b = new Uint32Array(count);
      for (let i = 0; i < count; i++) {
        const r = next();
        a[i] = r % 11 === 0 ? 2 ** 32 - 2 : r % 200;
        b[i] = r % 7 === 0 ? 2 ** 32 - 1 : (r >>> 9) % 50;
      }
      const first = firstOccurrences(a, b, count);
      const set = new PairSet(4);
      for (let i = 0; i < count; i++) expect(first[i]).toBe(set.add(a[i]!, b[i]!) ? 1 : 0);
      // In scratch arrays holding anything, longer than needed: the same; too short, not used.
      const scratch = [0, 1, 2].map(() => new Uint32Array(count + 9).fill(0xfeedface));
      expect(Array.from(firstOccurrences(a, b, count, scratch))).toEqual(Array.from(first));
      if (count > 0) expect(scratch[2]!.subarray(0, count).includes(0xfeedface)).toBe(false);
      const short = [0, 1, 2].map((i) => new Uint32Array(i === 1 ? Math.max(0, count - 1) : count + 1));
      expect(Array.from(firstOccurrences(a, b, count, count > 0 ? short : null))).toEqual(Array.from(first));
    }
  });
});

describe('SweptPairSet', () => {
  it('marks, batch after batch, the pairs a PairSet adds first, through many doublings or one reserve', () => {
    for (const reserve of [0, 100, 150_000]) {
      const swept = new SweptPairSet(2);
      const set = new PairSet(2);
      const next = lcg(99);
      swept.reserve(reserve);
      for (const count of [0, 1, 17, 5000, 3, 40_000, 70_000, 1]) {
        // A reserve between batches moves the pairs held to a larger table at once.
        if (count === 3) swept.reserve(200_000);
        const a = new Uint32Array(count);
        const b = new Uint32Array(count);
        for (let i = 0; i < count; i++) {
          const r = next();
          a[i] = r % 11 === 0 ? 2 ** 32 - 2 - (r % 2) : r % 700;
          b[i] = r % 7 === 0 ? 2 ** 32 - 1 : (r >>> 9) % 90;
        }
        const first = new Uint8Array(count).fill(7);
        swept.addBatch(a, b, count, first);
        for (let i = 0; i < count; i++) expect(first[i]).toBe(set.add(a[i]!, b[i]!) ? 1 : 0);
        expect(swept.size).toBe(set.size);
      }
    }
  });

  it('refuses a = 2^32 − 1 (its tag would be 0, the empty slot)', () => {
    const swept = new SweptPairSet();
    expect(() =>
      swept.addBatch(Uint32Array.of(2 ** 32 - 1), Uint32Array.of(0), 1, new Uint8Array(1)),
    ).toThrow(RangeError);
  });
});

describe('allDistinct64', () => {
  it('says whether the pairs are distinct, in either word order, and only reorders them', () => {
    fc.assert(
      fc.property(
        // Few distinct top bytes and values: buckets with many pairs, and repeats.
        fc.array(
          fc.tuple(
            fc.oneof(
              fc.integer({ min: 0, max: 3 }).map((x) => (x << 24) >>> 0),
              fc.nat({ max: 2 ** 32 - 1 }),
            ),
            fc.integer({ min: 0, max: 40 }),
          ),
          { maxLength: 3000 },
        ),
        fc.constantFrom<0 | 1>(0, 1),
        (pairs, highAt) => {
          const words = new Uint32Array(2 * pairs.length);
          pairs.forEach(([high, low], i) => {
            words[2 * i + highAt] = high;
            words[2 * i + 1 - highAt] = low;
          });
          const before = pairs.map(([high, low]) => `${high}:${low}`);
          const distinct = new Set(before).size === before.length;
          expect(allDistinct64(words, highAt)).toBe(distinct);
          if (distinct) {
            // Every pair is still there (once each), the bucket of each top byte together.
            const after = Array.from(
              { length: pairs.length },
              (_, i) => `${words[2 * i + highAt]}:${words[2 * i + 1 - highAt]}`,
            );
            expect([...after].sort()).toEqual([...before].sort());
            const tops = Array.from({ length: pairs.length }, (_, i) => words[2 * i + highAt]! >>> 24);
            expect(tops).toEqual([...tops].sort((a, b) => a - b));
          }
        },
      ),
      { numRuns: 200, seed: 5 },
    );
  });
});
