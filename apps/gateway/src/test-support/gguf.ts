/**
 * A tiny llama-architecture model as a GGUF file (llama.cpp's format, version 3), built in the test so that
 * an independent llama.cpp-based server can be run without downloading a model. The weights are random
 * (seeded) F32; the vocabulary is byte-level BPE over tiktoken's pieces, so the server's token strings are
 * the gateway tokenizer's own pieces: the 256 single bytes, then the first `vocabularyLimit` ranks whose
 * text is whole UTF-8, each with the merge tiktoken's ranks imply.
 *
 * Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian throughout: header,
 * key-value metadata, tensor infos, then the tensor data, each tensor aligned to `general.alignment`).
 */
import { createRandom } from '@tracemark/core';
import type { Tokenizer } from '@tracemark/tokenizers';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
const ALIGNMENT = 32;
const GGML_TYPE_F32 = 0;
/** `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type). */
const TOKEN_TYPE_NORMAL = 1;
const TOKEN_TYPE_CONTROL = 3;
/** Every token embedding's first entry (see `endOfTextWeight`). */
const END_OF_TEXT_ANCHOR = 4;

enum ValueType {
  Uint32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
}

export type GgufValue =
  | { readonly type: 'u32'; readonly value: number }
  | { readonly type: 'f32'; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'strings'; readonly value: readonly string[] }
  | { readonly type: 'i32s'; readonly value: ArrayLike<number> };

export interface GgufTensor {
  readonly name: string;
  /** ggml's order: the first dimension varies fastest (a matrix of `rows` × `columns` is [columns, rows]). */
  readonly dimensions: readonly number[];
  readonly data: Float32Array;
}

/** Growable little-endian byte writer. */
class Writer {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }
  u32(value: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }
  i32(value: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, value, true);
    this.length += 4;
  }
  u64(value: number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(value), true);
    this.length += 8;
  }
  f32(value: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, value, true);
    this.length += 4;
  }
  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }
  string(text: string): void {
    const bytes = new TextEncoder().encode(text);
    this.u64(bytes.length);
    this.bytes(bytes);
  }
  pad(): void {
    const padding = (ALIGNMENT - (this.length % ALIGNMENT)) % ALIGNMENT;
    this.bytes(new Uint8Array(padding));
  }
  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

function writeValue(writer: Writer, value: GgufValue): void {
  switch (value.type) {
    case 'u32':
      writer.u32(ValueType.Uint32);
      writer.u32(value.value);
      return;
    case 'f32':
      writer.u32(ValueType.Float32);
      writer.f32(value.value);
      return;
    case 'bool':
      writer.u32(ValueType.Bool);
      writer.bytes(Uint8Array.of(value.value ? 1 : 0));
      return;
    case 'string':
      writer.u32(ValueType.String);
      writer.string(value.value);
      return;
    case 'strings':
      writer.u32(ValueType.Array);
      writer.u32(ValueType.String);
      writer.u64(value.value.length);
      for (const text of value.value) writer.string(text);
      return;
    case 'i32s':
      writer.u32(ValueType.Array);
      writer.u32(ValueType.Int32);
      writer.u64(value.value.length);
      for (let i = 0; i < value.value.length; i++) writer.i32(value.value[i]!);
      return;
  }
}

/** A GGUF v3 file of F32 tensors. */
export function encodeGguf(
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
): Uint8Array {
  const writer = new Writer();
  writer.u32(GGUF_MAGIC);
  writer.u32(GGUF_VERSION);
  writer.u64(tensors.length);
  writer.u64(metadata.size);
  for (const [key, value] of metadata) {
    writer.string(key);
    writeValue(writer, value);
  }
  let offset = 0;
  for (const tensor of tensors) {
    const elements = tensor.dimensions.reduce((product, n) => product * n, 1);
    if (elements !== tensor.data.length) {
      throw new RangeError(`tensor ${tensor.name}: ${tensor.data.length} values for ${elements} elements`);
    }
    writer.string(tensor.name);
    writer.u32(tensor.dimensions.length);
    for (const n of tensor.dimensions) writer.u64(n);
    writer.u32(GGML_TYPE_F32);
    writer.u64(offset);
    offset += Math.ceil((elements * 4) / ALIGNMENT) * ALIGNMENT;
  }
  writer.pad();
  for (const tensor of tensors) {
    writer.bytes(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    writer.pad();
  }
  return writer.result();
}

/**
 * GPT-2's byte ↔ character table (the form in which byte-level BPE vocabularies, llama.cpp's included,
 * write token bytes): printable bytes stand for themselves, the others map to U+0100 onwards.
 * `order` lists the bytes in the order of tiktoken's first 256 ranks.
 */
function byteCharacters(): { readonly character: readonly string[]; readonly order: readonly number[] } {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const character: string[] = new Array(256);
  for (const b of printable) character[b] = String.fromCharCode(b);
  const order = [...printable];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    if (character[b] !== undefined) continue;
    character[b] = String.fromCharCode(next++);
    order.push(b);
  }
  return { character, order };
}

