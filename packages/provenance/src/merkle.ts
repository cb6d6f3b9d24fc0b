/**
 * Merkle tree hashing, proofs and proof verification for an append-only log, as defined by
 * RFC 6962 §2.1 (https://www.rfc-editor.org/rfc/rfc6962#section-2.1) and RFC 9162 §2.1
 * (https://www.rfc-editor.org/rfc/rfc9162#section-2.1) with SHA-256.
 *
 * The proof builders here work on an in-memory array of leaf hashes and follow the RFC recursion
 * literally; `MerkleLog` builds the same proofs from stored subtree hashes in O(log n) reads.
 * Verification never throws: malformed input simply fails to verify.
 */
import { bytesEqual, concatBytes, sha256 } from './bytes.js';

/** Size in bytes of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** MTH of a one-entry list: SHA-256(0x00 || leaf). */
export function leafHash(leaf: Uint8Array): Uint8Array {
  if (!(leaf instanceof Uint8Array)) throw new TypeError('leaf: expected a Uint8Array');
  return sha256(LEAF_PREFIX, leaf);
}

/** Interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

/** MTH of the empty list: SHA-256 of the empty string. */
export function emptyRootHash(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** The largest power of two strictly smaller than `n` (n ≥ 2), without 32-bit bit operations. */
export function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function isPowerOfTwo(n: number): boolean {
  return n === 1 || (n >= 2 && largestPowerOfTwoBelow(n) * 2 === n);
}

/** A tree size or leaf index: a non-negative safe integer. */
export function isTreeIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_SIZE;
}

function half(n: number): number {
  return Math.floor(n / 2);
}

function checkLeafHashes(leafHashes: readonly Uint8Array[]): void {
  if (!Array.isArray(leafHashes)) throw new TypeError('leafHashes: expected an array of 32-byte hashes');
  for (let i = 0; i < leafHashes.length; i++) {
    if (!isHash(leafHashes[i])) throw new TypeError(`leafHashes[${i}]: expected a 32-byte Uint8Array`);
  }
}

/**
 * The Merkle Tree Hash (RFC 6962 §2.1) of a list of leaf hashes, in O(n) time and O(log n) space:
 * complete subtrees are merged as soon as they form, then the remaining ones are folded right to left.
 */
export function rootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  checkLeafHashes(leafHashes);
  if (leafHashes.length === 0) return emptyRootHash();
  const stack: Uint8Array[] = [];
  const sizes: number[] = [];
  for (const hash of leafHashes) {
    let current = hash;
    let size = 1;
    while (sizes.length > 0 && sizes[sizes.length - 1] === size) {
      current = nodeHash(stack.pop()!, current);
      sizes.pop();
      size *= 2;
    }
    stack.push(current);
    sizes.push(size);
  }
  let root = stack[stack.length - 1]!;
  for (let i = stack.length - 2; i >= 0; i--) root = nodeHash(stack[i]!, root);
  return leafHashes.length === 1 ? root.slice() : root;
}

// MTH(D[start:end]) by the RFC's recursive definition.
function subtreeHash(leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  if (end - start === 1) return leafHashes[start]!.slice();
  const k = largestPowerOfTwoBelow(end - start);
  return nodeHash(subtreeHash(leafHashes, start, start + k), subtreeHash(leafHashes, start + k, end));
}

/**
 * The audit path PATH(m, D[n]) of RFC 6962 §2.1.1 for leaf `leafIndex` in the tree made of the first
 * `treeSize` leaf hashes (default: all of them).
 */
