/**
 * An append-only RFC 6962 Merkle log over a caller-supplied store.
 *
 * The store keeps the leaf hashes and the hash of every complete (perfect) subtree, addressed by
 * level and index: node (level, index) covers leaves [index·2^level, (index+1)·2^level). Every hash a
 * proof needs is either such a node or, at the right edge of the tree, the fold of at most log2(n) of
 * them, so a proof or a root costs O(log n) node reads, fetched in one batch.
 */
import { ProvenanceError } from './errors.js';
import {
  emptyRootHash,
  HASH_SIZE,
  isHash,
  isTreeIndex,
  largestPowerOfTwoBelow,
  nodeHash,
  leafHash as rfcLeafHash,
  rootFromLeafHashes,
} from './merkle.js';

/** A value or a promise of it, so that synchronous (SQLite) and asynchronous (PostgreSQL) stores fit. */
export type Awaitable<T> = T | PromiseLike<T>;

/** The complete subtree covering leaves [index·2^level, (index+1)·2^level); level 0 is a leaf. */
export interface NodeRef {
  readonly level: number;
  readonly index: number;
}

export interface StoredNode extends NodeRef {
  readonly hash: Uint8Array;
}

/** One append: the new leaf hashes and the complete subtrees (level ≥ 1) they finish. */
export interface LogAppendBatch {
  /** Index of the first new leaf, which is the size the store must have before the append. */
  readonly startIndex: number;
  readonly leafHashes: readonly Uint8Array[];
  /** Every subtree of level ≥ 1 that becomes complete with this append, children before parents. */
  readonly nodes: readonly StoredNode[];
}

/**
 * Storage behind a {@link MerkleLog}. A SQL store maps it onto two tables, leaves(index, hash) and
 * nodes(level, index, hash); appends must be atomic.
 */
export interface LogStore {
  /** Number of leaves stored. */
  size(): Awaitable<number>;
  /**
   * Stores a batch atomically. Must fail (throw or reject) without storing anything when the store's
   * size is not `batch.startIndex`: that is how concurrent writers are detected.
   */
  append(batch: LogAppendBatch): Awaitable<void>;
  /** Hash of leaf `index` (< size). */
  leafHash(index: number): Awaitable<Uint8Array>;
  /**
   * Hashes of complete subtrees, in the order asked (level 0 = leaf hashes). Optional: without it the
   * log recomputes subtrees from leaf hashes, and proofs cost O(n) reads instead of O(log n).
   */
  nodeHashes?(refs: readonly NodeRef[]): Awaitable<readonly Uint8Array[]>;
}

/** Thrown by a store when an append does not start at its current size (another writer got there first). */
export function logConflictError(expectedSize: number, actualSize: number): ProvenanceError {
  return new ProvenanceError(
    'TM_ERR_LOG_CONFLICT',
    `log append expected size ${expectedSize} but the store has ${actualSize} leaves`,
  );
}

/** A {@link LogStore} held in memory, for tests and short-lived tools. */
export class MemoryLogStore implements LogStore {
  readonly #levels: Uint8Array[][] = [[]];

  size(): number {
    return this.#levels[0]!.length;
  }

  append(batch: LogAppendBatch): void {
    const size = this.size();
    if (batch.startIndex !== size) throw logConflictError(batch.startIndex, size);
    for (const node of batch.nodes) {
      if (node.level < 1 || !isHash(node.hash))
        throw new TypeError('batch.nodes: expected level ≥ 1 and 32-byte hashes');
    }
    for (const hash of batch.leafHashes) {
      if (!isHash(hash)) throw new TypeError('batch.leafHashes: expected 32-byte hashes');
    }
    for (const hash of batch.leafHashes) this.#levels[0]!.push(hash.slice());
    for (const node of batch.nodes) {
      while (this.#levels.length <= node.level) this.#levels.push([]);
      this.#levels[node.level]![node.index] = node.hash.slice();
    }
  }

  leafHash(index: number): Uint8Array {
    return this.#node(0, index);
  }

  nodeHashes(refs: readonly NodeRef[]): Uint8Array[] {
    return refs.map((ref) => this.#node(ref.level, ref.index));
  }

  #node(level: number, index: number): Uint8Array {
    const hash = this.#levels[level]?.[index];
    if (hash === undefined) throw new RangeError(`no stored node at level ${level}, index ${index}`);
    return hash.slice();
  }
}

/** The complete subtrees, largest first, whose fold from the right is MTH(D[start:end]). */
function rangeNodes(start: number, end: number): NodeRef[] {
  const refs: NodeRef[] = [];
  let position = start;
  while (position < end) {
    let size = 1;
    let level = 0;
    while (position % (size * 2) === 0 && position + size * 2 <= end) {
      size *= 2;
      level++;
    }
    refs.push({ level, index: position / size });
    position += size;
  }
  return refs;
}

function foldRight(hashes: readonly Uint8Array[]): Uint8Array {
  let hash = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) hash = nodeHash(hashes[i]!, hash);
  return hash;
}

