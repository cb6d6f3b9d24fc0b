/**
 * Green counts of a deduplicated LeftHash tape under many keys, in WebAssembly (kernel-wasm.ts,
 * generated from wasm/generate.mjs). The same computation as `Watermarker.seedAt` + `isGreen` of
 * @tracemark/core; tests check them equal. Without WebAssembly, a scalar path gives the same counts.
 */
import { createSipHasher, derivePrfKeys, type WatermarkKey } from '@tracemark/core';
import { KERNEL_WASM_BASE64 } from './kernel-wasm.ts';
import { allDistinct64 } from './tables.ts';

// The few WebAssembly declarations used here (the project's lib settings carry no DOM types).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
};

interface KernelExports {
  readonly memory: WasmMemory;
  countLeftHash(
    keys: number,
    nkeys: number,
    h: number,
    windows: number,
    nwindows: number,
    offsets: number,
    tokens: number,
    threshold: number,
    counts: number,
    bits: number,
    seeds: number,
    values: number,
  ): void;
  countLeftHashSimd(
    keys: number,
    nkeys: number,
    h: number,
    windows: number,
    nwindows: number,
    offsets: number,
    tokens: number,
    threshold: number,
    counts: number,
  ): void;
  selfHashSeeds(key: number, anchors: number, tokens: number, n: number, seeds: number, values: number): void;
  countMixed(
    values: number,
    n: number,
    masks: number,
    nmasks: number,
    threshold: number,
    counts: number,
  ): void;
  siphash(key: number, message: number, length: number): bigint;
  setScratch(at: number): void;
}

/** 64 KiB pages a kernel's memory may grow to: 4 GiB, as far as its 32-bit addresses reach (address space, not memory). */
const MAX_PAGES = 65536;
/** The first bytes of a kernel's memory are its own: the messages it hashes. */
const SCRATCH_BYTES = 128;
/**
 * An arena's kernels have this much scratch each (the owner's first, then another thread's): the
 * messages they hash, then the masks and counts of {@link countMixed} run on trial values in place.
 */
const ARENA_SCRATCH_BYTES = 8192;

let compiled: object | null | undefined;

/** The module, compiled once a thread; null without WebAssembly. */
function compiledKernel(): object | null {
  if (compiled !== undefined) return compiled;
  try {
    compiled = new WebAssembly.Module(Uint8Array.from(atob(KERNEL_WASM_BASE64), (c) => c.charCodeAt(0)));
  } catch {
    compiled = null;
  }
  return compiled;
}

/** The kernel on `memory` (shared, as the module declares it); null without WebAssembly. */
function instantiate(memory: WasmMemory): KernelExports | null {
  const module = compiledKernel();
  if (module === null) return null;
  try {
    const { exports } = new WebAssembly.Instance(module, { env: { memory } });
    return { ...(exports as object), memory } as KernelExports;
  } catch {
    return null;
  }
}

function sharedMemory(pages: number): WasmMemory | null {
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
  } catch {
    return null;
  }
}

/** This thread's kernel, on a memory of its own. */
let kernel: KernelExports | null | undefined;

function loadKernel(): KernelExports | null {
  if (kernel !== undefined) return kernel;
  const memory = sharedMemory(1);
  kernel = memory === null ? null : instantiate(memory);
  if (kernel !== null) warmUp(kernel);
  return kernel;
}

/**
 * What another thread needs to score, in place, a tape made in a {@link KernelArena} (structured-
 * cloneable): the memory, and the scratch and working space its kernel there is to use, apart from the
 * arena owner's (both kernels can run at once).
 */
export interface KernelArenaShare {
  readonly memory: object;
  readonly scratch: number;
  readonly base: number;
  readonly limit: number;
}

