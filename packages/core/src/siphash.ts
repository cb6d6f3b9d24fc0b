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
  // State of an absorbed prefix, for the generic path.
  const state = new Int32Array(8);

  /**
   * Runs from a given state: absorbs one full block `mh:ml` (when `full`) and the final block
   * `lh:ll`, then finalizes. The state stays in locals; the round is written once and looped.
   */
  const run = (
    s0h: number,
    s0l: number,
    s1h: number,
    s1l: number,
    s2h: number,
    s2l: number,
    s3h: number,
    s3l: number,
    full: boolean,
    mh: number,
    ml: number,
    lh: number,
    ll: number,
  ): number => {
    let v0h = s0h;
    let v0l = s0l;
    let v1h = s1h;
    let v1l = s1l;
    let v2h = s2h;
    let v2l = s2l;
    let v3h = s3h;
    let v3l = s3l;
    let s = 0;
    let t = 0;
    let bh = full ? mh : lh;
    let bl = full ? ml : ll;
    v3h ^= bh;
    v3l ^= bl;
    // Blocks (two rounds each), then finalization (four rounds), as one loop of six or eight rounds.
    const total = full ? 8 : 6;
    for (let r = 0; r < total; r++) {
      s = (v0l >>> 0) + (v1l >>> 0);
      v0h = (v0h + v1h + (s > 0xffffffff ? 1 : 0)) | 0;
      v0l = s | 0;
      t = v1h;
      v1h = ((v1h << 13) | (v1l >>> 19)) ^ v0h;
      v1l = ((v1l << 13) | (t >>> 19)) ^ v0l;
      t = v0h;
      v0h = v0l;
      v0l = t;
      s = (v2l >>> 0) + (v3l >>> 0);
      v2h = (v2h + v3h + (s > 0xffffffff ? 1 : 0)) | 0;
      v2l = s | 0;
      t = v3h;
      v3h = ((v3h << 16) | (v3l >>> 16)) ^ v2h;
      v3l = ((v3l << 16) | (t >>> 16)) ^ v2l;
      s = (v0l >>> 0) + (v3l >>> 0);
      v0h = (v0h + v3h + (s > 0xffffffff ? 1 : 0)) | 0;
      v0l = s | 0;
      t = v3h;
      v3h = ((v3h << 21) | (v3l >>> 11)) ^ v0h;
      v3l = ((v3l << 21) | (t >>> 11)) ^ v0l;
      s = (v2l >>> 0) + (v1l >>> 0);
      v2h = (v2h + v1h + (s > 0xffffffff ? 1 : 0)) | 0;
      v2l = s | 0;
      t = v1h;
      v1h = ((v1h << 17) | (v1l >>> 15)) ^ v2h;
      v1l = ((v1l << 17) | (t >>> 15)) ^ v2l;
      t = v2h;
      v2h = v2l;
      v2l = t;
      if ((r & 1) === 1 && total - r > 4) {
        // End of a block: finish absorbing it, then start the next (or the finalization).
        v0h ^= bh;
        v0l ^= bl;
        if (total - r === 7) {
          bh = lh;
          bl = ll;
          v3h ^= bh;
          v3l ^= bl;
        } else {
          v2l ^= 0xff;
        }
      }
    }
    out[1] = v0l ^ v1l ^ v2l ^ v3l;
    return (out[0] = v0h ^ v1h ^ v2h ^ v3h);
  };

  const i0h = k0h ^ 0x736f6d65;
  const i0l = k0l ^ 0x70736575;
  const i1h = k1h ^ 0x646f7261;
  const i1l = k1l ^ 0x6e646f6d;
  const i2h = k0h ^ 0x6c796765;
  const i2l = k0l ^ 0x6e657261;
  const i3h = k1h ^ 0x74656462;
  const i3l = k1l ^ 0x79746573;

  const twoBlocks = (
    blockHigh: number,
    blockLow: number,
    tailHigh: number,
    tailLow: number,
    length: number,
  ) =>
    run(
      i0h,
      i0l,
      i1h,
      i1l,
      i2h,
      i2l,
      i3h,
      i3l,
      true,
      blockHigh,
      blockLow,
      tailHigh | (length << 24),
      tailLow,
    );
  const oneBlock = (tailHigh: number, tailLow: number, length: number) =>
    run(i0h, i0l, i1h, i1l, i2h, i2l, i3h, i3l, false, 0, 0, tailHigh | (length << 24), tailLow);

  const bytes = (message: Uint8Array): number => {
    if (!(message instanceof Uint8Array)) throw new TypeError('message: expected a Uint8Array');
    const length = message.length;
    const word = (i: number) =>
      message[i]! | (message[i + 1]! << 8) | (message[i + 2]! << 16) | (message[i + 3]! << 24);
    let tailHigh = 0;
    let tailLow = 0;
    const whole = length - (length % 8);
    for (let j = 0; whole + j < length; j++) {
      const byte = message[whole + j]!;
      if (j < 4) tailLow |= byte << (8 * j);
      else tailHigh |= byte << (8 * (j - 4));
    }
    if (whole === 0) return oneBlock(tailHigh, tailLow, length & 0xff);
    if (whole === 8) return twoBlocks(word(4), word(0), tailHigh, tailLow, length & 0xff);
    // Longer messages: absorb all but the last full block, then finish with the fixed path.
    absorbPrefix(whole - 8, word);
    return run(
      state[0]!,
      state[1]!,
      state[2]!,
      state[3]!,
      state[4]!,
      state[5]!,
      state[6]!,
      state[7]!,
      true,
      word(whole - 4),
      word(whole - 8),
      tailHigh | ((length & 0xff) << 24),
      tailLow,
    );
  };

  /** Absorbs the first `end` bytes (a multiple of 8) into `state`, two SipRounds per block. */
  const absorbPrefix = (end: number, word: (i: number) => number): void => {
    state.set([i0h, i0l, i1h, i1l, i2h, i2l, i3h, i3l]);
    for (let i = 0; i < end; i += 8) {
      const mh = word(i + 4);
      const ml = word(i);
      state[6] ^= mh;
      state[7] ^= ml;
      twoRounds(state);
      state[0] ^= mh;
      state[1] ^= ml;
    }
  };

  return Object.freeze({ out, bytes, twoBlocks, oneBlock });
}