/** Each proof element is MTH of a range, given as the nodes to fold. */
type ProofPlan = NodeRef[][];

function inclusionPlan(leafIndex: number, treeSize: number): ProofPlan {
  const plan: ProofPlan = [];
  // PATH(m, D[start:end]) of RFC 6962 §2.1.1, iteratively: siblings are collected top-down, then reversed.
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const k = largestPowerOfTwoBelow(end - start);
    if (leafIndex < start + k) {
      plan.push(rangeNodes(start + k, end));
      end = start + k;
    } else {
      plan.push(rangeNodes(start, start + k));
      start += k;
    }
  }
  return plan.reverse();
}

function consistencyPlan(oldSize: number, newSize: number): ProofPlan {
  const plan: ProofPlan = [];
  // SUBPROOF(m, D[start:end], complete) of RFC 6962 §2.1.2, iteratively, as above.
  let m = oldSize;
  let start = 0;
  let end = newSize;
  let complete = true;
  while (m !== end - start) {
    const k = largestPowerOfTwoBelow(end - start);
    if (m <= k) {
      plan.push(rangeNodes(start + k, end));
      end = start + k;
    } else {
      plan.push(rangeNodes(start, start + k));
      m -= k;
      start += k;
      complete = false;
    }
  }
  if (!complete) plan.push(rangeNodes(start, end));
  return plan.reverse();
}

/**
 * The compact range of a tree of `size` leaves: its complete subtrees, largest (leftmost) first, whose
 * fold from the right is the root. A store that appends inside its own transaction reads these nodes,
 * then calls {@link planAppend}.
 */
export function compactRange(size: number): NodeRef[] {
  if (!isTreeIndex(size)) throw new RangeError(`size: expected a non-negative safe integer, got ${size}`);
  return rangeNodes(0, size);
}

/** What appending leaf hashes to a tree does: the batch to store and the new compact range. */
export interface AppendPlan {
  readonly batch: LogAppendBatch;
  /** Log size after the append. */
  readonly size: number;
  /** Compact range after the append (see {@link compactRange}). */
  readonly compactRange: readonly StoredNode[];
}

/**
 * Plans an append of `leafHashes` to the tree of `startIndex` leaves whose compact range (the nodes of
 * `compactRange(startIndex)`, with their hashes, in that order) is given. Pure: lets a SQL store append
 * leaves and nodes in the same transaction as the records they log.
 */
export function planAppend(
  startIndex: number,
  range: readonly StoredNode[],
  leafHashes: readonly Uint8Array[],
): AppendPlan {
  const expected = compactRange(startIndex);
  if (
    !Array.isArray(range) ||
    range.length !== expected.length ||
    range.some(
      (node, i) =>
        node.level !== expected[i]!.level || node.index !== expected[i]!.index || !isHash(node.hash),
    )
  ) {
    throw new TypeError(`range: expected the hashes of compactRange(${startIndex})`);
  }
  if (!Array.isArray(leafHashes)) throw new TypeError('leafHashes: expected an array of 32-byte hashes');
  leafHashes.forEach((hash, i) => {
    if (!isHash(hash)) throw new TypeError(`leafHashes[${i}]: expected a 32-byte Uint8Array`);
  });
  const stack: StoredNode[] = [...range];
  const nodes: StoredNode[] = [];
  let index = startIndex;
  for (const hash of leafHashes) {
    stack.push({ level: 0, index: index++, hash });
    while (stack.length >= 2 && stack[stack.length - 1]!.level === stack[stack.length - 2]!.level) {
      const right = stack.pop()!;
      const left = stack.pop()!;
      const parent: StoredNode = {
        level: right.level + 1,
        index: Math.floor(right.index / 2),
        hash: nodeHash(left.hash, right.hash),
      };
      nodes.push(parent);
      stack.push(parent);
    }
  }
  return { batch: { startIndex, leafHashes, nodes }, size: index, compactRange: stack };
}

/** Where an append landed: the index of its first leaf and the log size after it. */
export interface LogAppendResult {
  readonly firstIndex: number;
  readonly size: number;
}

interface CompactRange {
  readonly size: number;
  readonly nodes: readonly StoredNode[];
}

/**
 * An append-only Merkle log (RFC 6962 / RFC 9162) over a {@link LogStore}. Appends from one instance
 * are serialized; appends from several processes are kept consistent by the store's size check.
 */
export class MerkleLog {
  readonly #store: LogStore;
  #tail: Promise<unknown> = Promise.resolve();
  #compact: CompactRange | undefined;

  constructor(store: LogStore) {
    this.#store = store;
  }

  /** Number of leaves in the log. */
  async size(): Promise<number> {
    const size = await this.#store.size();
    if (!isTreeIndex(size)) throw new TypeError(`store.size(): expected a non-negative integer, got ${size}`);
    return size;
  }

  /** Hashes raw leaf data (SHA-256(0x00 || leaf)) and appends it. */
  async appendLeaves(leaves: readonly Uint8Array[]): Promise<LogAppendResult> {
    if (!Array.isArray(leaves)) throw new TypeError('leaves: expected an array of Uint8Array');
    return this.appendLeafHashes(leaves.map((leaf) => rfcLeafHash(leaf)));
  }