/**
 * WebAssembly memory that arrays are made in for the kernel to read where they are: a tape whose
 * grouped windows, offsets and tokens all lie in one arena is scored there, without a copy into the
 * kernel's own memory first (at h = 4, 70 MB for 3 M tokens: 0.3 s on a 2-core virtual machine, most
 * of it page faults). The memory is shared: the arrays can be given to another thread as they are,
 * and with {@link KernelArena.share} and {@link KernelArena.adopt} its kernel scores them there too,
 * in working space of its own (it writes one tape's trial values there, which it can then hand out
 * without a copy). Working space is reserved address space, memory only where written. The arena
 * only hands out memory; its arrays live as long as it does.
 */
export class KernelArena {
  private readonly memory: WasmMemory;
  /** The buffer the arrays view (the memory's buffer when the arena was made; it may grow since). */
  private readonly buffer: ArrayBuffer;
  private top: number;
  private readonly arraysEnd: number;
  private readonly scratch: number;
  private readonly base: number;
  private readonly limit: number;
  private readonly guest: KernelArenaShare | null;
  private kernel: KernelExports | null | undefined;
  /** {@link lendWorkingSpace} has lent the working spaces. */
  private lent = false;

  /**
   * An arena that holds `bytes` of arrays, with `work` bytes of working space for its kernel and
   * `guestWork` for another thread's; null where WebAssembly or its shared memory is missing.
   */
  static create(bytes: number, work: number, guestWork: number): KernelArena | null {
    if (compiledKernel() === null) return null;
    const arraysEnd = align(2 * ARENA_SCRATCH_BYTES + bytes);
    const base = arraysEnd;
    const guestBase = align(base + work);
    const end = guestBase + guestWork;
    if (end > MAX_PAGES * 65536 - 65536) return null;
    const memory = sharedMemory(Math.ceil(end / 65536));
    if (memory === null) return null;
    const guest = { memory, scratch: ARENA_SCRATCH_BYTES, base: guestBase, limit: end };
    return new KernelArena(memory, 2 * ARENA_SCRATCH_BYTES, arraysEnd, 0, base, guestBase, guest);
  }

  private constructor(
    memory: WasmMemory,
    top: number,
    arraysEnd: number,
    scratch: number,
    base: number,
    limit: number,
    guest: KernelArenaShare | null,
  ) {
    this.memory = memory;
    this.buffer = memory.buffer;
    this.top = top;
    this.arraysEnd = arraysEnd;
    this.scratch = scratch;
    this.base = base;
    this.limit = limit;
    this.guest = guest;
    arenas.set(this.buffer, this);
  }

  /** On another thread: the arena `share` describes, for `arrays` of it received there. */
  static adopt(share: KernelArenaShare, arrays: readonly Uint32Array[]): KernelArena {
    const { memory, scratch, base, limit } = share;
    const arena = new KernelArena(memory as WasmMemory, base, base, scratch, base, limit, null);
    for (const array of arrays) arenas.set(array.buffer, arena);
    return arena;
  }

  /**
   * A Uint32Array of `length` zeros in the arena, followed by 16 bytes of padding (the kernel reads a
   * few tokens past the end, then masks them out); null when the arena is full.
   */
  uint32Array(length: number): Uint32Array | null {
    const at = align(this.top);
    if (at + 4 * length + 16 > this.arraysEnd) return null;
    this.top = at + 4 * length + 16;
    return new Uint32Array(this.buffer, at, length);
  }

  /**
   * Four Uint32Arrays of `length` zeros, two at the start of this arena's kernel working space and two
   * at the start of the other thread's, each followed by 16 bytes of padding; null where they do not fit
   * (or the arena is adopted, or lent already). For data read for the last time before a kernel first
   * runs on the arena: the kernels then write their seeds and trial values over it, in pages faulted
   * once for both (each first touch of a page costs the kernel a fault).
   */
  lendWorkingSpace(length: number): Uint32Array[] | null {
    const guest = this.guest;
    if (guest === null || this.lent) return null;
    const bytes = align(4 * length + 16);
    if (this.base + 2 * bytes > this.limit || guest.base + 2 * bytes > guest.limit) return null;
    this.lent = true;
    return [this.base, this.base + bytes, guest.base, guest.base + bytes].map(
      (at) => new Uint32Array(this.buffer, at, length),
    );
  }

