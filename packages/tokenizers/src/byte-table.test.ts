import { describe, expect, it } from 'vitest';
import { buildByteTable, type RankFile } from './byte-table.js';
import { ENCODING_FACTS, TOKENIZER_IDS } from './encodings.js';
import { loadRankFile } from './reference-encoders.test-helper.js';

/** The table as the rank file defines it, each token decoded on its own by Node's base64 decoder. */
function referenceTable(ranks: RankFile, vocabSize: number, specialTokens: Record<string, number>) {
  const pieces: Uint8Array[] = new Array(vocabSize).fill(new Uint8Array(0));
  for (const line of ranks.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const first = Number.parseInt(fields[1]!, 10);
    for (let i = 2; i < fields.length; i++) {
      pieces[first + i - 2] = Buffer.from(fields[i]!, 'base64');
    }
  }
  for (const [text, id] of Object.entries(specialTokens)) pieces[id] = new TextEncoder().encode(text);
  return pieces;
}

describe.each(TOKENIZER_IDS)('%s byte table', (id) => {
  const { ordinaryTokenCount, specialTokens } = ENCODING_FACTS[id];
  const vocabSize = Math.max(ordinaryTokenCount, ...Object.values(specialTokens).map((x) => x + 1));

  it("holds every token exactly as Node's base64 decoder reads it, special tokens included", () => {
    const ranks = loadRankFile(id);
    const { bytes, offsets } = buildByteTable(ranks, vocabSize, specialTokens);
    const reference = referenceTable(ranks, vocabSize, specialTokens);
    expect(offsets.length).toBe(vocabSize + 1);
    const expectedOffsets = new Uint32Array(vocabSize + 1);
    for (let token = 0; token < vocabSize; token++)
      expectedOffsets[token + 1] = expectedOffsets[token]! + reference[token]!.length;
    expect(Buffer.from(offsets.buffer).equals(Buffer.from(expectedOffsets.buffer))).toBe(true);
    expect(Buffer.from(bytes).equals(Buffer.concat(reference))).toBe(true);
  });
});

describe('buildByteTable', () => {
  it('reads several lines, unpadded base64, and skips ids beyond the vocabulary', () => {
    const ranks = { pat_str: '', bpe_ranks: '! 0 YQ== YmM\n! 2 ZGVm/w== eA==\n' };
    const { bytes, offsets } = buildByteTable(ranks, 4, { '<|x|>': 3 });
    const token = (i: number) => [...bytes.subarray(offsets[i]!, offsets[i + 1]!)];
    expect(token(0)).toEqual([0x61]);
    expect(token(1)).toEqual([0x62, 0x63]);
    expect(token(2)).toEqual([0x64, 0x65, 0x66, 0xff]);
    expect(token(3)).toEqual([...new TextEncoder().encode('<|x|>')]);
  });

  it('refuses a character that is no base64 digit', () => {
    expect(() => buildByteTable({ pat_str: '', bpe_ranks: '! 0 Y*==' }, 1, {})).toThrow(SyntaxError);
  });
});