/** Two SipRounds on a state held as [v0h, v0l, v1h, v1l, v2h, v2l, v3h, v3l]. */
function twoRounds(v: Int32Array): void {
  for (let r = 0; r < 2; r++) {
    let s = (v[1]! >>> 0) + (v[3]! >>> 0);
    v[0] = v[0]! + v[2]! + (s > 0xffffffff ? 1 : 0);
    v[1] = s;
    let t = v[2]!;
    v[2] = ((v[2]! << 13) | (v[3]! >>> 19)) ^ v[0]!;
    v[3] = ((v[3]! << 13) | (t >>> 19)) ^ v[1]!;
    t = v[0]!;
    v[0] = v[1]!;
    v[1] = t;
    s = (v[5]! >>> 0) + (v[7]! >>> 0);
    v[4] = v[4]! + v[6]! + (s > 0xffffffff ? 1 : 0);
    v[5] = s;
    t = v[6]!;
    v[6] = ((v[6]! << 16) | (v[7]! >>> 16)) ^ v[4]!;
    v[7] = ((v[7]! << 16) | (t >>> 16)) ^ v[5]!;
    s = (v[1]! >>> 0) + (v[7]! >>> 0);
    v[0] = v[0]! + v[6]! + (s > 0xffffffff ? 1 : 0);
    v[1] = s;
    t = v[6]!;
    v[6] = ((v[6]! << 21) | (v[7]! >>> 11)) ^ v[0]!;
    v[7] = ((v[7]! << 21) | (t >>> 11)) ^ v[1]!;
    s = (v[5]! >>> 0) + (v[3]! >>> 0);
    v[4] = v[4]! + v[2]! + (s > 0xffffffff ? 1 : 0);
    v[5] = s;
    t = v[2]!;
    v[2] = ((v[2]! << 17) | (v[3]! >>> 15)) ^ v[4]!;
    v[3] = ((v[3]! << 17) | (t >>> 15)) ^ v[5]!;
    t = v[4]!;
    v[4] = v[5]!;
    v[5] = t;
  }
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
