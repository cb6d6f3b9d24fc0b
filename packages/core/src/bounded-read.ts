/**
 * Reading a body that someone else controls (a model server, a suspect's endpoint) without letting it fill
 * the memory: its bytes up to a limit, and no further.
 */
import { concatBytes } from '@noble/hashes/utils.js';

/**
 * The bytes of `body` (a fetch Response's body; null reads as empty), or null when it holds more than
 * `limit` bytes: it is then cancelled at the first chunk past the limit, unread beyond it.
 */
export async function readUpTo(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<Uint8Array | null> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  return concatBytes(...chunks);
}
