import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeUtf8Into } from './byte-pair-encoder.js';
import { TOKENIZER_IDS } from './encodings.js';
import {
  encoderVariants,
  loadCorpus,
  REPEATED_UNITS,
  referenceEncode,
  repeatTo,
} from './reference-encoders.test-helper.js';
import { getTokenizer } from './tokenizer.js';

const SAMPLES = [
  '',
  'a',
  'Hello, world!',
  "It's 3:45pm; don't you think?  I'M SURE. They'LL see, we'Ve, she'D, 'Re",
  'before <|endoftext|> after <|endofprompt|> <|fim_prefix|>',
  'caf\u00e9 cafe\u0301 na\u00efve \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4 \u{1f44d}\u{1f3fd} \u{1f468}\u200d\u{1f469}',
  'def f(x):\n\treturn x ** 2  # code\r\n\r\n\n   \n',
  '1234567890 3.14159 -42 \u0661\u0662\u0663 \u2160\u2161',
  'lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, pair \ud83d\ude00',
  '\uFEFFbom \u00a0nbsp \u2028line \u0085next \u200bzero',
  '   leading and trailing   ',
  'UPPER lower MiXeD \u01c5 \u02b0 \u1e9e',
  'antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
  'https://example.com/path?query=1&b=2#frag //comment /* x */',
];

// Units of the random strings: the classes of every pattern's alternatives, and their boundaries.
const ALPHABET = fc.constantFrom(
  'a',
  'Z',
  ' ',
  '  ',
  '\n',
  '\r',
  '\r\n',
  '\t',
  "'s",
  "'LL",
  "'",
  '\u2019',
  '7',
  '1234',
  '.',
  '!',
  '/',
  '\u00e9',
  'e\u0301',
  '\u0301',
  '\u65e5',
  '\ud55c',
  '\u{1f600}',
  '\u{1f44d}\u{1f3fd}',
  '\u00a0',
  '\u2028',
  '\u0085',
  '\u02b0',
  '\u01c5',
  '<|endoftext|>',
  '\ud800',
  '\udc00',
  '\u0000',
  'the',
  ' The',
);

const LONE_SURROGATE = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));

const RANDOM_TEXT = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 60 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), LONE_SURROGATE) }),
  fc.array(ALPHABET, { maxLength: 40 }).map((parts) => parts.join('')),
  // Long runs of one unit with random neighbours: long pieces through the heap.
  fc
    .tuple(ALPHABET, ALPHABET, fc.integer({ min: 1, max: 150 }), ALPHABET)
    .map(([before, unit, count, after]) => before + unit.repeat(count) + after),
);

describe.each(TOKENIZER_IDS)('%s', (id) => {
  const { standard, heapOnly, arraysOnly, javascript } = encoderVariants(id);
  const tokenizer = getTokenizer(id);
  const expectReferenceIds = (text: string): void => {
    const expected = referenceEncode(id, text);
    expect([...standard.encode(text)], JSON.stringify(text)).toEqual(expected);
    expect([...heapOnly.encode(text)], JSON.stringify(text)).toEqual(expected);
    expect([...arraysOnly.encode(text)], JSON.stringify(text)).toEqual(expected);
    expect([...javascript.encode(text)], JSON.stringify(text)).toEqual(expected);
  };

  it.each(SAMPLES)('gives the ids of js-tiktoken for %j', (text) => {
    expectReferenceIds(text);
    expect([...tokenizer.encode(text)]).toEqual(referenceEncode(id, tokenizer.normalize(text)));
  });

  it('gives the ids of js-tiktoken on every 20th document of the Brown corpus and nlp-corpus', async () => {
    const documents = await loadCorpus('sample');
    expect(documents).toHaveLength(275);
    for (const document of documents) {
      const expected = referenceEncode(id, tokenizer.normalize(document.text));
      expect([...tokenizer.encode(document.text)], document.id).toEqual(expected);
      expect([...heapOnly.encode(tokenizer.normalize(document.text))], document.id).toEqual(expected);
    }
  });

  it('gives the ids of js-tiktoken on random strings (property)', () => {
    fc.assert(
      fc.property(RANDOM_TEXT, (text) => {
        expectReferenceIds(text);
        expect([...tokenizer.encode(text)]).toEqual(referenceEncode(id, tokenizer.normalize(text)));
      }),
      { numRuns: 250 },
    );
  });

  it.each(REPEATED_UNITS)('gives the ids of js-tiktoken on runs of %j', (unit) => {
    // Lengths around the array/heap boundary, and as long as js-tiktoken's quadratic merge allows here.
    for (const length of [1, 2, 3, 5, 16, 22, 23, 63, 64, 65, 129, 200]) {
      expectReferenceIds(repeatTo(unit, length));
      expectReferenceIds(`x${repeatTo(unit, length)} y`);
    }
  });

  it.each(REPEATED_UNITS)('merges long runs of %j alike on the heap and on arrays', (unit) => {
    for (const length of [700, 2100]) {
      const text = repeatTo(unit, length);
      expect(heapOnly.encode(text)).toEqual(arraysOnly.encode(text));
      expect(standard.encode(text)).toEqual(arraysOnly.encode(text));
    }
  });

  it('keeps merges of recent pieces exactly: 20,000 rare words, each seen again after thousands of others', () => {
    // More pieces than the merge cache holds, so that entries are evicted and collide; each word is
    // encoded twice in one text (the second time from the cache, when it is still held) and in pieces.
    let seed = 12345;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const words = Array.from({ length: 20_000 }, () => {
      const letters = Array.from({ length: 5 + Math.floor(random() * 14) }, () =>
        String.fromCharCode(97 + Math.floor(random() * 26)),
      );
      return `${random() < 0.5 ? ' ' : ''}${letters.join('')}${random() < 0.2 ? String(Math.floor(random() * 1000)) : ''}`;
    });
    const text = `${words.join(' ')} ${words.join(' ')}`;
    expect([...standard.encode(text)]).toEqual(referenceEncode(id, text));
    for (const word of words.slice(0, 500))
      expect([...standard.encode(word)]).toEqual(referenceEncode(id, word));
  });

  it('decodes what it encodes, for 64 KiB of random code points', () => {
    const text = fc.sample(fc.string({ unit: 'binary', minLength: 65_536, maxLength: 65_536 }), {
      numRuns: 1,
      seed: 42,
    })[0]!;
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(tokenizer.normalize(text));
  });
});

describe('encodeUtf8Into', () => {
  it('writes the bytes of TextEncoder, lone surrogates as U+FFFD (property)', () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), LONE_SURROGATE),
          maxLength: 64,
        }),
        (text) => {
          const bytes = new Uint8Array(3 * text.length);
          const length = encodeUtf8Into(text, bytes);
          expect(bytes.subarray(0, length)).toEqual(encoder.encode(text));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
