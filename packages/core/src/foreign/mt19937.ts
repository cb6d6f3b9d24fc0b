/**
 * torch's CPU random generator and its `randperm`, bit for bit.
 *
 * `torch.Generator().manual_seed(s)` seeds MT19937 (Matsumoto & Nishimura 1998) by the classic
 * `init_genrand` with the low 32 bits of s (ATen `mt19937_engine::init_with_uint32`); `random()` is
 * one tempered 32-bit output. `randperm_cpu` (aten/src/ATen/native/TensorFactories.cpp) fills
 * 0 … n − 1 and swaps position i with i + (random() mod (n − i)) for i = 0 … n − 2. From torch 2.6 on,
 * n ≥ ⌊(2^32 − 1)/20⌋ = 214 748 364 takes another path (an inside-out shuffle driven by 64-bit draws);
 * below that every torch version since 1.0 gives the same permutation. docs/spec/foreign-transformers.md §4.
 */

const STATE_SIZE = 624;
const SHIFT_SIZE = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** The smallest n for which torch ≥ 2.6 and earlier versions give different permutations. */
export const TORCH_RANDPERM_LARGE_N: number = 214_748_364;

/** An MT19937 stream in torch's convention. */
export interface Mt19937 {
  /** The next tempered 32-bit output, as an unsigned number. */
  nextUint32(): number;
  /**
   * Draws `count` outputs into `out` (the same values `count` calls of {@link nextUint32} give);
   * the fast path for long runs.
   */
  fill(out: Uint32Array, count: number): void;
  /** Re-seeds in place (the low 32 bits of `seed`), as `manual_seed` does. */
  reseed(seed: number): void;
}

