import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { normalizeText as fromSubpath } from '@tracemark/tokenizers/normalize';
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

  it('leaves text below U+0300 as it is, which its shortcut assumes: every character and pair is NFC', () => {
    const changed: string[] = [];
    for (let a = 0; a < 0x300; a++) {
      const first = String.fromCharCode(a);
      if (first.normalize('NFC') !== first) changed.push(first);
      for (let b = 0; b < 0x300; b++) {
        const pair = first + String.fromCharCode(b);
        if (pair.normalize('NFC') !== pair) changed.push(pair);
      }
    }
    expect(changed).toEqual([]);
    expect(normalizeText('na\u00efve \u00bd \u02bc')).toBe('na\u00efve \u00bd \u02bc');
    expect(normalizeText('na\u00efve e\u0301')).toBe('na\u00efve \u00e9');
  });

  it('rejects non-strings with a TypeError naming the parameter', () => {
    expect(() => normalizeText(42 as unknown as string)).toThrow(/text must be a string/);
  });

  it('is what the browser-safe subpath export gives, a module that imports nothing', () => {
    expect(fromSubpath).toBe(normalizeText);
    const path = fileURLToPath(import.meta.resolve('@tracemark/tokenizers/normalize'));
    expect(path).toMatch(/[/\\](src[/\\]normalize\.ts|dist[/\\]normalize\.js)$/);
    expect(readFileSync(path, 'utf8')).not.toMatch(/^\s*(import|export)\b[^;]*\bfrom\b/m);
  });
});
