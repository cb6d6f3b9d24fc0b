import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { int32Digest } from './int32-digest.test-helper.ts';
import {
  createMt19937,
  TORCH_RANDPERM_LARGE_N,
  torchRandperm,
  torchRandpermPrefixInto,
  torchRandpermPrefixReusing,
  torchRandpermPrefixSetInto,
} from './mt19937.ts';

interface Vectors {
  mt19937: { seed: number; first: number[]; at623: number; at624: number; at1249: number }[];
  randperm: { seed: string; n: number; sha256: string; head: number[]; permutation?: number[] }[];
  randpermLarge: { seed: string; n: number; head: number[] }[];
  peer: {
    torch: string;
    otherTorch: { torch: string; randpermEqual: boolean; large: { n: number; head: number[] }[] }[];
  };
}

const vectors = JSON.parse(
  readFileSync(new URL('../../test/vectors/foreign/transformers.json', import.meta.url), 'utf8'),
) as Vectors;

describe('MT19937 (torch CPU generator)', () => {
  it('matches the reference outputs of init_genrand seeding, across state refills', () => {
    expect(vectors.mt19937.length).toBeGreaterThan(0);
    for (const { seed, first, at623, at624, at1249 } of vectors.mt19937) {
      const mt = createMt19937(seed);
      const outputs = Array.from({ length: 1250 }, () => mt.nextUint32());
      expect(outputs.slice(0, 8)).toEqual(first);
      expect([outputs[623], outputs[624], outputs[1249]]).toEqual([at623, at624, at1249]);
    }
  });

  it('gives the published first output for the default seed 5489', () => {
    expect(createMt19937(5489).nextUint32()).toBe(3499211612);
  });

  it('reseeding restarts the stream', () => {
    const mt = createMt19937(7);
    const first = [mt.nextUint32(), mt.nextUint32()];
    mt.nextUint32();
    mt.reseed(7);
    expect([mt.nextUint32(), mt.nextUint32()]).toEqual(first);
  });

  it('refuses seeds outside 32 bits', () => {
    expect(() => createMt19937(-1)).toThrow(RangeError);
    expect(() => createMt19937(2 ** 32)).toThrow(RangeError);
    expect(() => createMt19937(1.5)).toThrow(RangeError);
  });
});

describe('torch.randperm on the CPU', () => {
  it('equals torch 1.13 bit for bit (manual_seed keeps the low 32 bits of the seed)', () => {
    expect(vectors.randperm.length).toBeGreaterThanOrEqual(10);
    for (const entry of vectors.randperm) {
      const seed = Number(BigInt(entry.seed) & 0xffffffffn);
      const permutation = torchRandperm(entry.n, seed);
      expect(Array.from(permutation.subarray(0, 16))).toEqual(entry.head);
      expect(int32Digest(permutation)).toBe(entry.sha256);
      if (entry.permutation) expect(Array.from(permutation)).toEqual(entry.permutation);
    }
  });

  it('a prefix needs only its own draws and equals the full permutation’s prefix', () => {
    const full = torchRandperm(50257, 12345);
    const workspace = new Int32Array(50257);
    const prefix = torchRandpermPrefixInto(workspace, 50257, 12345, 12564);
    expect(Array.from(prefix)).toEqual(Array.from(full.subarray(0, 12564)));
    const identity = Int32Array.from({ length: 50257 }, (_, i) => i);
    const out = new Int32Array(12564);
    const touched = new Int32Array(12564);
    const generator = createMt19937(0);
    for (const seed of [12345, 12345, 99]) {
      const reused = torchRandpermPrefixReusing(identity, out, touched, 50257, seed, 12564, generator);
      const expected = torchRandperm(50257, seed).subarray(0, 12564);
      expect(Array.from(reused)).toEqual(Array.from(expected));
      expect(identity.every((value, i) => value === i)).toBe(true);
    }
  });

  it('the prefix as a set: the bits of its values (and no others), the identity restored', () => {
    const generator = createMt19937(0);
    for (const [n, prefix] of [
      [50257, 12564],
      [1000, 1000],
      [33, 32],
      [2, 1],
    ] as const) {
      const identity = Int32Array.from({ length: n }, (_, i) => i);
      const draws = new Uint32Array(prefix);
      for (const seed of [0, 12345, 0xffffffff]) {
        // stale bits from an earlier list must not survive
        const bits = new Uint32Array(Math.ceil(n / 32)).fill(0xffffffff);
        torchRandpermPrefixSetInto(bits, identity, draws, n, seed, prefix, generator);
        const expected = new Set(torchRandperm(n, seed).subarray(0, prefix));
        const members: number[] = [];
        for (let value = 0; value < n; value++)
          if ((bits[value >>> 5]! >>> (value & 31)) & 1) members.push(value);
        expect(members.length).toBe(prefix);
        expect(members.every((value) => expected.has(value))).toBe(true);
        expect(identity.every((value, i) => value === i)).toBe(true);
      }
    }
  });

  it('the vectors were also produced by a newer torch, which agrees below the large-n threshold only', () => {
    const other = vectors.peer.otherTorch;
    expect(other.length).toBeGreaterThan(0);
    for (const entry of other) {
      expect(entry.randpermEqual).toBe(true);
      const [below, at] = entry.large;
      const [ourBelow, ourAt] = vectors.randpermLarge;
      expect(below!.n).toBe(TORCH_RANDPERM_LARGE_N - 1);
      expect(below!.head).toEqual(ourBelow!.head);
      expect(at!.n).toBe(TORCH_RANDPERM_LARGE_N);
      expect(at!.head).not.toEqual(ourAt!.head);
    }
  });

  it('refuses lengths where torch versions disagree', () => {
    expect(() => torchRandperm(TORCH_RANDPERM_LARGE_N, 1)).toThrow(RangeError);
    expect(() => torchRandperm(-1, 1)).toThrow(RangeError);
    expect(Array.from(torchRandperm(0, 1))).toEqual([]);
  });
});
