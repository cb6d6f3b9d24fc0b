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

/** The byte table of a rank file's ordinary tokens followed by the given special tokens. */
export function buildByteTable(
  ranks: RankFile,
  vocabSize: number,
  specialTokens: Readonly<Record<string, number>>,
): ByteTable {
  const pieces: Uint8Array[] = new Array(vocabSize);
  let total = 0;
  for (const line of ranks.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const offset = Number.parseInt(fields[1]!, 10);
    for (let i = 2; i < fields.length; i++) {
      const binary = atob(fields[i]!);
      const piece = new Uint8Array(binary.length);
      for (let j = 0; j < binary.length; j++) piece[j] = binary.charCodeAt(j);
      pieces[offset + i - 2] = piece;
      total += piece.length;
    }
  }
  const encoder = new TextEncoder();
  for (const [text, id] of Object.entries(specialTokens)) {
    const piece = encoder.encode(text);
    pieces[id] = piece;
    total += piece.length;
  }
  const bytes = new Uint8Array(total);
  const offsets = new Uint32Array(vocabSize + 1);
  let position = 0;
  for (let id = 0; id < vocabSize; id++) {
    offsets[id] = position;
    const piece = pieces[id];
    if (piece !== undefined) {
      bytes.set(piece, position);
      position += piece.length;
    }
  }
  offsets[vocabSize] = position;
  return { bytes, offsets };
}
