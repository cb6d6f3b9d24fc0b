/**
 * Every random choice in the experiments derives from a text label, so a result names its seed and
 * regenerates identically: the label is hashed with SHA-256 into a key secret or a sampler seed.
 */
import { createHash } from 'node:crypto';

const DOMAIN = 'tracemark-research/v1/';

/** A 32-byte watermark secret for a label (research keys only; never use derived secrets in production). */
export function secretFor(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`${DOMAIN}secret/${label}`).digest());
}

/** A sampler seed (a non-negative safe integer, 48 bits) for a label. */
export function seedFor(label: string): number {
  const digest = createHash('sha256').update(`${DOMAIN}seed/${label}`).digest();
  return digest.readUIntBE(0, 6);
}