export function inclusionProofFromLeafHashes(
  leafHashes: readonly Uint8Array[],
  leafIndex: number,
  treeSize: number = leafHashes.length,
): Uint8Array[] {
  checkLeafHashes(leafHashes);
  if (!isTreeIndex(treeSize) || treeSize > leafHashes.length) {
    throw new RangeError(`treeSize: expected an integer in [0, ${leafHashes.length}], got ${treeSize}`);
  }
  if (!isTreeIndex(leafIndex) || leafIndex >= treeSize) {
    throw new RangeError(`leafIndex: expected an integer in [0, ${treeSize}), got ${leafIndex}`);
  }
  const proof: Uint8Array[] = [];
  const path = (m: number, start: number, end: number): void => {
    if (end - start <= 1) return;
    const k = largestPowerOfTwoBelow(end - start);
    if (m < k) {
      path(m, start, start + k);
      proof.push(subtreeHash(leafHashes, start + k, end));
    } else {
      path(m - k, start + k, end);
      proof.push(subtreeHash(leafHashes, start, start + k));
    }
  };
  path(leafIndex, 0, treeSize);
  return proof;
}

/**
 * The consistency proof PROOF(m, D[n]) of RFC 6962 §2.1.2 between the trees made of the first
 * `oldSize` and `newSize` leaf hashes (default: all of them). Empty when `oldSize` is 0 or equals
 * `newSize`.
 */
export function consistencyProofFromLeafHashes(
  leafHashes: readonly Uint8Array[],
  oldSize: number,
  newSize: number = leafHashes.length,
): Uint8Array[] {
  checkLeafHashes(leafHashes);
  if (!isTreeIndex(newSize) || newSize > leafHashes.length) {
    throw new RangeError(`newSize: expected an integer in [0, ${leafHashes.length}], got ${newSize}`);
  }
  if (!isTreeIndex(oldSize) || oldSize > newSize) {
    throw new RangeError(`oldSize: expected an integer in [0, ${newSize}], got ${oldSize}`);
  }
  const proof: Uint8Array[] = [];
  if (oldSize === 0 || oldSize === newSize) return proof;
  const subproof = (m: number, start: number, end: number, complete: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(subtreeHash(leafHashes, start, end));
      return;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      subproof(m, start, start + k, complete);
      proof.push(subtreeHash(leafHashes, start + k, end));
    } else {
      subproof(m - k, start + k, end, false);
      proof.push(subtreeHash(leafHashes, start, start + k));
    }
  };
  subproof(oldSize, 0, newSize, true);
  return proof;
}

function isProof(proof: unknown): proof is readonly Uint8Array[] {
  return Array.isArray(proof) && proof.every(isHash);
}

/**
 * Verifies an inclusion proof with the algorithm of RFC 9162 §2.1.3.2: `proof` must show that
 * `leafHash` is leaf number `leafIndex` of the tree of size `treeSize` whose root is `root`.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  leafIndex: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(leafHash) || !isHash(root) || !isProof(proof)) return false;
  if (!isTreeIndex(leafIndex) || !isTreeIndex(treeSize)) return false;
  // Step 1.
  if (leafIndex >= treeSize) return false;
  // Steps 2 and 3.
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  // Step 4.
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  return sn === 0 && bytesEqual(r, root);
}

/**
 * Verifies a consistency proof with the algorithm of RFC 9162 §2.1.4.2: `proof` must show that the
 * tree of size `oldSize` with root `oldRoot` is a prefix of the tree of size `newSize` with root
 * `newRoot`. The RFC algorithm covers 0 < oldSize < newSize; outside it, equal sizes verify only with
 * an empty proof and equal roots, and size 0 only with an empty proof and the empty-tree root.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isHash(oldRoot) || !isHash(newRoot) || !isProof(proof)) return false;
  if (!isTreeIndex(oldSize) || !isTreeIndex(newSize) || oldSize > newSize) return false;
  if (oldSize === newSize) return proof.length === 0 && bytesEqual(oldRoot, newRoot);
  if (oldSize === 0) return proof.length === 0 && bytesEqual(oldRoot, emptyRootHash());
  // Step 1.
  if (proof.length === 0) return false;
  // Step 2.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  // Step 3.
  let fn = oldSize - 1;
  let sn = newSize - 1;
  // Step 4.
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  let fr = path[0]!;
  let sr = path[0]!;
  // Step 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // Step 7.
  return bytesEqual(fr, oldRoot) && bytesEqual(sr, newRoot) && sn === 0;
}
