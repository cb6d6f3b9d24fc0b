/**
 * Fake keys for calibration: keys nobody watermarked with, run through the same pipeline as the true
 * key. Their p-values must be uniform, and the true key's rank among them is an empirical p-value.
 *
 * secret_i = HKDF-SHA-256(IKM = UTF-8(seed), salt = "tracemark/v1/fake-key", info = UTF-8(decimal i), 32)
 *
 * The seed is a public label (default {@link DEFAULT_FAKE_KEY_SEED}), so a run is reproducible by
 * anyone. The true secret takes no part: a fake key derived from it could coincide with, or be
 * related to, a real sub-key (epoch or tenant) and carry the real signal into the null. Because the
 * default seed is public, someone could watermark a corpus with a default fake key to make the
 * calibration fail (the verdict is then withheld, never turned into a false accusation); an analyst
 * who suspects that passes a fresh seed chosen after the corpus was fixed.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { createWatermarkKey, type Scheme, type WatermarkKey } from '@tracemark/core';

/** The public default seed of the fake keys. */
export const DEFAULT_FAKE_KEY_SEED = 'tracemark/v1/calibration';

const SALT = utf8ToBytes('tracemark/v1/fake-key');

/** The secret of fake key `index` for a seed. */
export function fakeKeySecret(index: number, seed: string = DEFAULT_FAKE_KEY_SEED): Uint8Array {
  if (!Number.isInteger(index) || index < 0)
    throw new RangeError(`index: expected a non-negative integer, got ${index}`);
  if (typeof seed !== 'string' || seed.length === 0) throw new TypeError('seed: expected a non-empty string');
  return hkdf(sha256, utf8ToBytes(seed), SALT, utf8ToBytes(String(index)), 32);
}

/** Fake keys `first … first + count − 1` with the scheme and tokenizer of the key they calibrate. */
export function deriveFakeKeys(
  scheme: Scheme,
  tokenizer: string,
  first: number,
  count: number,
  seed: string = DEFAULT_FAKE_KEY_SEED,
): WatermarkKey[] {
  return Array.from({ length: count }, (_, i) =>
    createWatermarkKey({ secret: fakeKeySecret(first + i, seed), scheme, tokenizer }),
  );
}

/**
 * A uniform number in [0, 1) for fake key `index`, used to randomize its discrete p-value for the
 * uniformity test. Derived from the seed, so it is reproducible and independent of the text.
 */
export function fakeKeyUniform(index: number, seed: string = DEFAULT_FAKE_KEY_SEED): number {
  const bytes = sha256(utf8ToBytes(`${seed}\u0000uniform\u0000${index}`));
  // 52 random bits.
  const high = (bytes[0]! << 12) | (bytes[1]! << 4) | (bytes[2]! >>> 4);
  const low = ((bytes[3]! << 24) | (bytes[4]! << 16) | (bytes[5]! << 8) | bytes[6]!) >>> 0;
  return (high * 4294967296 + low) / 2 ** 52;
}
