/**
 * Near-duplicate fingerprints of token sequences: the set of k-token shingles, summarized by a MinHash
 * signature (Broder 1997, "On the resemblance and containment of documents",
 * https://doi.org/10.1109/SEQUEN.1997.666900) and indexed by locality-sensitive hashing in bands
 * (Leskovec, Rajaraman and Ullman, "Mining of Massive Datasets", ch. 3.4, http://www.mmds.org/).
 *
 * The similarity measure is the Jaccard similarity J(A, B) = |A ∩ B| / |A ∪ B| of the two shingle sets.
 * Each of the `numHashes` signature positions agrees with probability J, so the share of equal
 * positions estimates it with standard error sqrt(J(1 − J) / numHashes). A pair becomes an LSH
 * candidate when all `rowsPerBand` positions of at least one band agree: probability
 * 1 − (1 − J^r)^b. Everything here is deterministic and versioned (`NEAR_DUPLICATE_SCHEME`), because
 * signatures are stored: a change of hash, shingle size or layout is a new scheme name.
 */

export const NEAR_DUPLICATE_SCHEME = 'tracemark-minhash-v1';

export interface NearDuplicateParams {
  /** Tokens per shingle (k). */
  readonly shingleSize: number;
  /** Signature length: one min-hash per hash function. */
  readonly numHashes: number;
  /** LSH bands (b); bands × rowsPerBand must equal numHashes. */
  readonly bands: number;
  /** Signature positions per band (r). */
  readonly rowsPerBand: number;
}

/**
 * 2-token shingles, 128 hashes, 64 bands of 2 rows. Random substitution of a fraction e of the tokens
 * leaves a shingle intact with probability s = (1 − e)², so J ≈ s / (2 − s): 0.47 for e = 0.2. A pair
 * with J = 0.35 becomes an LSH candidate with probability 1 − (1 − 0.35²)^64 > 0.9997, one with
 * J = 0.03 with probability 0.06; candidates are then confirmed on the estimated similarity
 * (`NEAR_DUPLICATE_THRESHOLD`). 2-token shingles separated 20%-edited outputs from unrelated outputs
 * of the same model by a wider margin (in standard errors of the estimate) than 1, 3 or 4 tokens.
 */
export const NEAR_DUPLICATE_PARAMS: NearDuplicateParams = Object.freeze({
  shingleSize: 2,
  numHashes: 128,
  bands: 64,
  rowsPerBand: 2,
});

/**
 * Estimated Jaccard similarity at or above which a text is a near-duplicate of an issued output.
 * Measured (`apps/gateway/bench/near-duplicate.ts`, 200-token outputs of the embedded model): 20%-edited
 * outputs 0.36–0.58 exact, unrelated outputs at most 0.08. With 128 hashes the estimate is
 * Bin(128, J) / 128: at J = 0.35 it falls below 0.2 with probability 9e-5, at J = 0.08 it reaches 0.2
 * with probability 9e-6.
 */
export const NEAR_DUPLICATE_THRESHOLD = 0.2;

function checkParams(params: NearDuplicateParams): void {
  const { shingleSize, numHashes, bands, rowsPerBand } = params;
  for (const [name, value] of Object.entries({ shingleSize, numHashes, bands, rowsPerBand })) {
    if (!Number.isSafeInteger(value) || value < 1 || value > 4096) {
      throw new RangeError(`params.${name}: expected an integer in [1, 4096], got ${String(value)}`);
    }
  }
  if (bands * rowsPerBand !== numHashes) {
    throw new RangeError(
      `params: bands × rowsPerBand (${bands} × ${rowsPerBand}) must equal numHashes (${numHashes})`,
    );
  }
}

/** MurmurHash3's 32-bit finalizer: a bijection on 32-bit integers with full avalanche. */
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** splitmix32-style generator for the fixed hash-function parameters. */
function parameterStream(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    return fmix32(state);
  };
}

const MAX_HASHES = 4096;
const next = parameterStream(0x74726d31); // "trm1"
/**
 * Hash i is x ↦ fmix32(fmix32(x ⊕ s_i) + t_i mod 2^32): a permutation of the 32-bit integers. Two
 * rounds, because one (an affine map then fmix32) left the estimates of related hashes correlated:
 * 1.19 standard errors of spread on generated text instead of 1.
 */
const XORS = Uint32Array.from({ length: MAX_HASHES }, () => next());
const OFFSETS = Uint32Array.from({ length: MAX_HASHES }, () => next());

function checkTokens(tokens: ArrayLike<number>, name: string): void {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new TypeError(`${name}: expected an array of token ids`);
  }
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (!Number.isInteger(token) || token < 0 || token > 0xffffffff) {
      throw new RangeError(`${name}[${i}]: expected an unsigned 32-bit integer, got ${String(token)}`);
    }
  }
}

/**
 * The distinct 32-bit hashes of the k-token shingles of `tokens`, ascending. A sequence shorter than k
 * (but not empty) is one shingle of all its tokens; an empty one has none.
 */