  /**
   * Views of this arena's kernel working space and of the other thread's (null for an adopted arena),
   * for a thread to touch ahead of the kernels (see EvidenceTape's `handOff`).
   */
  workingSpace(): { own: Uint32Array; guest: Uint32Array } | null {
    const guest = this.guest;
    if (guest === null) return null;
    return {
      own: new Uint32Array(this.buffer, this.base, (this.limit - this.base) >>> 2),
      guest: new Uint32Array(this.buffer, guest.base, (guest.limit - guest.base) >>> 2),
    };
  }

  /** What another thread's {@link adopt} takes (null for an adopted arena). */
  share(): KernelArenaShare | null {
    return this.guest;
  }

  /** The kernel on this arena's memory, and its working space. */
  kernelHere(): { wasm: KernelExports; base: number; limit: number } | null {
    if (spent.has(this)) return null;
    const wasm = this.instance();
    return wasm === null ? null : { wasm, base: this.base, limit: this.limit };
  }

  /** This thread's kernel instance on the arena's memory (its scratch set), working space or not. */
  instance(): KernelExports | null {
    if (this.kernel === undefined) {
      // The module compiles, and its code is optimized, once a thread: on this thread's own kernel.
      const kernel = loadKernel() === null ? null : instantiate(this.memory);
      kernel?.setScratch(this.scratch);
      this.kernel = kernel;
    }
    return this.kernel;
  }

  /** Where this thread's kernel may put {@link countMixed}'s masks and counts: past its messages. */
  mixScratch(): { at: number; bytes: number } {
    return { at: this.scratch + SCRATCH_BYTES, bytes: ARENA_SCRATCH_BYTES - SCRATCH_BYTES };
  }

  /**
   * `array` (of this arena's memory, received from another thread: its buffer is another object for the
   * same memory) as a view of this thread's buffer, which {@link kernelArenaOf} knows; null when it
   * does not fit in the arena.
   */
  view(array: Uint32Array): Uint32Array | null {
    if (array.buffer.byteLength !== this.buffer.byteLength) return null;
    return new Uint32Array(this.buffer, array.byteOffset, array.length);
  }
}

/** The arena each arena buffer belongs to. */
const arenas = new WeakMap<ArrayBufferLike, KernelArena>();
/** Arenas whose working space handed out trial values: later runs on their tapes copy into this thread's kernel. */
const spent = new WeakSet<KernelArena>();

/** The arena `array` lies in, if any (on this thread). */
export function kernelArenaOf(array: Uint32Array): KernelArena | null {
  return arenas.get(array.buffer) ?? null;
}

/** Where a tape is scored: in its arena when all its arrays are in one, else in this thread's kernel. */
interface KernelTarget {
  readonly wasm: KernelExports;
  /** The first byte of working space, and the end of what may be used. */
  readonly base: number;
  readonly limit: number;
  /** The tape's arrays are in this kernel's memory already (in this arena). */
  readonly arena: KernelArena | null;
}

function kernelFor(tape: WindowGroupedTape, accelerate: boolean): KernelTarget | null {
  if (!accelerate) return null;
  const arena = arenas.get(tape.windows.buffer);
  if (
    arena !== undefined &&
    arenas.get(tape.offsets.buffer) === arena &&
    arenas.get(tape.tokens.buffer) === arena
  ) {
    const here = arena.kernelHere();
    if (here !== null) return { ...here, arena };
  }
  return ownKernel();
}

/** This thread's kernel, on its own memory (copies in, working space from its scratch on). */
function ownKernel(): KernelTarget | null {
  const wasm = loadKernel();
  return wasm === null ? null : { wasm, base: SCRATCH_BYTES, limit: Number.POSITIVE_INFINITY, arena: null };
}

/**
 * V8 first runs WebAssembly from a baseline compiler (about 15× slower here) and optimizes a function
 * once it is hot, for the calls that follow. A few small calls make it hot, so the real work, done
 * in calls of a few keys each, runs optimized code: about 10 ms, once per thread.
 */
