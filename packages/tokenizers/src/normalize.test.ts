import { describe, expect, it } from 'vitest';
import { normalizeText } from './normalize.js';

describe('normalizeText', () => {
  it.each([
    ['plain ASCII is unchanged', 'Hello, world!\n', 'Hello, world!\n'],
    ['composes to NFC', 'cafe\u0301', 'caf\u00e9'],
    ['keeps precomposed text', 'caf\u00e9', 'caf\u00e9'],
    ['composes Hangul jamo', '\u1100\u1161', '\uac00'],
    ['removes zero-width space', 'water\u200bmark', 'watermark'],
    ['removes zero-width non-joiner and joiner', 'a\u200cb\u200dc', 'abc'],
    ['removes word joiner and BOM', '\ufeffa\u2060b', 'ab'],
    ['removes variation selectors 1-16', '\u2764\ufe0f \u263a\ufe0e', '\u2764 \u263a'],
    ['removes variation selectors 17-256', '\u845b\u{e0100}\u{e01ef}', '\u845b'],
    ['keeps emoji and other astral characters', '\u{1f600}\u{1d400}', '\u{1f600}\u{1d400}'],
    ['keeps no-break space and other spaces', 'a\u00a0b\u3000c', 'a\u00a0b\u3000c'],
    ['keeps U+180E and U+200E', 'a\u180eb\u200ec', 'a\u180eb\u200ec'],
    ['does not apply compatibility mappings', '\ufb01 \u2460 \uff21', '\ufb01 \u2460 \uff21'],
    ['empty string', '', ''],
  ])('%s', (_name, input, expected) => {
    expect(normalizeText(input)).toBe(expected);
  });

  it('removes before composing, so it is idempotent and invisible characters cannot split a character', () => {
    expect(normalizeText('e\u200b\u0301')).toBe('\u00e9');
    for (const input of ['e\u200b\u0301', 'cafe\u0301\ufe0f', 'A\u200d\u030a\u200b', 'plain']) {
      expect(normalizeText(normalizeText(input))).toBe(normalizeText(input));
    }
  });

  it('rejects non-strings with a TypeError naming the parameter', () => {
    expect(() => normalizeText(42 as unknown as string)).toThrow(/text must be a string/);
  });
});