export function shingleHashes(
  tokens: ArrayLike<number>,
  shingleSize: number = NEAR_DUPLICATE_PARAMS.shingleSize,
): Uint32Array {
  checkTokens(tokens, 'tokens');
  if (!Number.isSafeInteger(shingleSize) || shingleSize < 1) {
    throw new RangeError(`shingleSize: expected a positive integer, got ${String(shingleSize)}`);
  }
  const n = tokens.length;
  if (n === 0) return new Uint32Array(0);
  const width = Math.min(shingleSize, n);
  const hashes = new Uint32Array(n - width + 1);
  for (let start = 0; start + width <= n; start++) {
    // Murmur3-style mixing of the shingle's tokens, with its length folded in.
    let h = 0x5368696e ^ width;
    for (let j = start; j < start + width; j++) {
      h = Math.imul(h ^ fmix32(tokens[j]!), 0x01000193) >>> 0;
      h = ((h << 13) | (h >>> 19)) >>> 0;
    }
    hashes[start] = fmix32(h);
  }
  hashes.sort();
  let unique = 0;
  for (let i = 0; i < hashes.length; i++) {
    if (i === 0 || hashes[i] !== hashes[i - 1]) hashes[unique++] = hashes[i]!;
  }
  return hashes.slice(0, unique);
}

/** Signature position value of an empty shingle set: larger than any min-hash can be. */
export const EMPTY_MINHASH = 0xffffffff;

/** The MinHash signature of the shingle set of `tokens` (length `params.numHashes`). */
export function minhashSignature(
  tokens: ArrayLike<number>,
  params: NearDuplicateParams = NEAR_DUPLICATE_PARAMS,
): Uint32Array {
  checkParams(params);
  const shingles = shingleHashes(tokens, params.shingleSize);
  const signature = new Uint32Array(params.numHashes).fill(EMPTY_MINHASH);
  for (let i = 0; i < params.numHashes; i++) {
    const xor = XORS[i]!;
    const offset = OFFSETS[i]!;
    let min = EMPTY_MINHASH;
    for (let j = 0; j < shingles.length; j++) {
      const value = fmix32((fmix32(shingles[j]! ^ xor) + offset) >>> 0);
      if (value < min) min = value;
    }
    signature[i] = min;
  }
  return signature;
}

/**
 * Estimated Jaccard similarity: the share of signature positions that agree. Two empty sets are
 * unrelated (0), not identical.
 */
export function estimateJaccard(a: Uint32Array, b: Uint32Array): number {
  if (!(a instanceof Uint32Array) || !(b instanceof Uint32Array))
    throw new TypeError('estimateJaccard: expected two Uint32Array signatures');
  if (a.length !== b.length || a.length === 0) {
    throw new RangeError(`estimateJaccard: signatures of lengths ${a.length} and ${b.length}`);
  }
  let equal = 0;
  let empty = true;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) equal++;
    if (a[i] !== EMPTY_MINHASH || b[i] !== EMPTY_MINHASH) empty = false;
  }
  return empty ? 0 : equal / a.length;
}

/** Exact Jaccard similarity of the two shingle sets (for measurement and tests). */
export function shingleJaccard(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shingleSize: number = NEAR_DUPLICATE_PARAMS.shingleSize,
): number {
  const left = shingleHashes(a, shingleSize);
  const right = shingleHashes(b, shingleSize);
  if (left.length === 0 && right.length === 0) return 0;
  let i = 0;
  let j = 0;
  let common = 0;
  while (i < left.length && j < right.length) {
    if (left[i] === right[j]) {
      common++;
      i++;
      j++;
    } else if (left[i]! < right[j]!) i++;
    else j++;
  }
  return common / (left.length + right.length - common);
}

/**
 * The LSH bucket of each band: a 32-bit hash of the band's index and its rows. Two signatures share a
 * bucket in band i exactly when their rows in band i agree (up to 32-bit collisions). An empty
 * signature has no buckets (an empty array), so empty texts never become candidates.
 */
export function lshBuckets(
  signature: Uint32Array,
  params: NearDuplicateParams = NEAR_DUPLICATE_PARAMS,
): Uint32Array {
  checkParams(params);
  if (!(signature instanceof Uint32Array) || signature.length !== params.numHashes) {
    throw new RangeError(`signature: expected a Uint32Array of length ${params.numHashes}`);
  }
  if (signature.every((value) => value === EMPTY_MINHASH)) return new Uint32Array(0);
  const buckets = new Uint32Array(params.bands);
  for (let band = 0; band < params.bands; band++) {
    let h = fmix32(0x4c534801 + band);
    for (let row = 0; row < params.rowsPerBand; row++) {
      h = fmix32(Math.imul(h ^ signature[band * params.rowsPerBand + row]!, 0x9e3779b1));
    }
    buckets[band] = h;
  }
  return buckets;
}

/** A signature as bytes (little-endian 32-bit words), for storage. */
export function signatureToBytes(signature: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(signature.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < signature.length; i++) view.setUint32(4 * i, signature[i]!, true);
  return bytes;
}

/** The inverse of {@link signatureToBytes}. */
export function signatureFromBytes(bytes: Uint8Array): Uint32Array {
  if (!(bytes instanceof Uint8Array) || bytes.length % 4 !== 0) {
    throw new TypeError('bytes: expected a Uint8Array whose length is a multiple of 4');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const signature = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < signature.length; i++) signature[i] = view.getUint32(4 * i, true);
  return signature;
}