function warmUp(wasm: KernelExports): void {
  const windows = 64;
  const tokens = 2048;
  const offsets = new Uint32Array(windows + 1);
  for (let c = 0; c <= windows; c++) offsets[c] = (c * tokens) / windows;
  const tape = {
    windowWidth: 1,
    windows: Uint32Array.from({ length: windows }, (_, i) => i),
    offsets,
    tokens: Uint32Array.from({ length: tokens }, (_, i) => i),
  };
  const keyBytes = new Uint8Array(32).fill(7);
  for (let call = 0; call < 24; call++) {
    const own = { wasm, base: SCRATCH_BYTES, limit: Number.POSITIVE_INFINITY, arena: null };
    runKernel(own, tape, keyBytes, 0x40000000, false);
    runKernel(own, tape, keyBytes, 0x40000000, true);
  }
}

/** A LeftHash tape grouped by window: the tokens that follow window c are tokens[offsets[c] .. offsets[c+1]). */
export interface WindowGroupedTape {
  readonly windowWidth: number;
  /** Window tokens, windowWidth per window. */
  readonly windows: Uint32Array;
  /** windows.length / windowWidth + 1 offsets into tokens. */
  readonly offsets: Uint32Array;
  readonly tokens: Uint32Array;
}

/** The two PRF keys the kernel needs, 32 bytes a key: K_context then K_green. */
export function kernelKeyBytes(keys: readonly WatermarkKey[]): Uint8Array {
  const out = new Uint8Array(32 * keys.length);
  keys.forEach((key, i) => {
    const prf = derivePrfKeys(key.secret);
    out.set(prf.context, 32 * i);
    out.set(prf.green, 32 * i + 16);
  });
  return out;
}

export interface KernelOutput {
  /** Green count per key. */
  readonly counts: Uint32Array;
  /** With `withBits` (one key): green bit per token, in tape order. */
  readonly bits: Uint8Array | null;
  /** With `withBits` (one key): the 64-bit seed of each window as [high, low] word pairs. */
  readonly seeds: Uint32Array | null;
  /** With `withValues` (one key): the 64-bit green PRF output of each token as [low, high] word pairs. */
  readonly values?: Uint32Array | null;
}

const align = (n: number): number => (n + 7) & ~7;
/** A page of memory, as the operating system maps it. */
const PAGE_BYTES = 4096;

/** Grows the module's memory to hold `end` bytes; returns its (possibly new) buffer. */
function reserve(memory: WasmMemory, end: number): ArrayBuffer {
  if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
  return memory.buffer;
}

/** The tape last copied into the kernel's memory (the same typed arrays are not copied again). */
let resident: {
  wasm: KernelExports | null;
  windows: Uint32Array | null;
  offsets: Uint32Array | null;
  tokens: Uint32Array | null;
} = { wasm: null, windows: null, offsets: null, tokens: null };

/** Other users of the kernel's memory overwrite the resident tape. */
function evict(): void {
  resident = { wasm: null, windows: null, offsets: null, tokens: null };
}

/**
 * Counts green tokens of `tape` under each key (`keyBytes` from {@link kernelKeyBytes}), all with
 * the green threshold τ. With `withBits`, `keyBytes` must hold one key.
 */
export function countLeftHash(
  tape: WindowGroupedTape,
  keyBytes: Uint8Array,
  threshold: number,
  withBits = false,
  accelerate = true,
): KernelOutput {
  const nkeys = keyBytes.length / 32;
  if (!Number.isInteger(nkeys)) throw new RangeError('keyBytes: expected 32 bytes a key');
  if (withBits && nkeys !== 1) throw new RangeError('withBits: expected exactly one key');
  const target = kernelFor(tape, accelerate);
  if (target === null) return countScalar(tape, keyBytes, threshold, withBits);
  return runKernel(target, tape, keyBytes, threshold, withBits);
}

/**
 * One key's green bits on `tape` (in tape order), its green count, and whether its window seeds are
 * all distinct (when two collide, the windows are one trial: the caller deduplicates on seeds). The
 * seeds are checked where the kernel wrote them, without a copy.
 */
