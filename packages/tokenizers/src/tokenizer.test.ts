import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertTokenIds,
  DEFAULT_TOKENIZER_ID,
  ENCODING_FACTS,
  getTokenizer,
  isTokenizerId,
  TOKENIZER_IDS,
  type TokenizerId,
} from './index.js';
import { referenceEncode } from './reference-encoders.test-helper.js';

const require = createRequire(import.meta.url);

const SAMPLES = [
  '',
  'Hello, world!',
  'The quick brown fox jumps over the lazy dog.\n\nA second paragraph,   with  spaces.',
  "It's 3:45pm; don't you think?  I'M SURE.",
  'Unicode: caf\u00e9, na\u00efve, \u65e5\u672c\u8a9e, \ud55c\uad6d\uc5b4, \u{1f44d}\u{1f3fd} \u{1f468}\u200d\u{1f469}',
  'def f(x):\n\treturn x ** 2  # code\r\n',
  '1234567890 3.14159 -42',
];

describe.each(TOKENIZER_IDS)('%s', (id) => {
  const tokenizer = getTokenizer(id);

  it('matches the rank file: ordinary ids are contiguous, specials as listed', () => {
    const loaded = require(`js-tiktoken/ranks/${id}`);
    const ranks = (loaded.default ?? loaded) as { bpe_ranks: string; special_tokens: Record<string, number> };
    const ids = new Set<number>();
    let largest = -1;
    for (const line of ranks.bpe_ranks.split('\n')) {
      if (line === '') continue;
      const [, offset, ...pieces] = line.split(' ');
      pieces.forEach((_, i) => {
        ids.add(Number(offset) + i);
        largest = Math.max(largest, Number(offset) + i);
      });
    }
    expect(ids.size).toBe(tokenizer.ordinaryTokenCount);
    expect(largest).toBe(tokenizer.ordinaryTokenCount - 1);
    expect(ranks.special_tokens).toEqual(ENCODING_FACTS[id].specialTokens);
    expect(tokenizer.vocabSize).toBe(Math.max(...Object.values(ranks.special_tokens)) + 1);
    expect([...tokenizer.specialTokenIds].sort()).toEqual(Object.values(ranks.special_tokens).sort());
  });

  it.each(SAMPLES)('round-trips %j', (text) => {
    const ids = tokenizer.encode(text);
    expect(ids).toBeInstanceOf(Uint32Array);
    expect(tokenizer.decode(ids)).toBe(tokenizer.normalize(text));
    const pieces = tokenizer.decodeTokens(ids);
    expect(pieces).toHaveLength(ids.length);
    if (!pieces.some((piece) => piece.includes('\ufffd')))
      expect(pieces.join('')).toBe(tokenizer.normalize(text));
    expect(tokenizer.encodeFast(text)).toEqual(ids);
  });

  it('gives identical ids across calls and for equivalent inputs', () => {
    const text = SAMPLES[4]!;
    expect(tokenizer.encode(text)).toEqual(tokenizer.encode(text));
    expect(tokenizer.encode('cafe\u0301 water\u200bmark')).toEqual(tokenizer.encode('caf\u00e9 watermark'));
  });

  it('encodes special-token text as ordinary text', () => {
    const text = 'before <|endoftext|> after <|endofprompt|>';
    const ids = tokenizer.encode(text);
    for (const token of ids) {
      expect(tokenizer.specialTokenIds.has(token)).toBe(false);
      expect(tokenizer.isOrdinaryToken(token)).toBe(true);
    }
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it('decodes special tokens to their text and rejects out-of-range or unused ids', () => {
    const special = [...tokenizer.specialTokenIds][0]!;
    expect(tokenizer.decode([special])).toBe('<|endoftext|>');
    expect(() => tokenizer.decode([tokenizer.vocabSize])).toThrow(RangeError);
    expect(() => tokenizer.decode([-1])).toThrow(/ids\[0\]/);
    expect(() => tokenizer.decode([1.5])).toThrow(RangeError);
    for (let token = tokenizer.ordinaryTokenCount; token < tokenizer.vocabSize; token++) {
      if (!tokenizer.specialTokenIds.has(token)) expect(() => tokenizer.decode([token])).toThrow(/unused/);
    }
  });

  it('shows U+FFFD for a token holding part of a UTF-8 character', () => {
    const ids = tokenizer.encode('\u{1f9ec}');
    if (ids.length > 1) expect(tokenizer.decodeTokens(ids).join('')).toContain('\ufffd');
    expect(tokenizer.decode(ids)).toBe('\u{1f9ec}');
  });

  it("gives each token's own bytes, which join back into split characters", () => {
    const text = 'DNA \u{1f9ec}, caf\u00e9 \u4e2d\u6587';
    const ids = tokenizer.encode(text);
    const joined = Buffer.concat(Array.from(ids, (token) => tokenizer.tokenBytes(token)));
    expect(joined.toString('utf8')).toBe(text);
    expect(Buffer.from(tokenizer.tokenBytes(ids[0]!)).toString('utf8')).toBe(
      tokenizer.decodeTokens([ids[0]!])[0],
    );
    // a copy: the tokenizer's table is not the caller's to change
    tokenizer.tokenBytes(ids[0]!).fill(0);
    expect(tokenizer.decode(ids)).toBe(text);
    expect(() => tokenizer.tokenBytes(tokenizer.vocabSize)).toThrow(RangeError);
  });

  it('gives the ids of js-tiktoken, from encode and encodeFast, on random strings (property)', () => {
    const alphabet = fc.constantFrom(
      'a',
      'Z',
      ' ',
      '  ',
      '\n',
      '\r\n',
      '\t',
      "'s",
      "'",
      '\u2019',
      '7',
      '42',
      '1234',
      '.',
      '!',
      '\u00e9',
      'e\u0301',
      '\u65e5',
      '\ud55c',
      '\u{1f600}',
      '\u{1f44d}\u{1f3fd}',
      '\u00a0',
      '\u0300',
      'the',
      ' The',
      "I'LL",
      '<|endoftext|>',
      '<|fim_prefix|>',
      '\ud800',
      '/',
      '\u2028',
      '\u0085',
    );
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 24 }),
        fc.string({ unit: 'grapheme', maxLength: 12 }),
        (parts, s) => {
          const text = parts.join('') + s;
          const ids = tokenizer.encode(text);
          expect([...ids]).toEqual(referenceEncode(id, tokenizer.normalize(text)));
          expect(tokenizer.encodeFast(text)).toEqual(ids);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('vocabulary sizes', () => {
  it.each([
    ['cl100k_base', 100_277, 100_256],
    ['o200k_base', 200_019, 199_998],
    ['gpt2', 50_257, 50_256],
  ] as const)('%s has %i ids, %i of them ordinary', (id, vocabSize, ordinary) => {
    expect(getTokenizer(id).vocabSize).toBe(vocabSize);
    expect(getTokenizer(id).ordinaryTokenCount).toBe(ordinary);
  });
});

describe('tokenizer ids', () => {
  it('defaults to cl100k_base and recognizes only the listed ids', () => {
    expect(DEFAULT_TOKENIZER_ID).toBe('cl100k_base');
    expect(TOKENIZER_IDS).toEqual(['cl100k_base', 'o200k_base', 'gpt2']);
    expect(Object.isFrozen(TOKENIZER_IDS)).toBe(true);
    for (const id of TOKENIZER_IDS) expect(isTokenizerId(id)).toBe(true);
    for (const x of ['p50k_base', 'CL100K_BASE', '', 1, null, undefined])
      expect(isTokenizerId(x)).toBe(false);
  });

  it('caches one frozen tokenizer per id', () => {
    expect(getTokenizer('gpt2')).toBe(getTokenizer('gpt2'));
    expect(Object.isFrozen(getTokenizer('gpt2'))).toBe(true);
  });

  it('rejects an unknown id with an error listing the valid ids', () => {
    expect(() => getTokenizer('p50k_base' as TokenizerId)).toThrow(RangeError);
    expect(() => getTokenizer('p50k_base' as TokenizerId)).toThrow(/cl100k_base, o200k_base, gpt2/);
    expect(() => getTokenizer(undefined as unknown as TokenizerId)).toThrow(TypeError);
  });

  it('gives known ids for a known text', () => {
    // Reference ids from OpenAI's tiktoken.
    expect([...getTokenizer('cl100k_base').encode('hello world')]).toEqual([15339, 1917]);
    expect([...getTokenizer('gpt2').encode('hello world')]).toEqual([31373, 995]);
    expect([...getTokenizer('o200k_base').encode('hello world')]).toEqual([24912, 2375]);
  });
});

describe('assertTokenIds', () => {
  const tokenizer = getTokenizer('gpt2');
  it('accepts valid ids in arrays and typed arrays', () => {
    expect(() => assertTokenIds([0, 50_256], tokenizer)).not.toThrow();
    expect(() => assertTokenIds(new Uint32Array([1, 2, 3]), tokenizer)).not.toThrow();
    expect(() => assertTokenIds([], tokenizer)).not.toThrow();
  });
  it.each([[[50_257]], [[-1]], [[0.5]], [[Number.NaN]], [[Number.POSITIVE_INFINITY]]])(
    'throws a RangeError naming the parameter for %j',
    (ids) => {
      expect(() => assertTokenIds(ids, tokenizer, 'context')).toThrow(RangeError);
      expect(() => assertTokenIds(ids, tokenizer, 'context')).toThrow(/^context\[0\]/);
    },
  );
  it('throws a TypeError for a non-array', () => {
    expect(() => assertTokenIds(null as unknown as number[], tokenizer)).toThrow(TypeError);
  });
});
