import { getTokenizer, normalizeText } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import { calibrationFor } from './calibration.ts';
import { tokenEnds } from './verify.ts';

const tokenizer = getTokenizer('cl100k_base');

describe('tokenEnds (per-token localization in code points)', () => {
  it('cuts the normalized text exactly at token boundaries, characters split across tokens included', () => {
    for (const text of [
      'The harbour said on Monday that the pier would close.',
      'Emoji 🧑‍🔬 and 你好世界, café vs cafe\u0301, \u200bzero width, and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢.',
      '',
      ' \n\n  leading and trailing  \n',
    ]) {
      const normalized = normalizeText(text);
      const ids = tokenizer.encodeFast(text);
      const ends = tokenEnds(tokenizer, ids, normalized);
      expect(ends).toHaveLength(ids.length);
      const points = Array.from(normalized);
      expect(ends.at(-1) ?? 0).toBe(points.length);
      let start = 0;
      const pieces = ends.map((end) => {
        const piece = points.slice(start, end).join('');
        start = end;
        return piece;
      });
      expect(pieces.join('')).toBe(normalized);
      for (let i = 1; i < ends.length; i++) expect(ends[i]).toBeGreaterThanOrEqual(ends[i - 1]!);
    }
  });

  it('a character split across tokens ends with its last token; the tokens inside it are empty', () => {
    const text = '🧑‍🔬';
    const ids = tokenizer.encodeFast(text);
    expect(ids.length).toBeGreaterThan(Array.from(text).length);
    const ends = tokenEnds(tokenizer, ids, text);
    expect(new Set(ends).size).toBeLessThan(ends.length);
    expect(ends.at(-1)).toBe(Array.from(text).length);
  });

  it('gives up gracefully (every later token ends at the end) when the text is not the decoding', () => {
    const ids = tokenizer.encodeFast('one two three');
    expect(tokenEnds(tokenizer, ids, 'one TWO three')).toEqual([3, 13, 13]);
  });
});

describe('calibrationFor', () => {
  it('cites the measured row closest in length, for the measured scheme and α, else the reference alone', () => {
    const lefthash = { name: 'lefthash', contextWidth: 1, gamma: 0.25 };
    expect(calibrationFor(lefthash, 1e-4, 180)).toMatchObject({
      numTexts: 16_049,
      observedFalsePositiveRate: 8 / 128_392,
      reference: expect.stringContaining('200 tokens'),
    });
    expect(calibrationFor(lefthash, 1e-4, 40).reference).toContain('50 tokens');
    expect(calibrationFor(lefthash, 1e-4, 5000).reference).toContain('1000 tokens');
    const other = calibrationFor(lefthash, 1e-3, 200);
    expect(other.observedFalsePositiveRate).toBeUndefined();
    expect(other.reference).toMatch(/research\/results\/fpr\.md.*not measured/);
    expect(
      calibrationFor({ name: 'selfhash', contextWidth: 8, gamma: 0.25 }, 1e-4, 200).numTexts,
    ).toBeUndefined();
  });
});
