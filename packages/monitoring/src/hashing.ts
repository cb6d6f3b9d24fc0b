/**
 * Fast non-cryptographic 32-bit hashing for sketches (FNV-1a over UTF-16 code units, finished with
 * MurmurHash3's fmix32 for avalanche). Sketch hashes are not secrets and need no key: an attacker who
 * knows them learns only which of his own prompts collide, which he can see anyway.
 */

/** MurmurHash3's 32-bit finalizer: a bijection on 32-bit integers with full avalanche. */
export function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a of a string's UTF-16 code units, seeded, then fmix32. */
export function hashString(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** Hash of two 32-bit values (order matters). */
export function hashPair(a: number, b: number): number {
  return fmix32((Math.imul(a >>> 0, 0x9e3779b1) ^ fmix32(b + 0x7f4a7c15)) >>> 0);
}
