import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import {
  consistencyProofFromLeafHashes,
  emptyRootHash,
  inclusionProofFromLeafHashes,
  leafHash,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';

// Expected values from the RFC 6962 test data of github.com/transparency-dev/merkle
// (testonly/constants.go and proof/verify_test.go). Leaf inputs are hex.
const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
];
const LEAF_HASHES = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
  '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
  'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
  'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
  '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
];
/** Roots by tree size, 0 to 8. */
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
/** Zero-based leaf index, tree size, audit path. */
const INCLUSION: readonly [number, number, string[]][] = [
  [0, 1, []],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];
/** Old size, new size, proof. */
const CONSISTENCY: readonly [number, number, string[]][] = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    6,
    7,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];

const hashes = LEAVES.map((leaf) => leafHash(fromHex(leaf)));
const root = (size: number): Uint8Array => fromHex(ROOTS[size]!);
const SOME_HASH = fromHex('abacaba000000000000000000000000000000000000000000060061e00123456');

function flipBit(hash: Uint8Array, bit: number): Uint8Array {
  const copy = hash.slice();
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

/** Random leaf hashes, distinct with overwhelming probability. */
function randomLeafHashes(count: number, seed: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    leafHash(new Uint8Array([seed & 255, seed >> 8, i & 255, i >> 8, i >> 16])),
  );
}

describe('RFC 6962 hashing', () => {
  it('hashes the reference leaves', () => {
    expect(hashes.map(toHex)).toEqual(LEAF_HASHES);
  });

  it('computes the reference roots for every size 0..8', () => {
    for (let size = 0; size <= 8; size++) {
      expect(toHex(rootFromLeafHashes(hashes.slice(0, size))), `size ${size}`).toBe(ROOTS[size]);
    }
    expect(toHex(emptyRootHash())).toBe(ROOTS[0]);
  });

  it('does not alias its input for a one-leaf tree', () => {
    const single = [hashes[0]!];
    const result = rootFromLeafHashes(single);
    result[0] = 0;
    expect(toHex(hashes[0]!)).toBe(LEAF_HASHES[0]);
  });

  it('rejects hashes of the wrong size', () => {
    expect(() => rootFromLeafHashes([new Uint8Array(31)])).toThrow(TypeError);
  });
});

describe('inclusion proofs', () => {
  it.each(INCLUSION)('builds and verifies the reference proof for leaf %i of %i', (index, size, expected) => {
    const proof = inclusionProofFromLeafHashes(hashes, index, size);
    expect(proof.map(toHex)).toEqual(expected);
    expect(verifyInclusion(hashes[index]!, index, size, proof, root(size))).toBe(true);
  });

  // The corruptions of transparency-dev/merkle's verifierCheck, each of which must fail.
  it.each(INCLUSION.filter(([, size]) => size > 1))(
    'rejects every corruption of the proof for leaf %i of %i',
    (index, size, expected) => {
      const proof = expected.map((hex) => fromHex(hex));
      const leaf = hashes[index]!;
      const r = root(size);
      const probes: [string, number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        ['index - 1', index - 1, size, leaf, r, proof],
        ['index + 1', index + 1, size, leaf, r, proof],
        ['index ^ 2', index ^ 2, size, leaf, r, proof],
        ['size * 2', index, size * 2, leaf, r, proof],
        ['size / 2', index, Math.floor(size / 2), leaf, r, proof],
        ['wrong leaf', index, size, SOME_HASH, r, proof],
        ['empty root', index, size, leaf, emptyRootHash(), proof],
        ['random root', index, size, leaf, SOME_HASH, proof],
        ['trailing garbage', index, size, leaf, r, [...proof, new Uint8Array(0)]],
        ['trailing root', index, size, leaf, r, [...proof, r]],
        ['preceding garbage', index, size, leaf, r, [new Uint8Array(0), ...proof]],
        ['preceding root', index, size, leaf, r, [r, ...proof]],
        ['removed component', index, size, leaf, r, proof.slice(0, -1)],
        ['inserted component', index, size, leaf, r, [proof[0]!, SOME_HASH, ...proof.slice(1)]],
        ...proof.map((_, i): [string, number, number, Uint8Array, Uint8Array, Uint8Array[]] => [
          `modified proof[${i}]`,
          index,
          size,
          leaf,
          r,
          proof.map((p, j) => (i === j ? flipBit(p, 3) : p)),
        ]),
      ];
      for (const [name, i, n, l, rt, p] of probes) {
        expect(verifyInclusion(l, i, n, p, rt), name).toBe(false);
      }
    },
  );

  it('rejects degenerate sizes and hashes', () => {
    const leaf = hashes[0]!;
    expect(verifyInclusion(leaf, 0, 0, [], emptyRootHash())).toBe(false);
    expect(verifyInclusion(leaf, 1, 0, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 2, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0, 1, [], leaf)).toBe(true);
    expect(verifyInclusion(leaf, 0, 1, [], new Uint8Array(0))).toBe(false);
    expect(verifyInclusion(new Uint8Array(0), 0, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, -1, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0.5, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0, Number.NaN, [], leaf)).toBe(false);
  });

  it('rejects out-of-range requests', () => {
    expect(() => inclusionProofFromLeafHashes(hashes, 8)).toThrow(RangeError);
    expect(() => inclusionProofFromLeafHashes(hashes, 0, 9)).toThrow(RangeError);
    expect(() => inclusionProofFromLeafHashes(hashes, 3, 3)).toThrow(RangeError);
  });
});

