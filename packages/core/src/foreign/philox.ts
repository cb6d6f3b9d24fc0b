/**
 * Philox4x32-10 (Salmon, Moraes, Dror and Shaw 2011, "Parallel random numbers: as easy as 1, 2, 3",
 * https://doi.org/10.1145/2063384.2063405) in exact 32-bit arithmetic, without BigInt.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two 32-bit words; every partial product fits a double. */
export function mulHigh32(a: number, b: number): number {
  const aLow = a & 0xffff;
  const aHigh = a >>> 16;
  const bLow = b & 0xffff;
  const bHigh = b >>> 16;
  const lowLow = aLow * bLow;
  const lowHigh = aLow * bHigh;
  const highLow = aHigh * bLow;
  const middle = (lowLow >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff);
  return (aHigh * bHigh + Math.floor(lowHigh / 65536) + Math.floor(highLow / 65536) + (middle >>> 16)) >>> 0;
}

/**
 * Ten Philox rounds of `counter` (four words) under `key` (two words), written into `out`.
 * Inputs are taken modulo 2^32; `out` may alias `counter`.
 */
export function philox4x32Into(
  out: Uint32Array,
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
): Uint32Array {
  c0 >>>= 0;
  c1 >>>= 0;
  c2 >>>= 0;
  c3 >>>= 0;
  k0 >>>= 0;
  k1 >>>= 0;
  for (let round = 0; round < 10; round++) {
    const high0 = mulHigh32(M0, c0);
    const low0 = Math.imul(M0, c0) >>> 0;
    const high1 = mulHigh32(M1, c2);
    const low1 = Math.imul(M1, c2) >>> 0;
    c0 = (high1 ^ c1 ^ k0) >>> 0;
    c1 = low1;
    c2 = (high0 ^ c3 ^ k1) >>> 0;
    c3 = low0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

/** Philox4x32-10 of a four-word counter under a two-word key; returns the four output words. */
export function philox4x32(counter: readonly number[], key: readonly number[]): Uint32Array {
  if (counter.length !== 4 || key.length !== 2) {
    throw new RangeError('philox4x32: expected a counter of 4 words and a key of 2 words');
  }
  return philox4x32Into(
    new Uint32Array(4),
    counter[0]!,
    counter[1]!,
    counter[2]!,
    counter[3]!,
    key[0]!,
    key[1]!,
  );
}