export interface BpeVocabulary {
  /** Token texts in GPT-2's byte-character form, in model id order. */
  readonly tokens: readonly string[];
  /** Merges `left right` (byte-character form), most preferred first. */
  readonly merges: readonly string[];
  /** The gateway tokenizer's id for each model token (the 256 bytes: their tiktoken rank). */
  readonly gatewayIds: readonly number[];
}

/**
 * The single bytes and then the tokens of ranks 256 … `vocabularyLimit` − 1 whose text is whole UTF-8,
 * each with its merge: the two parts that byte-level BPE over the lower-ranked tokens leaves (tiktoken's
 * ranks imply the merges). A token that BPE over the kept tokens does not reduce to two parts is left out.
 */
export function byteLevelVocabulary(tokenizer: Tokenizer, vocabularyLimit: number): BpeVocabulary {
  const { character, order } = byteCharacters();
  const encode = (bytes: Uint8Array) => Array.from(bytes, (b) => character[b]!).join('');
  const tokens: string[] = [];
  const gatewayIds: number[] = [];
  const merges: string[] = [];
  /** Byte string (one char per byte) → rank, for the tokens kept so far. */
  const ranks = new Map<string, number>();
  const limit = Math.min(vocabularyLimit, tokenizer.ordinaryTokenCount);
  for (let rank = 0; rank < 256; rank++) {
    const byte = order[rank]!;
    tokens.push(character[byte]!);
    gatewayIds.push(rank);
    ranks.set(String.fromCharCode(byte), rank);
  }
  const pieces = tokenizer.decodeTokens(Array.from({ length: limit - 256 }, (_, i) => 256 + i));
  const utf8 = new TextEncoder();
  for (let rank = 256; rank < limit; rank++) {
    const piece = pieces[rank - 256]!;
    if (piece.includes('\uFFFD')) continue;
    const bytes = utf8.encode(piece);
    let parts = Array.from(bytes, (b) => String.fromCharCode(b));
    for (;;) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < parts.length; i++) {
        const merged = ranks.get(parts[i]! + parts[i + 1]!);
        if (merged !== undefined && merged < bestRank) {
          best = i;
          bestRank = merged;
        }
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), parts[best]! + parts[best + 1]!, ...parts.slice(best + 2)];
    }
    if (parts.length !== 2) continue;
    const asBytes = (part: string) => Uint8Array.from(part, (c) => c.charCodeAt(0));
    merges.push(`${encode(asBytes(parts[0]!))} ${encode(asBytes(parts[1]!))}`);
    tokens.push(encode(bytes));
    gatewayIds.push(rank);
    ranks.set(parts[0]! + parts[1]!, rank);
  }
  return { tokens, merges, gatewayIds };
}

export interface TinyLlamaOptions {
  readonly tokenizer: Tokenizer;
  /** Tiktoken ranks below this are candidates for the vocabulary (default 4096). */
  readonly vocabularyLimit?: number;
  readonly layers?: number;
  readonly embeddingLength?: number;
  readonly feedForwardLength?: number;
  readonly heads?: number;
  readonly contextLength?: number;
  readonly seed?: number;
  /** Spread of the output layer's random weights; larger gives peakier next-token distributions. */
  readonly weightScale?: number;
  /**
   * Weight of the end-of-text token on a constant component of the residual stream (every embedding's
   * first entry): the larger, the likelier the model ends its text at every step (0: about as likely as any
   * token), for servers that generate until the end of text.
   */
  readonly endOfTextWeight?: number;
}

export interface TinyLlama {
  readonly file: Uint8Array;
  readonly vocabulary: BpeVocabulary;
  /** The end-of-text token's id in the model (control token, also BOS). */
  readonly endOfText: number;
}

