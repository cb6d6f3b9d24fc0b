/**
 * The packed path of a corpus-wide test ({@link ForeignCorpusTest} with a scorer's `packedUnits`):
 * every unit of the corpus kept as a tuple of 32-bit words, in order, and the distinct ones found at
 * the end, all at once ({@link tupleIdsInOrder}: bucketed by hash, each bucket deduplicated in a
 * table that stays in cache) rather than looked up one by one in a corpus-sized map.
 */
import { grown, tupleHash, tupleIdsInOrder } from './tables.ts';

/** Arrays sized from a hint start at most this large (they still grow past it). */
const MAX_PRESIZE = 1 << 23;
/** 32-bit words in a 4 KB page. */
const PAGE_WORDS = 1024;

/** Sums the distinct units' values, in the order given, over the corpus and per document. */
export class UnitTally {
  numScored = 0;
  score = 0;
  excluded = 0;
  readonly perDocument: { readonly numScored: Uint32Array; readonly score: Float64Array };

  constructor(numDocuments: number) {
    this.perDocument = { numScored: new Uint32Array(numDocuments), score: new Float64Array(numDocuments) };
  }

  add(value: number, document: number): void {
    this.numScored++;
    this.score += value;
    this.perDocument.numScored[document]!++;
    this.perDocument.score[document]! += value;
  }
}

/** A corpus's units as word tuples: `add` each document's in order, then `tally` once. */
export class PackedUnitStore {
  readonly width: number;
  private words: Uint32Array;
  private values: Float64Array;
  /** Each unit's {@link tupleHash}, computed as it comes (its words are in cache then). */
  private hashes: Int32Array;
  /** False once {@link tally} has written ids over the hashes: a later tally computes them again. */
  private hashed = true;
  private length = 0;
  /** Per document: where its units end (0 for a number never added). */
  private documentEnds = new Uint32Array(1024);
  private documents = 0;
  private promptWords = new Uint32Array(0);
  private promptLength = 0;
  /**
   * With a size hint: the two arrays the numbering buckets into, made up front, and their pages
   * touched as units come (each page costs a fault when first written: here, while the documents are
   * still coming, rather than all at once at the end).
   */
  private readonly scratch: readonly [Uint32Array, Uint32Array] | null;
  private touched = 0;

  /** `expectedUnits`: about how many units the corpus has (0: unknown, the arrays grow). */
  constructor(width: number, expectedUnits = 0) {
    this.width = width;
    const hinted = Number.isFinite(expectedUnits) && expectedUnits >= 1024;
    const capacity = hinted ? Math.min(MAX_PRESIZE, Math.ceil(expectedUnits)) : 1024;
    this.words = new Uint32Array(capacity * width);
    this.values = new Float64Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.scratch = hinted ? [new Uint32Array(capacity), new Uint32Array(capacity)] : null;
  }

  /** Units given, prompts' aside. */
  get size(): number {
    return this.length;
  }

  /**
   * Adds document number `document`'s units (`words`, width words each, and their `values`) and its
   * prompt's units (which are excluded), after checking them: nothing is kept from a document refused.
   */
  add(document: number, words: Uint32Array, values: Float64Array, prompt: Uint32Array | null): void {
    const width = this.width;
    const count = values.length;
    if (words.length !== count * width) {
      throw new RangeError(`packedUnits: ${words.length} words for ${count} units of ${width} words`);
    }
    if (prompt !== null && prompt.length % width !== 0) {
      throw new RangeError(`packedUnits: ${prompt.length} prompt words for units of ${width} words`);
    }
    // Numbers skipped keep an end of 0, which tally() passes over like a document without units.
    if (!Number.isInteger(document) || document < Math.max(0, this.documents - 1)) {
      throw new RangeError(
        `document: expected document numbers in order (${this.documents - 1} or more), got ${String(document)}`,
      );
    }
    const start = this.length;
    this.documentEnds = grown(this.documentEnds, document + 1);
    this.words = grown(this.words, (start + count) * width);
    this.values = grown(this.values, start + count);
    this.hashes = grown(this.hashes, start + count);
    this.words.set(words, start * width);
    this.values.set(values, start);
    const hashes = this.hashes;
    for (let i = 0; i < count; i++) hashes[start + i] = tupleHash(words, i * width, width);
    this.length = start + count;
    this.documentEnds[document] = this.length;
    this.documents = document + 1;
    this.touchAhead();
    if (prompt === null || prompt.length === 0) return;
    this.promptWords = grown(this.promptWords, this.promptLength * width + prompt.length);
    this.promptWords.set(prompt, this.promptLength * width);
    this.promptLength += prompt.length / width;
  }

  /** A zero on each new page of the scratch arrays, up to the units held (they are zero already). */
  private touchAhead(): void {
    const scratch = this.scratch;
    if (scratch === null) return;
    const limit = Math.min(this.length, scratch[0].length);
    let at = this.touched;
    for (; at < limit; at += PAGE_WORDS) {
      scratch[0][at] = 0;
      scratch[1][at] = 0;
    }
    this.touched = at;
  }

  /**
   * Adds the distinct units seen in no prompt to `tally`, in order of first occurrence, and counts
   * the others as excluded; returns the number of distinct units. The completions' units and then the
   * prompts' are numbered in order of first occurrence in one pass, so the completions' distinct units
   * take ids 0, 1, … in order, and a unit is a prompt's when some prompt unit has its id.
   */
  tally(tally: UnitTally): number {
    const { width, length, promptLength } = this;
    const total = length + promptLength;
    const words = grown(this.words, total * width);
    words.set(this.promptWords.subarray(0, promptLength * width), length * width);
    const hashes = grown(this.hashes, total);
    for (let k = this.hashed ? length : 0; k < total; k++) hashes[k] = tupleHash(words, k * width, width);
    this.hashed = false;
    // The hashes are read before any id is written: the ids take their memory.
    const ids = new Uint32Array(hashes.buffer, 0, total);
    const scratch = this.scratch !== null && this.scratch[0].length >= total ? this.scratch : null;
    tupleIdsInOrder(words, null, hashes, total, width, ids, scratch);
    let distinct = 0;
    for (let k = 0; k < length; k++) if (ids[k] === distinct) distinct++;
    const inPrompt = new Uint8Array(distinct);
    for (let k = length; k < total; k++) if (ids[k]! < distinct) inPrompt[ids[k]!] = 1;
    let next = 0;
    let document = 0;
    for (let k = 0; k < length; k++) {
      if (ids[k] !== next) continue;
      next++;
      if (inPrompt[ids[k]!] === 1) {
        tally.excluded++;
        continue;
      }
      while (document < this.documents && this.documentEnds[document]! <= k) document++;
      tally.add(this.values[k]!, document);
    }
    return distinct;
  }
}
