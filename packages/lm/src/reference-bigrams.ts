/**
 * The learnability table of the spoofing-artefact test (@tracemark/detection `createSpoofingChecker`):
 * bigram counts of the Brown corpus's training split in a tokenizer's ids. Human text the default model
 * was trained on and no watermark touched: the pairs common there are the pairs an attacker can learn.
 * The gateway and `tracemark detect` both take it from here, so the same text gets the same numbers.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNgramCounts, type NgramCounts, ngramCountsFromTable } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';
import { defaultCacheDirectory, writeAtomically } from './default-model.js';
import { humanCorpusFingerprint, loadHumanCorpus } from './human-corpus.js';

/** What {@link brownBigramCounts} counts, as the spoofing test reports it. */
export const BROWN_BIGRAMS_LEARNABILITY = 'bigram counts of the Brown corpus (training split)';

const built = new WeakMap<Tokenizer, Promise<NgramCounts>>();

/** Cache file format: magic, version, n; then n float64 keys and n uint32 counts (little-endian). */
const MAGIC = 0x54424752; // "TBGR"
const FORMAT_VERSION = 1;

function serialize(keys: Float64Array, counts: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(12 + keys.length * 12);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, FORMAT_VERSION, true);
  view.setUint32(8, keys.length, true);
  for (let i = 0; i < keys.length; i++) view.setFloat64(12 + i * 8, keys[i]!, true);
  const offset = 12 + keys.length * 8;
  for (let i = 0; i < counts.length; i++) view.setUint32(offset + i * 4, counts[i]!, true);
  return bytes;
}

function deserialize(bytes: Uint8Array): NgramCounts | null {
  if (bytes.byteLength < 12) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(8, true);
  if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== FORMAT_VERSION) return null;
  if (bytes.byteLength !== 12 + n * 12) return null;
  const keys = new Float64Array(n);
  const counts = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = view.getFloat64(12 + i * 8, true);
  for (let i = 0; i < n; i++) counts[i] = view.getUint32(12 + n * 8 + i * 4, true);
  return ngramCountsFromTable({ order: 2, keys, counts });
}

/** Reads the table from `cacheDir`, or builds and stores it (no per-process memo: {@link brownBigramCounts} has one). */
export async function loadBrownBigramCounts(tokenizer: Tokenizer, cacheDir: string): Promise<NgramCounts> {
  // The corpus's and the tokenizer's identity name the file: a change misses the cache.
  const path = join(
    cacheDir,
    `brown-bigrams-${await humanCorpusFingerprint()}-${tokenizer.id}-v${FORMAT_VERSION}.bin`,
  );
  try {
    const cached = deserialize(new Uint8Array(await readFile(path)));
    if (cached !== null) return cached;
  } catch {
    // Missing or unreadable (or not well-formed): build it afresh and replace it.
  }
  const documents = await loadHumanCorpus({ split: 'train', source: 'brown' });
  const counts = createNgramCounts(
    documents.map((document) => tokenizer.encodeFast(document.text)),
    2,
  );
  const table = counts.toTable();
  if (table !== null) {
    await writeAtomically(path, serialize(table.keys, table.counts)).catch(() => {
      // A read-only or full disk costs only the cache.
    });
  }
  return counts;
}

/**
 * Bigram counts of the Brown corpus's training split, encoded with `tokenizer`: built once (about 1–2 s)
 * and kept in the cache directory (`$TRACEMARK_CACHE_DIR`, else `~/.cache/tracemark`, as the default model
 * is), then read from there; once per tokenizer in a process (a failed load is tried again on the next call).
 */
export function brownBigramCounts(
  tokenizer: Tokenizer,
  options: { readonly cacheDir?: string } = {},
): Promise<NgramCounts> {
  let counts = built.get(tokenizer);
  if (counts === undefined) {
    counts = loadBrownBigramCounts(tokenizer, options.cacheDir ?? defaultCacheDirectory());
    built.set(tokenizer, counts);
    counts.catch(() => built.delete(tokenizer));
  }
  return counts;
}
