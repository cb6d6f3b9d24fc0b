import { readFileSync } from 'node:fs';
import { createWatermarker, createWatermarkKey } from '@tracemark/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import wabt from 'wabt';
import {
  countLeftHash,
  countMixed,
  KernelArena,
  kernelArenaOf,
  kernelKeyBytes,
  leftHashBits,
  leftHashGreenValues,
  prefaultKernel,
} from './kernel.ts';
import { KERNEL_WASM_BASE64 } from './kernel-wasm.ts';
import { kolmogorovSmirnovUniform } from './uniformity.ts';

/** A random window-grouped tape: windows of h tokens, each followed by some tokens. */
const tapeArb = fc.integer({ min: 1, max: 5 }).chain((h) =>
  fc
    .array(
      fc.record({
        window: fc.array(fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.constant(2 ** 32 - 1)), {
          minLength: h,
          maxLength: h,
        }),
        tokens: fc.array(fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.constant(2 ** 32 - 1)), {
          maxLength: 9,
        }),
      }),
      { maxLength: 40 },
    )
    .map((groups) => {
      const offsets = [0];
      for (const group of groups) offsets.push(offsets[offsets.length - 1]! + group.tokens.length);
      return {
        windowWidth: h,
        windows: Uint32Array.from(groups.flatMap((g) => g.window)),
        offsets: Uint32Array.from(offsets),
        tokens: Uint32Array.from(groups.flatMap((g) => g.tokens)),
      };
    }),
);

describe('LeftHash green-count kernel', () => {
  it('WebAssembly and scalar paths equal Watermarker.seedAt + isGreen of @tracemark/core, bit for bit', () => {
    fc.assert(
      fc.property(
        tapeArb,
        fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: 5 }),
        fc.constantFrom(0.1, 0.25, 0.5, 0.9),
        (tape, secrets, gamma) => {
          const h = tape.windowWidth;
          const keys = secrets.map((secret) =>
            createWatermarkKey({ secret, scheme: { contextWidth: h, gamma } }),
          );
          const threshold = keys[0]!.scheme.threshold;
          const fast = countLeftHash(tape, kernelKeyBytes(keys), threshold);
          const scalar = countLeftHash(tape, kernelKeyBytes(keys), threshold, false, false);
          keys.forEach((key, k) => {
            const watermarker = createWatermarker(key);
            const span = new Uint32Array(h + 1);
            const seed = new Uint32Array(2);
            let green = 0;
            const bits: number[] = [];
            const seeds: number[] = [];
            for (let c = 0; c + 1 < tape.offsets.length; c++) {
              span.set(tape.windows.subarray(c * h, (c + 1) * h));
              span[h] = 0;
              watermarker.seedAt(span, h, seed);
              seeds.push(seed[0]!, seed[1]!);
              for (let e = tape.offsets[c]!; e < tape.offsets[c + 1]!; e++) {
                const isGreen = watermarker.isGreen(seed[0]!, seed[1]!, tape.tokens[e]!);
                bits.push(isGreen ? 1 : 0);
                if (isGreen) green++;
              }
            }
            expect(fast.counts[k]).toBe(green);
            expect(scalar.counts[k]).toBe(green);
            const withBits = countLeftHash(tape, kernelKeyBytes([key]), threshold, true);
            expect(Array.from(withBits.bits!)).toEqual(bits);
            expect(Array.from(withBits.seeds!)).toEqual(seeds.map((x) => x >>> 0));
            const scalarBits = countLeftHash(tape, kernelKeyBytes([key]), threshold, true, false);
            expect(Array.from(scalarBits.bits!)).toEqual(bits);
            expect(Array.from(scalarBits.seeds!)).toEqual(seeds.map((x) => x >>> 0));
            // The seeds are distinct unless two windows are equal (a 64-bit collision aside).
            const distinct =
              new Set(seeds.map((x, i) => (i % 2 === 0 ? `${x >>> 0}:${seeds[i + 1]! >>> 0}` : ''))).size -
                1 ===
                seeds.length / 2 || seeds.length === 0;
            for (const accelerate of [true, false]) {
              const direct = leftHashBits(tape, kernelKeyBytes([key]), threshold, accelerate);
              expect(direct.numGreen).toBe(green);
              expect(Array.from(direct.bits)).toEqual(bits);
              expect(direct.distinctSeeds).toBe(distinct);
            }
          });
        },
      ),
      { numRuns: 150, seed: 20261122 },
    );
  });

  it('rejects key bytes that are not 32 a key, and bits for several keys', () => {
    const tape = {
      windowWidth: 1,
      windows: new Uint32Array([1]),
      offsets: new Uint32Array([0, 1]),
      tokens: new Uint32Array([2]),
    };
    expect(() => countLeftHash(tape, new Uint8Array(31), 1 << 30)).toThrow(RangeError);
    expect(() => countLeftHash(tape, new Uint8Array(64), 1 << 30, true)).toThrow(RangeError);
  });
});