  /** Appends leaf hashes; resolves to the index of the first one and the new size. */
  async appendLeafHashes(leafHashes: readonly Uint8Array[]): Promise<LogAppendResult> {
    if (!Array.isArray(leafHashes)) throw new TypeError('leafHashes: expected an array of 32-byte hashes');
    leafHashes.forEach((hash, i) => {
      if (!isHash(hash)) throw new TypeError(`leafHashes[${i}]: expected a 32-byte Uint8Array`);
    });
    const copies = leafHashes.map((hash) => hash.slice());
    const result = this.#tail.then(() => this.#append(copies));
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async #append(leafHashes: readonly Uint8Array[]): Promise<LogAppendResult> {
    const firstIndex = await this.size();
    const plan = planAppend(firstIndex, (await this.#compactRange(firstIndex)).nodes, leafHashes);
    this.#compact = undefined;
    await this.#store.append(plan.batch);
    this.#compact = { size: plan.size, nodes: plan.compactRange };
    return { firstIndex, size: plan.size };
  }

  async #compactRange(size: number): Promise<CompactRange> {
    if (this.#compact?.size === size) return this.#compact;
    const refs = rangeNodes(0, size);
    const hashes = await this.#read(refs);
    return { size, nodes: refs.map((ref, i) => ({ ...ref, hash: hashes[i]! })) };
  }

  /** Hash of leaf `index`. */
  async leafHash(index: number): Promise<Uint8Array> {
    const size = await this.size();
    checkIndex('index', index, size);
    const [hash] = await this.#read([{ level: 0, index }]);
    return hash!.slice();
  }

  /** Root hash of the tree made of the first `treeSize` leaves (default: the whole log). */
  async root(treeSize?: number): Promise<Uint8Array> {
    const size = await this.#checkedTreeSize('treeSize', treeSize);
    if (size === 0) return emptyRootHash();
    const [root] = await this.#resolve([rangeNodes(0, size)]);
    return root!;
  }

  /** Audit path for leaf `leafIndex` in the tree of size `treeSize` (default: the whole log). */
  async inclusionProof(leafIndex: number, treeSize?: number): Promise<Uint8Array[]> {
    const size = await this.#checkedTreeSize('treeSize', treeSize);
    checkIndex('leafIndex', leafIndex, size);
    return this.#resolve(inclusionPlan(leafIndex, size));
  }

  /** Consistency proof from the tree of size `oldSize` to that of size `newSize` (default: the whole log). */
  async consistencyProof(oldSize: number, newSize?: number): Promise<Uint8Array[]> {
    const size = await this.#checkedTreeSize('newSize', newSize);
    if (!isTreeIndex(oldSize) || oldSize > size) {
      throw new RangeError(`oldSize: expected an integer in [0, ${size}], got ${oldSize}`);
    }
    if (oldSize === 0 || oldSize === size) return [];
    return this.#resolve(consistencyPlan(oldSize, size));
  }

  async #checkedTreeSize(name: string, treeSize: number | undefined): Promise<number> {
    const size = await this.size();
    if (treeSize === undefined) return size;
    if (!isTreeIndex(treeSize) || treeSize > size) {
      throw new RangeError(`${name}: expected an integer in [0, ${size}], got ${treeSize}`);
    }
    return treeSize;
  }

  async #resolve(plan: ProofPlan): Promise<Uint8Array[]> {
    const hashes = await this.#read(plan.flat());
    let offset = 0;
    return plan.map((refs) => {
      const element = foldRight(hashes.slice(offset, offset + refs.length));
      offset += refs.length;
      return refs.length === 1 ? element.slice() : element;
    });
  }

  async #read(refs: readonly NodeRef[]): Promise<Uint8Array[]> {
    if (refs.length === 0) return [];
    let hashes: readonly Uint8Array[];
    if (this.#store.nodeHashes !== undefined) {
      hashes = await this.#store.nodeHashes(refs);
    } else {
      hashes = await Promise.all(refs.map((ref) => this.#recompute(ref)));
    }
    if (!Array.isArray(hashes) || hashes.length !== refs.length || !hashes.every(isHash)) {
      throw new TypeError(`store.nodeHashes(): expected ${refs.length} hashes of ${HASH_SIZE} bytes`);
    }
    return [...hashes];
  }

  async #recompute(ref: NodeRef): Promise<Uint8Array> {
    const width = 2 ** ref.level;
    const first = ref.index * width;
    const leaves: Uint8Array[] = [];
    for (let i = first; i < first + width; i++) leaves.push(await this.#store.leafHash(i));
    return rootFromLeafHashes(leaves);
  }
}

function checkIndex(name: string, index: number, size: number): void {
  if (!isTreeIndex(index) || index >= size) {
    throw new RangeError(`${name}: expected an integer in [0, ${size}), got ${index}`);
  }
}
