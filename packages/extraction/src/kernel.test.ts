import { createWatermarker, createWatermarkKey } from '@tracemark/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countLeftHash, kernelKeyBytes } from './kernel.ts';

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