describe('consistency proofs', () => {
  it.each(CONSISTENCY)(
    'builds and verifies the reference proof from %i to %i',
    (oldSize, newSize, expected) => {
      const proof = consistencyProofFromLeafHashes(hashes, oldSize, newSize);
      expect(proof.map(toHex)).toEqual(expected);
      expect(verifyConsistency(oldSize, newSize, root(oldSize), root(newSize), proof)).toBe(true);
    },
  );

  it.each(CONSISTENCY.filter(([, , proof]) => proof.length > 0))(
    'rejects every corruption of the proof from %i to %i',
    (oldSize, newSize, expected) => {
      const proof = expected.map((hex) => fromHex(hex));
      const r1 = root(oldSize);
      const r2 = root(newSize);
      const wrong = SOME_HASH;
      const probes: [string, number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        ['size1 - 1', oldSize - 1, newSize, r1, r2, proof],
        ['size1 + 1', oldSize + 1, newSize, r1, r2, proof],
        ['size1 ^ 2', oldSize ^ 2, newSize, r1, r2, proof],
        ['size2 * 2', oldSize, newSize * 2, r1, r2, proof],
        ['size2 / 2', oldSize, Math.floor(newSize / 2), r1, r2, proof],
        ['wrong root1', oldSize, newSize, wrong, r2, proof],
        ['wrong root2', oldSize, newSize, r1, wrong, proof],
        ['swapped roots', oldSize, newSize, r2, r1, proof],
        ['empty proof', oldSize, newSize, r1, r2, []],
        ['trailing garbage', oldSize, newSize, r1, r2, [...proof, new Uint8Array(0)]],
        ['trailing root1', oldSize, newSize, r1, r2, [...proof, r1]],
        ['trailing root2', oldSize, newSize, r1, r2, [...proof, r2]],
        ['preceding garbage', oldSize, newSize, r1, r2, [new Uint8Array(0), ...proof]],
        ['preceding root1', oldSize, newSize, r1, r2, [r1, ...proof]],
        ['preceding root2', oldSize, newSize, r1, r2, [r2, ...proof]],
        ['preceding proof[0]', oldSize, newSize, r1, r2, [proof[0]!, ...proof]],
        ['truncated proof', oldSize, newSize, r1, r2, proof.slice(0, -1)],
        ...proof.map((_, i): [string, number, number, Uint8Array, Uint8Array, Uint8Array[]] => [
          `modified proof[${i}]`,
          oldSize,
          newSize,
          r1,
          r2,
          proof.map((p, j) => (i === j ? flipBit(p, 4) : p)),
        ]),
      ];
      for (const [name, m, n, a, b, p] of probes) {
        expect(verifyConsistency(m, n, a, b, p), name).toBe(false);
      }
    },
  );

  it('handles the sizes outside the RFC algorithm strictly', () => {
    const empty = emptyRootHash();
    const r1 = root(1);
    expect(verifyConsistency(0, 0, empty, empty, [])).toBe(true);
    expect(verifyConsistency(0, 1, empty, r1, [])).toBe(true);
    expect(verifyConsistency(0, 1, SOME_HASH, r1, [])).toBe(false);
    expect(verifyConsistency(0, 1, empty, r1, [empty])).toBe(false);
    expect(verifyConsistency(1, 1, r1, r1, [])).toBe(true);
    expect(verifyConsistency(1, 1, r1, root(2), [])).toBe(false);
    expect(verifyConsistency(1, 1, r1, r1, [empty])).toBe(false);
    expect(verifyConsistency(1, 0, r1, empty, [])).toBe(false);
    expect(verifyConsistency(2, 1, root(2), r1, [])).toBe(false);
    expect(verifyConsistency(1, 2, r1, root(2), [])).toBe(false);
    expect(consistencyProofFromLeafHashes(hashes, 0, 8)).toEqual([]);
    expect(consistencyProofFromLeafHashes(hashes, 8, 8)).toEqual([]);
    expect(() => consistencyProofFromLeafHashes(hashes, 5, 4)).toThrow(RangeError);
  });
});