it('the committed WebAssembly module is the compilation of wasm/kernel.wat', async () => {
  const source = readFileSync(new URL('../wasm/kernel.wat', import.meta.url), 'utf8');
  const compiler = await wabt();
  const { buffer } = compiler
    .parseWat('kernel.wat', source, { bulk_memory: true, simd: true, threads: true })
    .toBinary({});
  expect(Buffer.from(buffer).toString('base64')).toBe(KERNEL_WASM_BASE64);
});

it('leftHashBits finds two equal windows (one seed) whatever their places, on both paths', () => {
  const [key] = [createWatermarkKey({ secret: new Uint8Array(32).fill(3), scheme: { contextWidth: 2 } })];
  for (let windows = 4; windows < 40; windows += 7) {
    for (const [a, b] of [
      [0, windows - 1],
      [windows - 2, windows - 1],
      [1, 3],
    ]) {
      const tape = {
        windowWidth: 2,
        windows: Uint32Array.from({ length: 2 * windows }, (_, i) => 1000 + i),
        offsets: Uint32Array.from({ length: windows + 1 }, (_, c) => c),
        tokens: Uint32Array.from({ length: windows }, (_, c) => c),
      };
      for (const accelerate of [true, false]) {
        expect(
          leftHashBits(tape, kernelKeyBytes([key!]), key!.scheme.threshold, accelerate).distinctSeeds,
        ).toBe(true);
      }
      // A new array: the kernel keeps the last tape it was given (the same arrays are not copied again).
      const repeated = tape.windows.slice();
      repeated.copyWithin(2 * b!, 2 * a!, 2 * a! + 2);
      tape.windows = repeated;
      for (const accelerate of [true, false]) {
        expect(
          leftHashBits(tape, kernelKeyBytes([key!]), key!.scheme.threshold, accelerate).distinctSeeds,
        ).toBe(false);
      }
    }
  }
});

it('prefaulting the kernel memory changes nothing in it: the tape it holds scores the same after', () => {
  const tape = {
    windowWidth: 3,
    windows: Uint32Array.from({ length: 3 * 5000 }, (_, i) => (i * 2654435761) >>> 12),
    offsets: Uint32Array.from({ length: 5001 }, (_, c) => 2 * c),
    tokens: Uint32Array.from({ length: 10_000 }, (_, e) => (e * 40503) % 100_000),
  };
  const keyBytes = kernelKeyBytes([
    createWatermarkKey({ secret: new Uint8Array(32).fill(9), scheme: { contextWidth: 3 } }),
  ]);
  const before = countLeftHash(tape, keyBytes, 1 << 30, true);
  // Slices of 64 KB over 4 MB: the tape stays where the kernel copied it (the same arrays are not
  // copied again), so a changed byte would change the bits.
  let calls = 1;
  while (!prefaultKernel(4 << 20, 1 << 16)) calls++;
  expect(calls).toBeGreaterThan(8);
  expect(prefaultKernel(4 << 20)).toBe(true);
  const after = countLeftHash(tape, keyBytes, 1 << 30, true);
  expect(Array.from(after.bits!)).toEqual(Array.from(before.bits!));
  expect(after.counts[0]).toBe(before.counts[0]);
});