export function leftHashBits(
  tape: WindowGroupedTape,
  keyBytes: Uint8Array,
  threshold: number,
  accelerate = true,
): { readonly numGreen: number; readonly bits: Uint8Array; readonly distinctSeeds: boolean } {
  if (keyBytes.length !== 32) throw new RangeError('keyBytes: expected exactly one key');
  const target = kernelFor(tape, accelerate);
  const output =
    target === null
      ? countScalar(tape, keyBytes, threshold, true)
      : runKernel(target, tape, keyBytes, threshold, true, false, false, true);
  return {
    numGreen: output.counts[0]!,
    bits: output.bits!,
    // The kernel's seeds are its i64s as they lie in memory, (low, high) word pairs.
    distinctSeeds: allDistinct64(output.seeds!, target === null ? 0 : 1),
  };
}

/**
 * With `rawSeeds`, `seeds` is the kernel's memory itself, as it wrote them ((low, high) word pairs),
 * until the kernel next runs.
 */
function runKernel(
  target: KernelTarget,
  tape: WindowGroupedTape,
  keyBytes: Uint8Array,
  threshold: number,
  withBits: boolean,
  withValues = false,
  sharedValues = false,
  rawSeeds = false,
): KernelOutput {
  const { wasm, base, limit, arena } = target;
  const inPlace = arena !== null;
  const nkeys = keyBytes.length / 32;
  const h = tape.windowWidth;
  const nwindows = tape.offsets.length - 1;
  const ntokens = tape.tokens.length;
  // The tape first (where it is not in place already), so that it stays put whatever the number of
  // keys: a batch of fake keys runs in several calls on one copy.
  const windowsAt = inPlace ? tape.windows.byteOffset : base;
  const offsetsAt = inPlace ? tape.offsets.byteOffset : align(windowsAt + 4 * tape.windows.length);
  const tokensAt = inPlace ? tape.tokens.byteOffset : align(offsetsAt + 4 * tape.offsets.length);
  // 16 bytes of padding: the SIMD path loads up to three tokens past the end, then masks them out
  // (an arena pads each of its arrays so).
  const keysAt = inPlace ? base : align(tokensAt + 4 * ntokens + 16);
  const countsAt = align(keysAt + keyBytes.length);
  const bitsAt = align(countsAt + 4 * nkeys);
  const seedsAt = align(bitsAt + (withBits ? ntokens : 0));
  const valuesAt = align(seedsAt + (withBits ? 8 * nwindows : 0));
  const end = valuesAt + (withValues ? 8 * ntokens : 0);
  // An arena's working space is bounded (another thread's follows it): past it, in this thread's kernel.
  if (end > limit) {
    const own = ownKernel()!;
    return runKernel(own, tape, keyBytes, threshold, withBits, withValues, sharedValues, rawSeeds);
  }
  const buffer = reserve(wasm.memory, end);
  if (
    !inPlace &&
    (resident.windows !== tape.windows ||
      resident.offsets !== tape.offsets ||
      resident.tokens !== tape.tokens ||
      resident.wasm !== wasm)
  ) {
    new Uint32Array(buffer, windowsAt, tape.windows.length).set(tape.windows);
    new Uint32Array(buffer, offsetsAt, tape.offsets.length).set(tape.offsets);
    new Uint32Array(buffer, tokensAt, ntokens).set(tape.tokens);
    resident = { wasm, windows: tape.windows, offsets: tape.offsets, tokens: tape.tokens };
  }
  new Uint8Array(buffer, keysAt, keyBytes.length).set(keyBytes);
  if (withBits || withValues) {
    wasm.countLeftHash(
      keysAt,
      nkeys,
      h,
      windowsAt,
      nwindows,
      offsetsAt,
      tokensAt,
      threshold >>> 0,
      countsAt,
      withBits ? bitsAt : 0,
      withBits ? seedsAt : 0,
      withValues ? valuesAt : 0,
    );
  } else {
    // Counts only: four tokens at a time in WebAssembly SIMD.
    wasm.countLeftHashSimd(
      keysAt,
      nkeys,
      h,
      windowsAt,
      nwindows,
      offsetsAt,
      tokensAt,
      threshold >>> 0,
      countsAt,
    );
  }
  const counts = new Uint32Array(buffer, countsAt, nkeys).slice();
  let values: Uint32Array | null = null;
  if (withValues) {
    const view = new Uint32Array(buffer, valuesAt, 2 * ntokens);
    if (!sharedValues) values = view.slice();
    else if (arena === null) values = sharedCopy(view);
    else {
      // Shared memory already, and the arena's kernel here runs no more: handed out as they are (and
      // known as the arena's, for countMixed to read them where they are).
      values = view;
      spent.add(arena);
      arenas.set(view.buffer, arena);
    }
  }
  if (!withBits) return { counts, bits: null, seeds: null, values };
  const bits = new Uint8Array(buffer, bitsAt, ntokens).slice();
  const raw = new Uint32Array(buffer, seedsAt, 2 * nwindows);
  if (rawSeeds) return { counts, bits, seeds: raw, values };
  const seeds = new Uint32Array(2 * nwindows);
  for (let c = 0; c < nwindows; c++) {
    seeds[2 * c] = raw[2 * c + 1]!;
    seeds[2 * c + 1] = raw[2 * c]!;
  }
  return { counts, bits, seeds, values };
}