describe('properties', () => {
  const sizes = fc.integer({ min: 1, max: 300 }).chain((size) =>
    fc.record({
      size: fc.constant(size),
      index: fc.integer({ min: 0, max: size - 1 }),
      seed: fc.nat(65535),
    }),
  );

  it('every inclusion proof verifies, and fails for any other index, size, leaf or root', () => {
    fc.assert(
      fc.property(sizes, fc.nat(), ({ size, index, seed }, bit) => {
        const leaves = randomLeafHashes(size, seed);
        const r = rootFromLeafHashes(leaves);
        const proof = inclusionProofFromLeafHashes(leaves, index);
        expect(verifyInclusion(leaves[index]!, index, size, proof, r)).toBe(true);
        expect(verifyInclusion(leaves[index]!, index, size, proof, flipBit(r, bit % 256))).toBe(false);
        expect(verifyInclusion(flipBit(leaves[index]!, bit % 256), index, size, proof, r)).toBe(false);
        if (size > 1) {
          const other = (index + 1 + (bit % (size - 1))) % size;
          expect(verifyInclusion(leaves[index]!, other, size, proof, r)).toBe(false);
          expect(verifyInclusion(leaves[other]!, index, size, proof, r)).toBe(false);
          const element = bit % proof.length;
          const tampered = proof.map((p, j) => (j === element ? flipBit(p, bit % 256) : p));
          expect(verifyInclusion(leaves[index]!, index, size, tampered, r)).toBe(false);
          expect(verifyInclusion(leaves[index]!, index, size, proof.slice(1), r)).toBe(false);
        }
        // A proof does not pin the tree size exactly (neighbouring sizes can share a path shape),
        // but it cannot stretch to a tree twice as large.
        expect(verifyInclusion(leaves[index]!, index, size * 2, proof, r)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('every consistency proof verifies, and fails when a root, size or proof element changes', () => {
    const pairs = fc.integer({ min: 1, max: 300 }).chain((newSize) =>
      fc.record({
        newSize: fc.constant(newSize),
        oldSize: fc.integer({ min: 1, max: newSize }),
        seed: fc.nat(65535),
      }),
    );
    fc.assert(
      fc.property(pairs, fc.nat(), ({ oldSize, newSize, seed }, bit) => {
        const leaves = randomLeafHashes(newSize, seed);
        const oldRoot = rootFromLeafHashes(leaves.slice(0, oldSize));
        const newRoot = rootFromLeafHashes(leaves);
        const proof = consistencyProofFromLeafHashes(leaves, oldSize);
        expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof)).toBe(true);
        expect(verifyConsistency(oldSize, newSize, flipBit(oldRoot, bit % 256), newRoot, proof)).toBe(false);
        expect(verifyConsistency(oldSize, newSize, oldRoot, flipBit(newRoot, bit % 256), proof)).toBe(false);
        if (proof.length > 0) {
          const element = bit % proof.length;
          const tampered = proof.map((p, j) => (j === element ? flipBit(p, bit % 256) : p));
          expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, tampered)).toBe(false);
          expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof.slice(0, -1))).toBe(false);
          expect(verifyConsistency(oldSize, newSize * 2, oldRoot, newRoot, proof)).toBe(false);
        }
        if (oldSize < newSize && oldSize > 1) {
          expect(verifyConsistency(oldSize - 1, newSize, oldRoot, newRoot, proof)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('the root of a tree is what a one-leaf inclusion proof walks to, for every leaf', () => {
    for (let size = 1; size <= 40; size++) {
      const leaves = randomLeafHashes(size, size);
      const r = rootFromLeafHashes(leaves);
      for (let index = 0; index < size; index++) {
        expect(
          verifyInclusion(leaves[index]!, index, size, inclusionProofFromLeafHashes(leaves, index), r),
        ).toBe(true);
      }
      for (let oldSize = 1; oldSize <= size; oldSize++) {
        const proof = consistencyProofFromLeafHashes(leaves, oldSize);
        const oldRoot = rootFromLeafHashes(leaves.slice(0, oldSize));
        expect(verifyConsistency(oldSize, size, oldRoot, r, proof), `${oldSize} -> ${size}`).toBe(true);
      }
    }
  });
});
