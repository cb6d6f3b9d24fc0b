/**
 * Binary blobs for the distributed scan's results in Redis: a JSON header and typed arrays, each
 * array's bytes 4-aligned. Smaller and faster than JSON for token ids, and exact.
 */

type TypedArray = Uint32Array | Uint8Array;

/** Packs a JSON-able header and named arrays into one buffer. */
export function packBlob(header: unknown, arrays: Readonly<Record<string, TypedArray>>): Buffer {
  const names = Object.keys(arrays);
  const layout = names.map((name) => {
    const array = arrays[name]!;
    return { name, type: array instanceof Uint8Array ? 'u8' : 'u32', length: array.length };
  });
  const head = Buffer.from(JSON.stringify({ header, layout }), 'utf8');
  let size = 4 + align(head.length);
  for (const name of names) size += align(arrays[name]!.byteLength);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(head.length, 0);
  head.copy(out, 4);
  let at = 4 + align(head.length);
  for (const name of names) {
    const array = arrays[name]!;
    Buffer.from(array.buffer, array.byteOffset, array.byteLength).copy(out, at);
    at += align(array.byteLength);
  }
  return out;
}

/** Unpacks {@link packBlob}'s buffer; the arrays are copies (aligned, independent of the buffer). */
export function unpackBlob<Header>(blob: Buffer): { header: Header; arrays: Record<string, TypedArray> } {
  const headLength = blob.readUInt32LE(0);
  const { header, layout } = JSON.parse(blob.subarray(4, 4 + headLength).toString('utf8')) as {
    header: Header;
    layout: { name: string; type: 'u8' | 'u32'; length: number }[];
  };
  let at = 4 + align(headLength);
  const arrays: Record<string, TypedArray> = {};
  for (const { name, type, length } of layout) {
    const bytes = type === 'u8' ? length : 4 * length;
    const copy = new Uint8Array(bytes);
    copy.set(blob.subarray(at, at + bytes));
    arrays[name] = type === 'u8' ? copy : new Uint32Array(copy.buffer, 0, length);
    at += align(bytes);
  }
  return { header, arrays };
}

function align(bytes: number): number {
  return (bytes + 3) & ~3;
}