/** The same computation with the scalar SipHash of @tracemark/core. */
function countScalar(
  tape: WindowGroupedTape,
  keyBytes: Uint8Array,
  threshold: number,
  withBits: boolean,
  withValues = false,
): KernelOutput {
  const h = tape.windowWidth;
  const nkeys = keyBytes.length / 32;
  const nwindows = tape.offsets.length - 1;
  const counts = new Uint32Array(nkeys);
  const bits = withBits ? new Uint8Array(tape.tokens.length) : null;
  const seeds = withBits ? new Uint32Array(2 * nwindows) : null;
  const values = withValues ? new Uint32Array(2 * tape.tokens.length) : null;
  const message = new Uint8Array(1 + 4 * h);
  message[0] = 0x01;
  const view = new DataView(message.buffer);
  for (let k = 0; k < nkeys; k++) {
    const context = createSipHasher(keyBytes.slice(32 * k, 32 * k + 16));
    const green = createSipHasher(keyBytes.slice(32 * k + 16, 32 * k + 32));
    let count = 0;
    for (let c = 0; c < nwindows; c++) {
      for (let j = 0; j < h; j++) view.setUint32(1 + 4 * j, tape.windows[c * h + j]!, true);
      context.bytes(message);
      const high = context.out[0]!;
      const low = context.out[1]!;
      if (seeds !== null) {
        seeds[2 * c] = high;
        seeds[2 * c + 1] = low;
      }
      for (let e = tape.offsets[c]!; e < tape.offsets[c + 1]!; e++) {
        const isGreen = green.twoBlocks(high, low, 0, tape.tokens[e]!, 12) >>> 0 < threshold;
        if (isGreen) count++;
        if (values !== null) {
          values[2 * e] = green.out[1]!;
          values[2 * e + 1] = green.out[0]!;
        }
        if (bits !== null) bits[e] = isGreen ? 1 : 0;
      }
    }
    counts[k] = count;
  }
  return { counts, bits, seeds, values };
}

/**
 * The whole 64-bit green PRF output SipHash(K_green, LE64(seed) || LE32(token)) of every token of the
 * tape under one key, as [low, high] word pairs in tape order (the fake keys' trial values).
 */
export function leftHashGreenValues(
  tape: WindowGroupedTape,
  keyBytes: Uint8Array,
  accelerate = true,
  shared = false,
): Uint32Array {
  if (keyBytes.length !== 32) throw new RangeError('keyBytes: expected one key (32 bytes)');
  const target = kernelFor(tape, accelerate);
  // The kernel copies its values out straight into shared memory; the scalar path's are copied there.
  if (target !== null) return runKernel(target, tape, keyBytes, 0, false, true, shared).values!;
  const values = countScalar(tape, keyBytes, 0, false, true).values!;
  return shared ? sharedCopy(values) : values;
}

