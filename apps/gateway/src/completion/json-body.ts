/**
 * A large JSON body written a piece at a time. A response with 65,536 log-probabilities is about 5 MB of
 * JSON: serialized, encoded and written in one go it held the event loop (and every other request) for a
 * few hundred milliseconds. Written as pieces of about {@link PIECE_CHARS} characters, with the event loop
 * free between pieces, other requests wait for one piece at most, and the client reads the first bytes
 * sooner. The text is JSON.stringify's, character for character (typed arrays of numbers aside: see
 * {@link jsonPieces}).
 */
import { Readable } from 'node:stream';

/** Characters of JSON written between two turns of the event loop. */
export const PIECE_CHARS: number = 64 * 1024;

/** Elements of an array serialized together (each a small object: a token and its top log-probabilities). */
const ELEMENTS_PER_PIECE = 32;

/** Numbers of a typed array serialized together. */
const NUMBERS_PER_PIECE = 4096;

type NumberArray =
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** A typed array of numbers (written as a JSON array of its numbers). */
function isNumberArray(value: unknown): value is NumberArray {
  return (
    ArrayBuffer.isView(value) &&
    !(value instanceof DataView) &&
    !(value instanceof BigInt64Array) &&
    !(value instanceof BigUint64Array)
  );
}

/** Whether `value` holds an array long enough to be split, at any depth. */
function hasLongArray(value: unknown): boolean {
  if (isNumberArray(value)) return true;
  if (Array.isArray(value)) return value.length > ELEMENTS_PER_PIECE || value.some(hasLongArray);
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value).some(hasLongArray);
}

/**
 * The JSON text of `value` (plain data: objects, arrays, strings, numbers, booleans, null; undefined object
 * fields left out, as JSON.stringify does) in pieces whose concatenation is `JSON.stringify(value)`: arrays
 * longer than {@link ELEMENTS_PER_PIECE} are written a few elements at a time, everything else whole. A typed
 * array of numbers (a record's token ids) is written as the JSON array of its numbers, converted a piece at a
 * time, where JSON.stringify would write an object of its indices.
 */
export function* jsonPieces(value: unknown): Generator<string, void, undefined> {
  if (!hasLongArray(value)) {
    yield JSON.stringify(value) ?? 'null';
    return;
  }
  if (isNumberArray(value)) {
    yield '[';
    for (let start = 0; start < value.length; start += NUMBERS_PER_PIECE) {
      const numbers = Array.from(value.subarray(start, start + NUMBERS_PER_PIECE));
      yield `${start > 0 ? ',' : ''}${JSON.stringify(numbers).slice(1, -1)}`;
    }
    yield ']';
    return;
  }
  if (Array.isArray(value)) {
    yield '[';
    for (let start = 0; start < value.length; start += ELEMENTS_PER_PIECE) {
      if (start > 0) yield ',';
      const elements = value.slice(start, start + ELEMENTS_PER_PIECE);
      if (!elements.some(hasLongArray)) {
        // JSON.stringify of the elements together, without its brackets (undefined is null, as in an array)
        yield JSON.stringify(elements).slice(1, -1);
        continue;
      }
      for (let i = 0; i < elements.length; i++) {
        if (i > 0) yield ',';
        yield* jsonPieces(elements[i] ?? null);
      }
    }
    yield ']';
    return;
  }
  yield '{';
  let first = true;
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    if (field === undefined || typeof field === 'function' || typeof field === 'symbol') continue;
    yield `${first ? '' : ','}${JSON.stringify(key)}:`;
    first = false;
    yield* jsonPieces(field);
  }
  yield '}';
}

/**
 * `value`'s JSON as a byte stream: pieces of about {@link PIECE_CHARS} characters, each written after the
 * event loop has had a turn (setImmediate), so that other requests are served in between.
 */
export function jsonBodyStream(value: unknown): Readable {
  const pieces = jsonPieces(value);
  return Readable.from(
    (async function* () {
      let buffered: string[] = [];
      let length = 0;
      for (const piece of pieces) {
        buffered.push(piece);
        length += piece.length;
        if (length < PIECE_CHARS) continue;
        yield Buffer.from(buffered.join(''), 'utf8');
        buffered = [];
        length = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (length > 0) yield Buffer.from(buffered.join(''), 'utf8');
    })(),
    { objectMode: false },
  );
}