function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed: expected an integer in [0, 2^32), got ${String(seed)}`);
  }
}

/** MT19937 seeded by `init_genrand(seed)`, `seed` a 32-bit unsigned integer. */
export function createMt19937(seed: number): Mt19937 {
  assertSeed(seed);
  const state = new Uint32Array(STATE_SIZE);
  let index = STATE_SIZE;

  const reseed = (value: number): void => {
    state[0] = value >>> 0;
    for (let j = 1; j < STATE_SIZE; j++) {
      const previous = state[j - 1]!;
      state[j] = (Math.imul(1812433253, previous ^ (previous >>> 30)) + j) >>> 0;
    }
    index = STATE_SIZE;
  };

  // (x & 1 ? A : 0) as −(x & 1) & A: no branch on a random bit
  const twist = (): void => {
    let j = 0;
    for (; j < STATE_SIZE - SHIFT_SIZE; j++) {
      const mixed = (state[j]! & UPPER_MASK) | (state[j + 1]! & LOWER_MASK);
      state[j] = state[j + SHIFT_SIZE]! ^ (mixed >>> 1) ^ (-(mixed & 1) & MATRIX_A);
    }
    for (; j < STATE_SIZE - 1; j++) {
      const mixed = (state[j]! & UPPER_MASK) | (state[j + 1]! & LOWER_MASK);
      state[j] = state[j + SHIFT_SIZE - STATE_SIZE]! ^ (mixed >>> 1) ^ (-(mixed & 1) & MATRIX_A);
    }
    const mixed = (state[STATE_SIZE - 1]! & UPPER_MASK) | (state[0]! & LOWER_MASK);
    state[STATE_SIZE - 1] = state[SHIFT_SIZE - 1]! ^ (mixed >>> 1) ^ (-(mixed & 1) & MATRIX_A);
    index = 0;
  };

  reseed(seed);
  return {
    nextUint32(): number {
      if (index >= STATE_SIZE) twist();
      let y = state[index++]!;
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      return y >>> 0;
    },
    fill(out: Uint32Array, count: number): void {
      // a block of the state at a time: one bounds check per block, not per output
      for (let k = 0; k < count; ) {
        if (index >= STATE_SIZE) twist();
        const stop = Math.min(count - k, STATE_SIZE - index) + index;
        for (let at = index; at < stop; at++, k++) {
          let y = state[at]!;
          y ^= y >>> 11;
          y ^= (y << 7) & 0x9d2c5680;
          y ^= (y << 15) & 0xefc60000;
          y ^= y >>> 18;
          out[k] = y;
        }
        index = stop;
      }
    },
    reseed(value: number): void {
      assertSeed(value);
      reseed(value);
    },
  };
}

function assertLength(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n >= TORCH_RANDPERM_LARGE_N) {
    throw new RangeError(
      `n: expected an integer in [0, ${TORCH_RANDPERM_LARGE_N}) (torch versions disagree from there on), got ${String(n)}`,
    );
  }
}

/**
 * r mod m for r < 2^32 and 0 < m < 2^32, without the integer division JavaScript's `%` compiles to for
 * values above 2^31. ⌊r/m⌋ is exact in double: r/m = k − j/m with 1 ≤ j < m unless m divides r, and the
 * rounding error of r/m (at most 2^−21/m) is smaller than 1/m, so rounding never reaches k.
 */
function uint32Mod(r: number, m: number): number {
  return r - Math.floor(r / m) * m;
}

/**
 * The first `prefix` entries of `torch.randperm(n, generator=g)` after `g.manual_seed(seed)`
 * (32-bit `seed`), written into `workspace` (length ≥ n; its first n entries are overwritten).
 * Positions below `prefix` are final after `prefix` swaps, so only that many draws are made.
 */
export function torchRandpermPrefixInto(
  workspace: Int32Array,
  n: number,
  seed: number,
  prefix: number,
  generator: Mt19937 = createMt19937(seed),
): Int32Array {
  assertLength(n);
  assertSeed(seed);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > n) {
    throw new RangeError(`prefix: expected an integer in [0, ${n}], got ${String(prefix)}`);
  }
  if (!(workspace instanceof Int32Array) || workspace.length < n) {
    throw new RangeError(`workspace: expected an Int32Array of length ≥ ${n}`);
  }
  generator.reseed(seed);
  for (let i = 0; i < n; i++) workspace[i] = i;
  const steps = Math.min(prefix, n - 1);
  for (let i = 0; i < steps; i++) {
    const j = i + uint32Mod(generator.nextUint32(), n - i);
    const saved = workspace[i]!;
    workspace[i] = workspace[j]!;
    workspace[j] = saved;
  }
  return workspace.subarray(0, prefix);
}

/**
 * As {@link torchRandpermPrefixInto}, for repeated calls: `identity` (length ≥ n) must hold
 * 0, 1, … on entry and holds them again on return; the prefix is written to `out` (length ≥ prefix).
 * Only the positions the swaps touch are written, so a call costs O(prefix), not O(n).
 */
export function torchRandpermPrefixReusing(
  identity: Int32Array,
  out: Int32Array,
  touched: Int32Array,
  n: number,
  seed: number,
  prefix: number,
  generator: Mt19937,
): Int32Array {
  const steps = Math.min(prefix, n - 1);
  generator.reseed(seed);
  // the draws first (into `touched`), then the swaps: the same sequence, without a call per draw
  const draws = new Uint32Array(touched.buffer, touched.byteOffset, steps);
  generator.fill(draws, steps);
  for (let i = 0; i < steps; i++) {
    const j = i + uint32Mod(draws[i]!, n - i);
    touched[i] = j;
    const saved = identity[i]!;
    identity[i] = identity[j]!;
    identity[j] = saved;
  }
  out.set(identity.subarray(0, prefix));
  for (let i = 0; i < steps; i++) {
    identity[i] = i;
    identity[touched[i]!] = touched[i]!;
  }
  return out.subarray(0, prefix);
}

/**
 * The first `prefix` entries of the permutation {@link torchRandpermPrefixReusing} gives, as a set:
 * bit v of `bits` (words of 32, low bit first; length ≥ ⌈n/32⌉, cleared here) is set when v is among
 * them. `identity` as there; `draws` (length ≥ prefix) is scratch. The shuffle runs forward (position
 * i is final after draw i), so these `prefix` draws are the fewest any reading of the prefix needs.
 */
export function torchRandpermPrefixSetInto(
  bits: Uint32Array,
  identity: Int32Array,
  draws: Uint32Array,
  n: number,
  seed: number,
  prefix: number,
  generator: Mt19937,
): Uint32Array {
  const steps = Math.min(prefix, n - 1);
  bits.fill(0, 0, (n + 31) >>> 5);
  generator.reseed(seed);
  generator.fill(draws, steps);
  for (let i = 0; i < steps; i++) {
    const j = i + uint32Mod(draws[i]!, n - i);
    const value = identity[j]!;
    identity[j] = identity[i]!;
    identity[i] = value;
    // the draw is spent: keep the swapped position, to restore the identity below
    draws[i] = j;
  }
  // the set in a pass of its own: the shuffle's loop then carries no third random access
  for (let i = 0; i < prefix; i++) {
    const value = identity[i]!;
    bits[value >>> 5] = bits[value >>> 5]! | (1 << (value & 31));
  }
  for (let i = 0; i < steps; i++) {
    const j = draws[i]!;
    identity[i] = i;
    identity[j] = j;
  }
  return bits;
}

/** `torch.randperm(n, generator=g)` on the CPU after `g.manual_seed(seed)`, for n < 214 748 364. */
export function torchRandperm(n: number, seed: number): Int32Array {
  assertLength(n);
  return torchRandpermPrefixInto(new Int32Array(n), n, seed, n).slice();
}
