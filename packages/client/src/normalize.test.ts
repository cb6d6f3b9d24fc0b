import { normalizeText as reference } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import { normalizeText } from './normalize.ts';

describe('normalizeText', () => {
  it('is the tokenizers package’s normalization (spec §6)', () => {
    const samples = [
      'plain ASCII text',
      'zero\u200Bwidth\u200C and\u200D joiners\u2060 and a BOM\uFEFF',
      'variation selectors \u2764\uFE0F and \u{1F600}\u{E0100}',
      'cafe\u0301 and caf\u00E9 (NFD and NFC)',
      'e\u200B\u0301: a removed character between a letter and its accent',
      '',
      '\u{1F1EB}\u{1F1F7} 日本語のテキスト',
    ];
    for (const sample of samples)
      expect(normalizeText(sample), JSON.stringify(sample)).toBe(reference(sample));
  });
});
