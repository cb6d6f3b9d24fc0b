import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_MINHASH,
  estimateJaccard,
  lshBuckets,
  minhashSignature,
  NEAR_DUPLICATE_PARAMS,
  shingleHashes,
  shingleJaccard,
  signatureFromBytes,
  signatureToBytes,
} from './near-duplicate.js';

/** A deterministic token sequence. */
function tokens(seed: number, length: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length }, () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state % 100_000;
  });
}

function substitute(ids: readonly number[], rate: number, seed: number): number[] {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state ^ 0x9e3779b9, 0x85ebca6b) + 1) >>> 0;
    return state / 2 ** 32;
  };
  return ids.map((id) => (next() < rate ? Math.floor(next() * 100_000) : id));
}

describe('shingles', () => {
  it('are the distinct k-token windows, order-sensitive, and a short sequence is one shingle', () => {
    expect(shingleHashes([1, 2, 3, 1, 2, 3], 2)).toHaveLength(3);
    expect(shingleHashes([1, 2], 2)).toHaveLength(1);
    expect(shingleHashes([7], 3)).toHaveLength(1);
    expect(shingleHashes([], 3)).toHaveLength(0);
    expect(shingleHashes([1, 2], 2)).not.toEqual(shingleHashes([2, 1], 2));
    expect(shingleHashes([1, 2, 3], 3)).not.toEqual(shingleHashes([1, 2], 2));
    expect(shingleJaccard([1, 2, 3, 4], [1, 2, 3, 4])).toBe(1);
    expect(shingleJaccard([1, 2, 3], [4, 5, 6])).toBe(0);
    expect(shingleJaccard([], [])).toBe(0);
  });

  it('reject what is not a token sequence, naming the parameter', () => {
    expect(() => shingleHashes([1, -1])).toThrow(/tokens\[1\]/);
    expect(() => shingleHashes([1.5])).toThrow(RangeError);
    expect(() => shingleHashes('abc' as unknown as number[])).toThrow(TypeError);
    expect(() => shingleHashes([1], 0)).toThrow(/shingleSize/);
    expect(() => minhashSignature([1], { ...NEAR_DUPLICATE_PARAMS, bands: 3 })).toThrow(
      /bands × rowsPerBand/,
    );
  });
});

describe('MinHash', () => {
  it('is deterministic (signatures are stored): pinned values', () => {
    const signature = minhashSignature([791, 12_474, 1071, 279, 3363]);
    expect(signature).toHaveLength(128);
    expect(Array.from(signature.slice(0, 4))).toMatchInlineSnapshot(`
      [
        361277168,
        377422736,
        2472163428,
        680144088,
      ]
    `);
    expect(Array.from(lshBuckets(signature).slice(0, 2))).toMatchInlineSnapshot(`
      [
        3287592230,
        663591810,
      ]
    `);
  });

  it('estimates the Jaccard similarity without bias, with the binomial standard error', () => {
    const errors: number[] = [];
    for (let t = 0; t < 200; t++) {
      const a = tokens(t + 1, 200);
      const b = substitute(a, 0.2 + (t % 5) * 0.1, t + 1000);
      const exact = shingleJaccard(a, b);
      const estimate = estimateJaccard(minhashSignature(a), minhashSignature(b));
      errors.push((estimate - exact) / Math.sqrt((exact * (1 - exact)) / 128));
    }
    const mean = errors.reduce((s, e) => s + e, 0) / errors.length;
    const sd = Math.sqrt(errors.reduce((s, e) => s + (e - mean) ** 2, 0) / errors.length);
    expect(Math.abs(mean)).toBeLessThan(0.25);
    expect(sd).toBeGreaterThan(0.8);
    expect(sd).toBeLessThan(1.2);
  });

  it('identical sequences agree everywhere; empty ones are unrelated, not identical, and have no buckets', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 300 }), (ids) => {
        const signature = minhashSignature(ids);
        expect(estimateJaccard(signature, minhashSignature([...ids]))).toBe(1);
        expect(signatureFromBytes(signatureToBytes(signature))).toEqual(signature);
        expect(lshBuckets(signature)).toHaveLength(NEAR_DUPLICATE_PARAMS.bands);
      }),
      { numRuns: 50 },
    );
    const empty = minhashSignature([]);
    expect(empty.every((value) => value === EMPTY_MINHASH)).toBe(true);
    expect(estimateJaccard(empty, empty)).toBe(0);
    expect(lshBuckets(empty)).toHaveLength(0);
  });

  it('makes 20%-edited sequences LSH candidates and leaves unrelated ones mostly apart', () => {
    let linked = 0;
    let unrelated = 0;
    for (let t = 0; t < 100; t++) {
      const a = tokens(t + 1, 200);
      const shared = (x: number[], y: number[]) => {
        const bx = lshBuckets(minhashSignature(x));
        const by = lshBuckets(minhashSignature(y));
        return bx.some((bucket, band) => by[band] === bucket);
      };
      if (shared(a, substitute(a, 0.2, t))) linked++;
      if (shared(a, tokens(t + 5000, 200))) unrelated++;
    }
    expect(linked).toBe(100);
    expect(unrelated).toBeLessThan(5);
  });

  it('rejects mismatched signatures', () => {
    expect(() => estimateJaccard(new Uint32Array(4), new Uint32Array(5))).toThrow(RangeError);
    expect(() => lshBuckets(new Uint32Array(5))).toThrow(/signature/);
    expect(() => signatureFromBytes(new Uint8Array(3))).toThrow(TypeError);
  });
});
