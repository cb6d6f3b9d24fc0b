/**
 * Seeds and green bits for a run of positions in one WebAssembly call (generated from
 * wasm/prf.wat: the same SipHash-2-4 as siphash.ts, with native 64-bit arithmetic). One module
 * instance per thread serves every key; where WebAssembly is unavailable, callers use the
 * scalar path. Both paths are tested against the spec's vectors.
 */
import { PRF_WASM_BASE64 } from './prf-wasm.ts';

// The few WebAssembly declarations used here (the project's lib settings carry no DOM types).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
};

interface PrfExports {
  readonly memory: WasmMemory;
  lefthash(
    tokens: number,
    from: number,
    n: number,
    h: number,
    seeds: number,
    greens: number,
    threshold: number,
  ): void;
  selfhash(
    tokens: number,
    from: number,
    n: number,
    h: number,
    seeds: number,
    greens: number,
    threshold: number,
    ranks: number,
  ): void;
  prfs(units: number, n: number, out: number): void;
}

/** Largest number of positions in one call. */
export const BATCH_POSITIONS = 16_384;
const DATA = 256;

let exports: PrfExports | null | undefined;

function load(): PrfExports | null {
  if (exports !== undefined) return exports;
  try {
    const bytes = Uint8Array.from(atob(PRF_WASM_BASE64), (c) => c.charCodeAt(0));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    exports = instance.exports as unknown as PrfExports;
    // Room for a full batch: tokens (4), seeds (8), greens (1) and ranks (8) bytes a position.
    const needed = DATA + 21 * (BATCH_POSITIONS + 16);
    const pages = Math.ceil(needed / 65536) - exports.memory.buffer.byteLength / 65536;
    if (pages > 0) exports.memory.grow(pages);
  } catch {
    exports = null;
  }
  return exports;
}

/** Results of a batch: seeds as [low, high] word pairs (little-endian u64) and green bits, by position. */
export interface BatchResult {
  readonly seeds: Uint32Array;
  readonly greens: Uint8Array;
}

/**
 * Computes seeds and green bits for positions [from, to) of `tokens` (to − from ≤ BATCH_POSITIONS;
 * up to 16 tokens before `from` are read as context). Returns views indexed by position − from,
 * valid until the next call, or null without WebAssembly.
 */
export function computeBatch(
  prfKeys: Uint8Array,
  scheme: 'lefthash' | 'selfhash',
  width: number,
  threshold: number,
  tokens: Uint32Array,
  from: number,
  to: number,
): BatchResult | null {
  const prf = load();
  if (prf === null) return null;
  const start = Math.max(0, from - width);
  const count = to - start;
  const buffer = prf.memory.buffer;
  new Uint8Array(buffer, 0, 48).set(prfKeys);
  const tokensAt = DATA;
  const seedsAt = tokensAt + 4 * count + ((8 - ((4 * count) % 8)) % 8);
  const greensAt = seedsAt + 8 * count;
  const ranksAt = greensAt + count + ((8 - (count % 8)) % 8);
  new Uint32Array(buffer, tokensAt, count).set(tokens.subarray(start, to));
  const relative = from - start;
  if (scheme === 'lefthash') prf.lefthash(tokensAt, relative, count, width, seedsAt, greensAt, threshold);
  else prf.selfhash(tokensAt, relative, count, width, seedsAt, greensAt, threshold, ranksAt);
  return {
    seeds: new Uint32Array(buffer, seedsAt + 8 * relative, 2 * (to - from)),
    greens: new Uint8Array(buffer, greensAt + relative, to - from),
  };
}

/** Units a {@link computePrfs} call takes at most (12 bytes in and 8 out each, within a batch's room). */
export const PRF_UNITS = 16_384;

/**
 * The green PRF's whole output, SipHash(key, LE64(seed) || LE32(token)), for `count` (≤ PRF_UNITS)
 * units of `units`, three words each (seed low, seed high, token): [low, high] word pairs by unit, a
 * view valid until the next call, or null without WebAssembly.
 */
export function computePrfs(key: Uint8Array, units: Uint32Array, count: number): Uint32Array | null {
  const prf = load();
  if (prf === null) return null;
  const buffer = prf.memory.buffer;
  // The green key's place (16 … 32); computeBatch writes all three keys at each call.
  new Uint8Array(buffer, 16, 16).set(key);
  const unitsAt = DATA;
  const outAt = unitsAt + 12 * count + ((8 - ((12 * count) % 8)) % 8);
  new Uint32Array(buffer, unitsAt, 3 * count).set(units.subarray(0, 3 * count));
  prf.prfs(unitsAt, count, outAt);
  return new Uint32Array(buffer, outAt, 2 * count);
}