/** A llama model (RMS norm, rotary attention, SwiGLU) with random seeded F32 weights, as GGUF. */
export function tinyLlamaGguf(options: TinyLlamaOptions): TinyLlama {
  const vocabulary = byteLevelVocabulary(options.tokenizer, options.vocabularyLimit ?? 4096);
  const layers = options.layers ?? 1;
  const embedding = options.embeddingLength ?? 64;
  const feedForward = options.feedForwardLength ?? 128;
  const heads = options.heads ?? 4;
  const contextLength = options.contextLength ?? 1024;
  const scale = options.weightScale ?? 0.5;
  if (embedding % heads !== 0) throw new RangeError('embeddingLength must be a multiple of heads');
  const random = createRandom(options.seed ?? 1);
  const uniform = (length: number, spread: number) =>
    Float32Array.from({ length }, () => (random.nextFloat() * 2 - 1) * spread);
  const ones = (length: number) => new Float32Array(length).fill(1);

  const endOfText = vocabulary.tokens.length;
  const tokens = [...vocabulary.tokens, '<|endoftext|>'];
  const tokenTypes = Int32Array.from(tokens, (_, id) =>
    id === endOfText ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_NORMAL,
  );
  const vocabSize = tokens.length;

  const metadata = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: 'tracemark-tiny-llama' }],
    ['general.alignment', { type: 'u32', value: ALIGNMENT }],
    ['general.file_type', { type: 'u32', value: 0 }],
    ['llama.context_length', { type: 'u32', value: contextLength }],
    ['llama.embedding_length', { type: 'u32', value: embedding }],
    ['llama.block_count', { type: 'u32', value: layers }],
    ['llama.feed_forward_length', { type: 'u32', value: feedForward }],
    ['llama.attention.head_count', { type: 'u32', value: heads }],
    ['llama.attention.head_count_kv', { type: 'u32', value: heads }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ['llama.rope.dimension_count', { type: 'u32', value: embedding / heads }],
    ['llama.vocab_size', { type: 'u32', value: vocabSize }],
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    // llama.cpp's name for cl100k's pre-tokenizer pattern (Llama 3 took over tiktoken's).
    ['tokenizer.ggml.pre', { type: 'string', value: 'llama-bpe' }],
    ['tokenizer.ggml.tokens', { type: 'strings', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'i32s', value: tokenTypes }],
    ['tokenizer.ggml.merges', { type: 'strings', value: vocabulary.merges }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: endOfText }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: endOfText }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
  ]);

  const attention = scale / Math.sqrt(embedding);
  const embeddings = uniform(embedding * vocabSize, 1);
  const output = uniform(embedding * vocabSize, scale);
  // A constant first entry survives the (weak) layers and the RMS norm, so the end-of-text logit is about
  // endOfTextWeight × (that entry after the norm) whatever the context.
  for (let id = 0; id < vocabSize; id++) {
    embeddings[id * embedding] = END_OF_TEXT_ANCHOR;
    output[id * embedding] = id === endOfText ? (options.endOfTextWeight ?? 0) : 0;
  }
  const tensors: GgufTensor[] = [
    { name: 'token_embd.weight', dimensions: [embedding, vocabSize], data: embeddings },
  ];
  for (let layer = 0; layer < layers; layer++) {
    const block = `blk.${layer}`;
    tensors.push(
      { name: `${block}.attn_norm.weight`, dimensions: [embedding], data: ones(embedding) },
      {
        name: `${block}.attn_q.weight`,
        dimensions: [embedding, embedding],
        data: uniform(embedding ** 2, attention),
      },
      {
        name: `${block}.attn_k.weight`,
        dimensions: [embedding, embedding],
        data: uniform(embedding ** 2, attention),
      },
      {
        name: `${block}.attn_v.weight`,
        dimensions: [embedding, embedding],
        data: uniform(embedding ** 2, attention),
      },
      {
        name: `${block}.attn_output.weight`,
        dimensions: [embedding, embedding],
        data: uniform(embedding ** 2, attention),
      },
      { name: `${block}.ffn_norm.weight`, dimensions: [embedding], data: ones(embedding) },
      {
        name: `${block}.ffn_gate.weight`,
        dimensions: [embedding, feedForward],
        data: uniform(embedding * feedForward, scale / Math.sqrt(embedding)),
      },
      {
        name: `${block}.ffn_up.weight`,
        dimensions: [embedding, feedForward],
        data: uniform(embedding * feedForward, scale / Math.sqrt(embedding)),
      },
      {
        name: `${block}.ffn_down.weight`,
        dimensions: [feedForward, embedding],
        data: uniform(embedding * feedForward, scale / Math.sqrt(feedForward)),
      },
    );
  }
  tensors.push(
    { name: 'output_norm.weight', dimensions: [embedding], data: ones(embedding) },
    { name: 'output.weight', dimensions: [embedding, vocabSize], data: output },
  );
  return { file: encodeGguf(metadata, tensors), vocabulary, endOfText };
}