describe('fake-key kernels', () => {
  it('green PRF values: WebAssembly equals the scalar path, and their high words give the green bits', () => {
    fc.assert(
      fc.property(tapeArb, fc.uint8Array({ minLength: 32, maxLength: 32 }), (tape, secret) => {
        const key = createWatermarkKey({ secret, scheme: { contextWidth: tape.windowWidth } });
        const fast = leftHashGreenValues(tape, kernelKeyBytes([key]));
        const scalar = leftHashGreenValues(tape, kernelKeyBytes([key]), false);
        expect(Array.from(fast)).toEqual(Array.from(scalar));
        const { bits } = countLeftHash(tape, kernelKeyBytes([key]), key.scheme.threshold, true);
        bits!.forEach((bit, e) => {
          expect(bit).toBe(fast[2 * e + 1]! < key.scheme.threshold ? 1 : 0);
        });
      }),
      { numRuns: 100, seed: 11 },
    );
  });

  it('mixed counts: WebAssembly equals the BigInt reference', () => {
    fc.assert(
      fc.property(
        fc.uint32Array({ maxLength: 2 * 5000 }).map((a) => a.subarray(0, a.length & ~1)),
        fc.uint32Array({ minLength: 2, maxLength: 12 }).map((a) => a.subarray(0, a.length & ~1)),
        fc.integer({ min: 0, max: 0xffffffff }),
        (values, masks, threshold) => {
          expect(Array.from(countMixed(values, masks, threshold))).toEqual(
            Array.from(countMixed(values, masks, threshold, false)),
          );
        },
      ),
      { numRuns: 50, seed: 12 },
    );
  });

  it("an arena lends the start of both kernels' working spaces once, as four arrays of zeros", () => {
    const arena = KernelArena.create(1 << 16, 1 << 20, 1 << 19);
    expect(arena).not.toBeNull();
    const space = arena!.workingSpace()!;
    // Two arrays of 2^16 words (with their padding) fit in each working space; more than that does not.
    expect(arena!.lendWorkingSpace(1 << 16)).toBeNull();
    const lent = arena!.lendWorkingSpace(1 << 15)!;
    expect(lent).toHaveLength(4);
    expect(lent.map((array) => array.length)).toEqual([1 << 15, 1 << 15, 1 << 15, 1 << 15]);
    expect(
      lent.every((array) => array.buffer === space.own.buffer && array.every((word) => word === 0)),
    ).toBe(true);
    expect(lent[0]!.byteOffset).toBe(space.own.byteOffset);
    expect(lent[2]!.byteOffset).toBe(space.guest.byteOffset);
    // One after another, 16 bytes apart at least: none overlaps another.
    for (const [a, b] of [
      [0, 1],
      [2, 3],
    ] as const) {
      expect(lent[b]!.byteOffset).toBeGreaterThanOrEqual(lent[a]!.byteOffset + 4 * lent[a]!.length + 16);
    }
    expect(lent[1]!.byteOffset + 4 * lent[1]!.length).toBeLessThanOrEqual(space.guest.byteOffset);
    // Once only.
    expect(arena!.lendWorkingSpace(16)).toBeNull();
    // The arrays lent are of the arena: what a kernel there reads in place.
    expect(kernelArenaOf(lent[3]!)).toBe(arena);
  });

  it('mixed counts of trial values in a kernel arena are read there: the same counts, arena and copy', () => {
    const arena = KernelArena.create(1 << 20, 1 << 16, 1 << 16);
    expect(arena).not.toBeNull();
    const values = arena!.uint32Array(2 * 20_000)!;
    let state = 7;
    for (let i = 0; i < values.length; i++) {
      state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
      values[i] = state >>> 0;
    }
    expect(kernelArenaOf(values)).toBe(arena);
    const copy = values.slice();
    expect(kernelArenaOf(copy)).toBeNull();
    for (const nmasks of [1, 6, 13, 600]) {
      const masks = Uint32Array.from({ length: 2 * nmasks }, (_, i) => Math.imul(i + 3, 0x9e3779b1) >>> 0);
      for (const threshold of [0, 0x40000000, 0xffffffff]) {
        const here = countMixed(values, masks, threshold);
        expect(Array.from(here)).toEqual(Array.from(countMixed(copy, masks, threshold)));
        expect(Array.from(here)).toEqual(Array.from(countMixed(copy, masks, threshold, false)));
      }
    }
    // A view received from another thread is seen as the arena's once viewed through it.
    expect(arena!.view(values)).not.toBeNull();
    expect(arena!.view(new Uint32Array(4))).toBeNull();
  });

  it('fake keys are independent of each other: green bits uncorrelated, counts binomial', () => {
    // Random trial values, as a PRF gives on distinct trials.
    const n = 20_000;
    const values = new Uint32Array(2 * n);
    let state = 0x9e3779b9;
    for (let i = 0; i < values.length; i++) {
      state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
      values[i] = (state ^ (state >>> 13)) >>> 0;
    }
    const gamma = 0.25;
    const threshold = gamma * 2 ** 32;
    const masks = new Uint32Array(2 * 100);
    for (let i = 0; i < masks.length; i++) masks[i] = Math.imul(i + 1, 0x85ebca6b) >>> 0;
    const counts = countMixed(values, masks, threshold);
    // Each fake key's count is Bin(n, γ): normal z-scores, tested for uniformity as p-values.
    const sd = Math.sqrt(n * gamma * (1 - gamma));
    const erf = (x: number): number => {
      const t = 1 / (1 + 0.3275911 * Math.abs(x));
      const y =
        1 -
        ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
          t *
          Math.exp(-x * x);
      return x < 0 ? -y : y;
    };
    const p = Array.from(counts, (count) => 0.5 * (1 + erf((count - n * gamma) / sd / Math.SQRT2)));
    expect(kolmogorovSmirnovUniform(p).pValue).toBeGreaterThan(1e-3);
    // Pairs of keys (same mask, neighbouring masks) agree as often as independent bits would.
    const single = new Uint32Array(2);
    const bit = (e: number, key: number): number => {
      single[0] = masks[2 * (key >> 1)]!;
      single[1] = masks[2 * (key >> 1) + 1]!;
      return countMixed(values.subarray(2 * e, 2 * e + 2), single, threshold)[key & 1]!;
    };
    for (const [a, b] of [
      [0, 1],
      [0, 2],
      [5, 6],
    ] as const) {
      let both = 0;
      for (let e = 0; e < 4000; e++) both += bit(e, a) & bit(e, b);
      // E = 4000 γ² = 250, sd ≈ 15.
      expect(Math.abs(both - 250)).toBeLessThan(75);
    }
  });
});
