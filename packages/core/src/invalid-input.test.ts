import { describe, expect, it } from 'vitest';
import {
  createRandom,
  createScheme,
  createWatermarker,
  createWatermarkKey,
  detect,
  keyIdOf,
  log10BinomialSf,
  parseKeyFile,
  Scorer,
  sampleToken,
  serializeKeyFile,
  watermarkLogits,
} from './index.ts';

const key = createWatermarkKey({ secret: new Uint8Array(32).fill(1) });
const watermarker = createWatermarker(key);

describe('invalid input names the parameter', () => {
  const cases: [string, () => unknown, ErrorConstructor, RegExp][] = [
    ['gamma 0', () => createScheme({ gamma: 0 }), RangeError, /scheme\.gamma/],
    ['gamma 1', () => createScheme({ gamma: 1 }), RangeError, /scheme\.gamma/],
    ['gamma NaN', () => createScheme({ gamma: Number.NaN }), RangeError, /scheme\.gamma/],
    [
      'gamma as string',
      () => createScheme({ gamma: '0.25' as unknown as number }),
      RangeError,
      /scheme\.gamma/,
    ],
    ['gamma below 2^-32', () => createScheme({ gamma: 1e-12 }), RangeError, /scheme\.gamma/],
    ['delta negative', () => createScheme({ delta: -1 }), RangeError, /scheme\.delta/],
    ['context width 0', () => createScheme({ contextWidth: 0 }), RangeError, /scheme\.contextWidth/],
    ['context width 1.5', () => createScheme({ contextWidth: 1.5 }), RangeError, /scheme\.contextWidth/],
    ['unknown scheme', () => createScheme({ name: 'minhash' as 'lefthash' }), RangeError, /scheme\.name/],
    ['short secret', () => createWatermarkKey({ secret: new Uint8Array(16) }), RangeError, /secret/],
    ['secret not bytes', () => keyIdOf('00' as unknown as Uint8Array), TypeError, /secret/],
    ['token id negative', () => detect([1, -2, 3], watermarker), RangeError, /tokens\[1\]/],
    ['token id fractional', () => detect([1, 2.5], watermarker), RangeError, /tokens\[1\]/],
    ['token id too large', () => detect([2 ** 32], watermarker), RangeError, /tokens\[0\]/],
    ['token ids not an array', () => detect(42 as unknown as number[], watermarker), TypeError, /tokens/],
    [
      'prompt id invalid',
      () => detect([1], watermarker, { prompt: [Number.NaN] }),
      RangeError,
      /prompt\[0\]/,
    ],
    ['fpr 0', () => detect([1, 2], watermarker, { fpr: 0 }), RangeError, /fpr/],
    ['fpr 2', () => detect([1, 2], watermarker, { fpr: 2 }), RangeError, /fpr/],
    ['no keys', () => detect([1, 2], []), RangeError, /watermarkers/],
    [
      'alternative below γ',
      () => detect([1], watermarker, { alternativeGreenFraction: 0.1 }),
      RangeError,
      /alternativeGreenFraction/,
    ],
    [
      'special id invalid',
      () => createWatermarker(key, { specialTokenIds: [-1] }),
      RangeError,
      /specialTokenIds/,
    ],
    ['binomial n negative', () => log10BinomialSf(1, -3, 0.5), RangeError, /\bn\b/],
    ['binomial p 0', () => log10BinomialSf(1, 3, 0), RangeError, /\bp\b/],
    [
      'logits wrong type',
      () => watermarkLogits(watermarker, [1], [1, 2] as unknown as Float32Array),
      TypeError,
      /logits/,
    ],
    [
      'temperature negative',
      () => sampleToken(new Float32Array(4), [1], createRandom(1), { temperature: -1 }),
      RangeError,
      /temperature/,
    ],
    ['topP 0', () => sampleToken(new Float32Array(4), [1], createRandom(1), { topP: 0 }), RangeError, /topP/],
    [
      'all logits -Infinity',
      () => sampleToken(new Float32Array(3).fill(-Infinity), [1], createRandom(1)),
      RangeError,
      /logits/,
    ],
    ['seed negative', () => createRandom(-1), RangeError, /seed/],
  ];
  it.each(cases)('%s', (_name, run, type, message) => {
    expect(run).toThrow(type);
    expect(run).toThrow(message);
  });

  it('empty text is insufficient, not an error', () => {
    const result = detect([], watermarker);
    expect(result.verdict).toBe('insufficient');
    expect(result.results[0]!.numScored).toBe(0);
    expect(result.results[0]!.log10P).toBe(0);
    expect(result.results[0]!.tokensToSettle).toBeGreaterThan(0);
  });

  it('a prompt after the completion started is refused', () => {
    const scorer = new Scorer(watermarker);
    scorer.push([1, 2]);
    expect(() => scorer.addPrompt([3])).toThrow(/prompt/);
  });
});

describe('key files', () => {
  it('round-trips and never needs the secret in errors', () => {
    const text = serializeKeyFile(key);
    expect(parseKeyFile(text).keyId).toBe(key.keyId);
    const secretHex = Buffer.from(key.secret).toString('hex');
    const broken = [
      'not json',
      '[]',
      text.replace('"tracemark-key"', '"other"'),
      text.replace(secretHex, secretHex.slice(0, 60)),
      text.replace(`"${key.keyId}"`, '"tmk1_000000000000000000000000"'),
      text.replace('"gamma": 0.25', '"gamma": 7'),
    ];
    for (const input of broken) {
      let message = '';
      try {
        parseKeyFile(input);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/^key file: /);
      expect(message).not.toContain(secretHex);
      expect(message).not.toContain(secretHex.slice(0, 60));
    }
    // a field taken out is named as missing, not as one that does not match
    const withoutId = JSON.parse(text);
    delete withoutId.keyId;
    expect(() => parseKeyFile(JSON.stringify(withoutId))).toThrow(/^key file: "keyId" is missing$/);
  });
});
