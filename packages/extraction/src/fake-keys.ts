/**
 * Fake keys for calibration: keys nobody watermarked with, run through the same pipeline as the true
 * key. Their p-values must be uniform, and the true key's rank among them is an empirical p-value.
 *
 * One trial key of the true key's scheme, K_trial = HKDF-SHA-256(IKM = UTF-8(seed), salt =
 * "tracemark/v1/fake-key", info = "trials", 32), is scored on the tape like any key: its green PRF
 * output x (64 bits) on each deduplicated trial is that trial's value. Fake key i is green on a trial
 * when its half of z = SplitMix64-finalizer(x + mask_⌊i/2⌋) is below τ (high 32 bits for even i, low
 * for odd i), mask_j = HKDF-SHA-256(seed, salt "tracemark/v1/fake-key-mixer", info = decimal j, 8).
 * The finalizer is a bijection of 64-bit words, so on distinct trials (independent uniform x) each
 * fake key's bits are independent Bernoulli(τ / 2^32): exactly the true key's γ_eff.
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

/** The public default seed of the fake keys. */
export const DEFAULT_FAKE_KEY_SEED = 'tracemark/v1/calibration';

const SALT = utf8ToBytes('tracemark/v1/fake-key');

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

const MIXER_SALT = utf8ToBytes('tracemark/v1/fake-key-mixer');

/**
 * The secret of the trial key: one key of the true key's scheme, derived from the seed alone (info
 * "trials", which no decimal index can equal), whose PRF outputs on the deduplicated tape are the
 * trial values every fake key reads.
 */
export function fakeTrialSecret(seed: string = DEFAULT_FAKE_KEY_SEED): Uint8Array {
  if (typeof seed !== 'string' || seed.length === 0) throw new TypeError('seed: expected a non-empty string');
  return hkdf(sha256, utf8ToBytes(seed), SALT, utf8ToBytes('trials'), 32);
}

/**
 * The 64-bit masks of fake keys `first … first + count − 1`, as [low, high] word pairs: fake keys 2j
 * and 2j + 1 share mask j = HKDF-SHA-256(IKM = UTF-8(seed), salt = "tracemark/v1/fake-key-mixer",
 * info = UTF-8(decimal j), L = 8), read little-endian. Returns the masks of the pairs the keys fall in,
 * starting with pair ⌊first / 2⌋.
 */
export function fakeKeyMasks(
  first: number,
  count: number,
  seed: string = DEFAULT_FAKE_KEY_SEED,
): Uint32Array {
  if (!Number.isInteger(first) || first < 0)
    throw new RangeError(`first: expected a non-negative integer, got ${first}`);
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`count: expected a non-negative integer, got ${count}`);
  const firstPair = Math.floor(first / 2);
  const pairs = count === 0 ? 0 : Math.floor((first + count - 1) / 2) - firstPair + 1;
  const masks = new Uint32Array(2 * pairs);
  for (let j = 0; j < pairs; j++) {
    const bytes = hkdf(sha256, utf8ToBytes(seed), MIXER_SALT, utf8ToBytes(String(firstPair + j)), 8);
    const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
    masks[2 * j] = view.getUint32(0, true);
    masks[2 * j + 1] = view.getUint32(4, true);
  }
  return masks;
}
