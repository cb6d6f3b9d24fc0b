import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

/** SHA-256 of ids as little-endian int32, as the vector generators write them. */
export function int32Digest(ids: Int32Array): string {
  const bytes = new Uint8Array(ids.length * 4);
  const view = new DataView(bytes.buffer);
  ids.forEach((value, i) => {
    view.setInt32(i * 4, value, true);
  });
  return bytesToHex(sha256(bytes));
}
