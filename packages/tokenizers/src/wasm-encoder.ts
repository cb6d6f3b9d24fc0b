/**
 * cl100k_base's ASCII pieces encoded by a WebAssembly module (wasm/ascii-encoder.c, compiled by
 * wasm/generate.mjs into ascii-encoder-wasm.ts). The byte-pair encoder puts a text's UTF-8 bytes in the
 * module's memory and lets it encode piece after piece until one that it leaves to JavaScript: a piece
 * with a non-ASCII character, or one longer than the array merge's limit. Same ids as the JavaScript
 * path, step for step (src/wasm-encoder.test.ts); the point is time: WebAssembly needs no warm-up and
 * compiles in a millisecond, where V8 optimizes the JavaScript encoder anew in every thread.
 */
import { ASCII_ENCODER_WASM_BASE64 } from './ascii-encoder-wasm.js';
import type { TokenTable } from './token-table.js';

// The few WebAssembly declarations used here (the project's lib settings carry no DOM types).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
};

interface EncoderExports {
  readonly memory: WasmMemory;
  reserve(size: number): number;
  setup(
    slots: number,
    capacity: number,
    bytes: number,
    offsets: number,
    count: number,
    byteIds: number,
    pairIds: number,
  ): number;
  produced(): number;
  encode(input: number, length: number, from: number, out: number, count: number): number;
}

/**
 * Texts of more UTF-16 units than this take the JavaScript path. The module's memory never shrinks, and
 * its buffers take 3 bytes of input a unit and 4 bytes of ids a byte, doubling as texts grow: at this
 * bound a thread keeps at most about 40 MB for them (an 8 Mi-unit text of CJK letters kept 100 MB more
 * than the JavaScript path), and texts of over a million characters are rare.
 */
export const MAX_WASM_UNITS: number = 1 << 20;

/** Room the module may read past a text or the tokens' bytes (whole words); SENTINEL ends a text. */
const WORD_SLACK = 8;
const SENTINEL = 0xff;

/** The module's encoder over one token table, with its input and output buffers. */
export interface WasmAsciiEncoder {
  /**
   * Puts the UTF-8 bytes of `text` (at most {@link MAX_WASM_UNITS} units) in the module's memory, with
   * room in {@link output} for as many ids; false (nothing loaded) when the memory cannot grow to hold them.
   */
  load(text: string): boolean;
  /** The ids' buffer of the last {@link load}: index `count` on is where {@link encode} writes. */
  readonly output: Uint32Array;
  /**
   * Encodes the loaded text's pieces from byte `from`, writing ids from index `count` of {@link output},
   * until a piece it leaves to the caller or the end; returns the byte where it stopped.
   */
  encode(from: number, count: number): number;
  /** The count of ids after the last {@link encode}. */
  produced(): number;
}

let compiled: object | null | undefined;

/** The compiled module, once per thread; null where WebAssembly is unavailable. */
function compiledModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(
        Uint8Array.from(atob(ASCII_ENCODER_WASM_BASE64), (c) => c.charCodeAt(0)),
      );
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** An encoder over `table` in a module instance of its own, or null without WebAssembly or memory. */
export function createWasmAsciiEncoder(table: TokenTable): WasmAsciiEncoder | null {
  const module = compiledModule();
  if (module === null) return null;
  let wasm: EncoderExports;
  try {
    wasm = new WebAssembly.Instance(module, {}).exports as EncoderExports;
  } catch {
    return null;
  }
  const { byteIds, pairIds } = table.built();
  const { bytes, offsets, count } = table.tokenBytes();
  /** Fresh memory of `size` bytes (zeroed), or a RangeError. */
  const reserve = (size: number): number => {
    const at = wasm.reserve(size);
    if (at === 0) throw new RangeError('the WebAssembly encoder could not grow its memory');
    return at;
  };
  // A copy of `array`, with `slack` more bytes of room after it (the module reads whole words).
  const place = (array: Int32Array | Uint32Array | Uint8Array, slack = 0): number => {
    const at = reserve(array.byteLength + slack);
    new Uint8Array(wasm.memory.buffer, at, array.byteLength).set(
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
    );
    return at;
  };
  // Its table: 16 bytes a slot, at most half of them full.
  let capacity = 1024;
  while (capacity < 2 * count) capacity *= 2;
  try {
    const slotsAt = reserve(16 * capacity);
    const built = wasm.setup(
      slotsAt,
      capacity,
      place(bytes, WORD_SLACK),
      place(offsets),
      count,
      place(byteIds),
      place(pairIds),
    );
    if (built !== 1) return null;
  } catch {
    return null;
  }

  const utf8 = new TextEncoder();
  let inputAt = 0;
  let inputCapacity = 0;
  let outputAt = 0;
  let outputCapacity = 0;
  let output = new Uint32Array(0);
  let length = 0;
  /** A region of at least `needed` bytes, doubling the last (the old one stays unused); null without memory. */
  const region = (needed: number, capacity: number): [number, number] | null => {
    const size = Math.max(needed, 2 * capacity, 1 << 16);
    const at = wasm.reserve(size);
    return at === 0 ? null : [at, size];
  };

  return {
    load(text) {
      // A UTF-16 unit takes at most 3 bytes.
      const needed = 3 * text.length + WORD_SLACK;
      if (needed > inputCapacity) {
        const grown = region(needed, inputCapacity);
        if (grown === null) return false;
        [inputAt, inputCapacity] = grown;
      }
      const memory = new Uint8Array(wasm.memory.buffer);
      length = utf8.encodeInto(text, memory.subarray(inputAt, inputAt + needed - WORD_SLACK)).written;
      memory[inputAt + length] = SENTINEL;
      // A token holds one byte or more: a text has at most as many ids as bytes.
      if (4 * length > outputCapacity) {
        const grown = region(4 * length, outputCapacity);
        if (grown === null) return false;
        [outputAt, outputCapacity] = grown;
      }
      output = new Uint32Array(wasm.memory.buffer, outputAt, outputCapacity >>> 2);
      return true;
    },
    get output() {
      return output;
    },
    encode: (from, count) => wasm.encode(inputAt, length, from, outputAt, count),
    produced: () => wasm.produced(),
  };
}