/** A copy of `array` in a SharedArrayBuffer. */
export function sharedCopy(array: Uint32Array): Uint32Array {
  const copy = new Uint32Array(new SharedArrayBuffer(Math.max(4, array.byteLength)), 0, array.length);
  copy.set(array);
  return copy;
}

/**
 * Loads and compiles the WebAssembly kernel now rather than at its first use (about 40 ms, once a
 * thread): for a thread that is idle now and will score keys soon. False where WebAssembly is missing.
 */
export function warmKernel(): boolean {
  return loadKernel() !== null;
}

/** Bytes of this thread's kernel memory whose pages {@link prefaultKernel} has reached. */
let prefaulted = 0;

/**
 * Grows this thread's kernel memory to `bytes` and writes each of its pages once, at most `slice`
 * bytes' worth per call; true once every page is written. A 4 KB page costs the operating system a
 * fault when first written (about 11 µs on a 2-core virtual machine, where copying a 3 M-token tape
 * into the kernel's memory took 0.3 s): a thread that will score keys soon and is idle now takes those
 * faults ahead (calling again between other work until true). Each write puts back the byte it read.
 */
export function prefaultKernel(bytes: number, slice: number = 8 * 1024 * 1024): boolean {
  const wasm = loadKernel();
  if (wasm === null) return true;
  const buffer = reserve(wasm.memory, bytes);
  const end = Math.min(buffer.byteLength, prefaulted + slice);
  const view = new Uint8Array(buffer);
  for (let at = prefaulted; at < end; at += PAGE_BYTES) view[at]! |= 0;
  prefaulted = Math.max(prefaulted, end);
  return prefaulted >= buffer.byteLength;
}

/**
 * Green counts of fake keys from trial values ([low, high] word pairs): mask j (a [low, high] word
 * pair) gives z = SplitMix64's finalizer of (value + mask) mod 2^64, and keys 2j and 2j + 1 count the
 * values whose high and low 32 bits of z are below τ. Returns the two counts per mask.
 */
export function countMixed(
  values: Uint32Array,
  masks: Uint32Array,
  threshold: number,
  accelerate = true,
): Uint32Array {
  const n = values.length >>> 1;
  const nmasks = masks.length >>> 1;
  // Trial values in a kernel arena (made there by a kernel, a LeftHash tape's) are read where they are:
  // copying them into this thread's kernel took 8 bytes a trial of memory first touched, and a copy a call.
  const arena = accelerate ? kernelArenaOf(values) : null;
  const here = arena?.instance() ?? null;
  const scratch = arena?.mixScratch() ?? null;
  if (here !== null && scratch !== null && 16 * nmasks + 8 <= scratch.bytes) {
    const masksAt = scratch.at;
    const countsAt = align(masksAt + 8 * nmasks);
    const buffer = here.memory.buffer;
    new Uint32Array(buffer, masksAt, 2 * nmasks).set(masks);
    here.countMixed(values.byteOffset, n, masksAt, nmasks, threshold >>> 0, countsAt);
    return new Uint32Array(buffer, countsAt, 2 * nmasks).slice();
  }
  const wasm = accelerate ? loadKernel() : null;
  if (wasm === null) return countMixedScalar(values, masks, threshold);
  evict();
  const masksAt = SCRATCH_BYTES;
  const countsAt = align(masksAt + 8 * nmasks);
  const valuesAt = align(countsAt + 8 * nmasks);
  const end = valuesAt + 8 * n;
  const buffer = reserve(wasm.memory, end);
  new Uint32Array(buffer, masksAt, 2 * nmasks).set(masks);
  new Uint32Array(buffer, valuesAt, 2 * n).set(values.subarray(0, 2 * n));
  wasm.countMixed(valuesAt, n, masksAt, nmasks, threshold >>> 0, countsAt);
  return new Uint32Array(buffer, countsAt, 2 * nmasks).slice();
}

