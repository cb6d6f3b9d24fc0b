/** The parts of a tiktoken rank file (js-tiktoken's `TiktokenBPE`) that this package reads. */
export interface RankFile {
  /** The pre-tokenization pattern, compiled with the flags `gu` as tiktoken does. */
  readonly pat_str: string;
  /** Lines of `<marker> <first id> <base64 token bytes> …`; each line's tokens take consecutive ids. */
  readonly bpe_ranks: string;
}

/** Every token's bytes, concatenated, with offsets: token `id` is `bytes[offsets[id] … offsets[id + 1])`. */
export interface ByteTable {
  readonly bytes: Uint8Array;
  /** `vocabSize + 1` offsets; an unused id has no bytes. */
  readonly offsets: Uint32Array;
}

const BASE64_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PADDING = 61; // '='
const SPACE = 32;

/** The value of each base64 digit by its character code; -1 for any other character. */
const DIGIT_VALUES: Int8Array = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let i = 0; i < BASE64_DIGITS.length; i++) values[BASE64_DIGITS.charCodeAt(i)] = i;
  return values;
})();

/**
 * The byte table of a rank file's ordinary tokens followed by the given special tokens. It decodes the
 * base64 straight from the rank text into one buffer, in two passes (lengths, then bytes): decoding each
 * token on its own (atob, a Uint8Array per token) was most of the tokenizer's start-up.
 */
export function buildByteTable(
  ranks: RankFile,
  vocabSize: number,
  specialTokens: Readonly<Record<string, number>>,
): ByteTable {
  const text = ranks.bpe_ranks;
  // Where each id's base64 lies in the rank text (a later occurrence wins, as it would in a map).
  const starts = new Int32Array(vocabSize).fill(-1);
  const ends = new Int32Array(vocabSize);
  const lengths = new Uint32Array(vocabSize);
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    if (lineEnd > lineStart) {
      // Fields are separated by single spaces: the marker, the first id, then one token each.
      let field = 0;
      let fieldStart = lineStart;
      let id = 0;
      for (let i = lineStart; i <= lineEnd; i++) {
        if (i < lineEnd && text.charCodeAt(i) !== SPACE) continue;
        if (field === 1) id = Number.parseInt(text.slice(fieldStart, i), 10);
        else if (field >= 2) {
          if (id >= 0 && id < vocabSize) {
            starts[id] = fieldStart;
            ends[id] = i;
            lengths[id] = decodedLength(text, fieldStart, i);
          }
          id++;
        }
        field++;
        fieldStart = i + 1;
      }
    }
    lineStart = lineEnd + 1;
  }
  const specialBytes = new Map<number, Uint8Array>();
  const encoder = new TextEncoder();
  for (const [special, id] of Object.entries(specialTokens)) {
    const piece = encoder.encode(special);
    if (id < 0 || id >= vocabSize) continue;
    specialBytes.set(id, piece);
    starts[id] = -1;
    lengths[id] = piece.length;
  }
  const offsets = new Uint32Array(vocabSize + 1);
  let total = 0;
  for (let id = 0; id < vocabSize; id++) {
    offsets[id] = total;
    total += lengths[id]!;
  }
  offsets[vocabSize] = total;
  const bytes = new Uint8Array(total);
  for (let id = 0; id < vocabSize; id++) {
    if (starts[id]! >= 0) decodeInto(text, starts[id]!, ends[id]!, bytes, offsets[id]!);
  }
  for (const [id, piece] of specialBytes) bytes.set(piece, offsets[id]!);
  return { bytes, offsets };
}

/** Bytes of the base64 text[start … end), padded or not. */
function decodedLength(text: string, start: number, end: number): number {
  let digits = end - start;
  while (digits > 0 && text.charCodeAt(start + digits - 1) === PADDING) digits--;
  return Math.floor((digits * 6) / 8);
}

function decodeInto(text: string, start: number, end: number, out: Uint8Array, at: number): void {
  let bits = 0;
  let held = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code === PADDING) break;
    const value = code < 128 ? DIGIT_VALUES[code]! : -1;
    if (value < 0) throw new SyntaxError(`rank file: invalid base64 character at ${i}`);
    bits = ((bits << 6) | value) & 0xffffff;
    held += 6;
    if (held >= 8) {
      held -= 8;
      out[at++] = (bits >> held) & 0xff;
    }
  }
}
