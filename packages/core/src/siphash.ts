/**
 * SipHash-2-4 (Aumasson and Bernstein 2012, https://www.aumasson.jp/siphash/siphash.pdf) over
 * 32-bit halves, so it runs without BigInt. A hasher is built once per key; its fixed-size entry
 * points keep the whole state in local variables, which is what makes scoring fast.
 */

export interface SipHasher {
  /** `[high 32 bits, low 32 bits]` of the last result. */
  readonly out: Uint32Array;
  /** SipHash of an arbitrary byte string; returns the high 32 bits. */
  bytes(message: Uint8Array): number;
  /**
   * SipHash of a message of 8 to 15 bytes given as one full block (`blockHigh:blockLow`) and the
   * final block's bytes (`tailHigh:tailLow`, length byte excluded); returns the high 32 bits.
   */
  twoBlocks(blockHigh: number, blockLow: number, tailHigh: number, tailLow: number, length: number): number;
  /** SipHash of a message of at most 7 bytes (`tailHigh:tailLow`); returns the high 32 bits. */
  oneBlock(tailHigh: number, tailLow: number, length: number): number;
}

/** Builds a hasher for a 16-byte key. */
export function createSipHasher(key: Uint8Array): SipHasher {
  if (!(key instanceof Uint8Array) || key.length !== 16) {
    throw new TypeError('key: expected a Uint8Array of 16 bytes');
  }
  const view = new DataView(key.buffer, key.byteOffset, 16);
  const k0l = view.getUint32(0, true);
  const k0h = view.getUint32(4, true);
  const k1l = view.getUint32(8, true);
  const k1h = view.getUint32(12, true);
  const out = new Uint32Array(2);
  const i0h = k0h ^ 0x736f6d65;
  const i0l = k0l ^ 0x70736575;
  const i1h = k1h ^ 0x646f7261;
  const i1l = k1l ^ 0x6e646f6d;
  const i2h = k0h ^ 0x6c796765;
  const i2l = k0l ^ 0x6e657261;
  const i3h = k1h ^ 0x74656462;
  const i3l = k1l ^ 0x79746573;
  // Message blocks as [high, low] word pairs; the last pair is the final block with its length byte.
  let words = new Int32Array(8);

  /** Absorbs `blocks` blocks from `words` (two rounds each), then finalizes (four rounds). */
  const run = (blocks: number): number => {
    let v0h = i0h;
    let v0l = i0l;
    let v1h = i1h;
    let v1l = i1l;
    let v2h = i2h;
    let v2l = i2l;
    let v3h = i3h;
    let v3l = i3l;
    let s = 0;
    let t = 0;
    for (let b = 0; b <= blocks; b++) {
      const last = b === blocks;
      const mh = last ? 0 : words[2 * b]!;
      const ml = last ? 0 : words[2 * b + 1]!;
      if (last) v2l ^= 0xff;
      else {
        v3h ^= mh;
        v3l ^= ml;
      }
      for (let r = last ? 4 : 2; r > 0; r--) {
        s = (v0l + v1l) | 0;
        v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~s)) >>> 31)) | 0;
        v0l = s;
        t = v1h;
        v1h = ((v1h << 13) | (v1l >>> 19)) ^ v0h;
        v1l = ((v1l << 13) | (t >>> 19)) ^ v0l;
        t = v0h;
        v0h = v0l;
        v0l = t;
        s = (v2l + v3l) | 0;
        v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~s)) >>> 31)) | 0;
        v2l = s;
        t = v3h;
        v3h = ((v3h << 16) | (v3l >>> 16)) ^ v2h;
        v3l = ((v3l << 16) | (t >>> 16)) ^ v2l;
        s = (v0l + v3l) | 0;
        v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~s)) >>> 31)) | 0;
        v0l = s;
        t = v3h;
        v3h = ((v3h << 21) | (v3l >>> 11)) ^ v0h;
        v3l = ((v3l << 21) | (t >>> 11)) ^ v0l;
        s = (v2l + v1l) | 0;
        v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~s)) >>> 31)) | 0;
        v2l = s;
        t = v1h;
        v1h = ((v1h << 17) | (v1l >>> 15)) ^ v2h;
        v1l = ((v1l << 17) | (t >>> 15)) ^ v2l;
        t = v2h;
        v2h = v2l;
        v2l = t;
      }
      v0h ^= mh;
      v0l ^= ml;
    }
    out[1] = v0l ^ v1l ^ v2l ^ v3l;
    return (out[0] = v0h ^ v1h ^ v2h ^ v3h);
  };

  const twoBlocks = (
    blockHigh: number,
    blockLow: number,
    tailHigh: number,
    tailLow: number,
    length: number,
  ) => {
    words[0] = blockHigh;
    words[1] = blockLow;
    words[2] = tailHigh | (length << 24);
    words[3] = tailLow;
    return run(2);
  };
  const oneBlock = (tailHigh: number, tailLow: number, length: number) => {
    words[0] = tailHigh | (length << 24);
    words[1] = tailLow;
    return run(1);
  };

  const bytes = (message: Uint8Array): number => {
    if (!(message instanceof Uint8Array)) throw new TypeError('message: expected a Uint8Array');
    const length = message.length;
    const blocks = (length >>> 3) + 1;
    if (words.length < 2 * blocks) words = new Int32Array(4 * blocks);
    words.fill(0, 0, 2 * blocks);
    for (let i = 0; i < length; i++) {
      const block = i >>> 3;
      const within = i & 7;
      // Bytes 0..3 of a block fill its low word, 4..7 its high word (little-endian).
      words[2 * block + (within < 4 ? 1 : 0)]! |= message[i]! << (8 * (within & 3));
    }
    words[2 * (blocks - 1)]! |= (length & 0xff) << 24;
    return run(blocks);
  };

  return Object.freeze({ out, bytes, twoBlocks, oneBlock });
}

/** SipHash-2-4 of a message under a 16-byte key, as 16 lowercase hex digits of the u64 (convenience). */
export function siphashHex(key: Uint8Array, message: Uint8Array): string {
  const hasher = createSipHasher(key);
  hasher.bytes(message);
  return (
    (hasher.out[0]! >>> 0).toString(16).padStart(8, '0') +
    (hasher.out[1]! >>> 0).toString(16).padStart(8, '0')
  );
}
