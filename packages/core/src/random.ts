/**
 * The sampler's random generator: xoshiro128** (Blackman and Vigna 2018), seeded through
 * SplitMix32. It is independent of the watermark key: a seed reproduces a sample, never a key.
 */
import { randomBytes } from '@noble/hashes/utils.js';

export interface RandomSource {
  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number;
  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number;
}

function splitMix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A seeded generator; without a seed it draws one from the platform's CSPRNG. */
export function createRandom(seed?: number): RandomSource {
  let initial: number;
  if (seed === undefined) {
    const bytes = randomBytes(4);
    initial = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
  } else {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(`seed: expected a non-negative safe integer, got ${String(seed)}`);
    }
    initial = (seed ^ Math.floor(seed / 4294967296)) >>> 0;
  }
  const next = splitMix32(initial);
  let a = next();
  let b = next();
  let c = next();
  let d = next();
  const nextUint32 = (): number => {
    const result = Math.imul(((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
    return result;
  };
  return {
    nextUint32,
    nextFloat: () => ((nextUint32() >>> 5) * 67108864 + (nextUint32() >>> 6)) / 9007199254740992,
  };
}