const MASK64 = (1n << 64n) - 1n;

/** The reference of {@link countMixed}, in BigInt arithmetic. */
function countMixedScalar(values: Uint32Array, masks: Uint32Array, threshold: number): Uint32Array {
  const n = values.length >>> 1;
  const nmasks = masks.length >>> 1;
  const counts = new Uint32Array(2 * nmasks);
  const limit = BigInt(threshold >>> 0);
  for (let j = 0; j < nmasks; j++) {
    const mask = (BigInt(masks[2 * j + 1]!) << 32n) | BigInt(masks[2 * j]!);
    for (let e = 0; e < n; e++) {
      let z = (((BigInt(values[2 * e + 1]!) << 32n) | BigInt(values[2 * e]!)) + mask) & MASK64;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
      z ^= z >> 31n;
      if (z >> 32n < limit) counts[2 * j]!++;
      if ((z & 0xffffffffn) < limit) counts[2 * j + 1]!++;
    }
  }
  return counts;
}

/**
 * SelfHash(h) seeds and green PRF outputs of (anchor, token) pairs under one key (`keyBytes` from
 * {@link kernelKeyBytes}): seed = SipHash(K_context, 0x02 || LE32(anchor) || LE32(token)), value =
 * SipHash(K_green, LE64(seed) || LE32(token)); both as [low, high] word pairs (the token is green when
 * the high word is below τ). With `raw`, both are the kernel's memory where it wrote them, valid until
 * it runs again on this thread (without WebAssembly, arrays of their own either way).
 */
export function selfHashSeeds(
  keyBytes: Uint8Array,
  anchors: Uint32Array,
  tokens: Uint32Array,
  accelerate = true,
  raw = false,
): { seeds: Uint32Array; values: Uint32Array } {
  if (keyBytes.length !== 32) throw new RangeError('keyBytes: expected one key (32 bytes)');
  const n = tokens.length;
  const wasm = accelerate ? loadKernel() : null;
  if (wasm === null) {
    const context = createSipHasher(keyBytes.slice(0, 16));
    const green = createSipHasher(keyBytes.slice(16, 32));
    const message = new Uint8Array(9);
    const view = new DataView(message.buffer);
    message[0] = 0x02;
    const seeds = new Uint32Array(2 * n);
    const values = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) {
      view.setUint32(1, anchors[i]!, true);
      view.setUint32(5, tokens[i]!, true);
      context.bytes(message);
      const high = context.out[0]!;
      const low = context.out[1]!;
      seeds[2 * i] = low;
      seeds[2 * i + 1] = high;
      green.twoBlocks(high, low, 0, tokens[i]!, 12);
      values[2 * i] = green.out[1]!;
      values[2 * i + 1] = green.out[0]!;
    }
    return { seeds, values };
  }
  evict();
  const keyAt = SCRATCH_BYTES;
  const anchorsAt = align(keyAt + 32);
  const tokensAt = align(anchorsAt + 4 * n);
  const seedsAt = align(tokensAt + 4 * n);
  const valuesAt = align(seedsAt + 8 * n);
  const end = valuesAt + 8 * n;
  const buffer = reserve(wasm.memory, end);
  new Uint8Array(buffer, keyAt, 32).set(keyBytes);
  new Uint32Array(buffer, anchorsAt, n).set(anchors.subarray(0, n));
  new Uint32Array(buffer, tokensAt, n).set(tokens);
  wasm.selfHashSeeds(keyAt, anchorsAt, tokensAt, n, seedsAt, valuesAt);
  if (raw) {
    return {
      seeds: new Uint32Array(buffer, seedsAt, 2 * n),
      values: new Uint32Array(buffer, valuesAt, 2 * n),
    };
  }
  return {
    seeds: new Uint32Array(buffer, seedsAt, 2 * n).slice(),
    values: new Uint32Array(buffer, valuesAt, 2 * n).slice(),
  };
}
