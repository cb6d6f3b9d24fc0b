import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from './errors.ts';
import { ForeignKeyError, ForeignKeyFileError } from './foreign.ts';
import {
  createSglangWatermarkKey,
  parseSglangKeyFile,
  parseSglangSecret,
  SGLANG_KEY_FILE_FORMAT,
  serializeSglangKeyFile,
  sglangKeyType,
} from './sglang-keys.ts';

/** Vectors from SGLang's own code (packages/core/reference/foreign/sglang_vectors.py). */
const vectors = JSON.parse(
  readFileSync(new URL('../../core/test/vectors/foreign/sglang.json', import.meta.url), 'utf8'),
);

// biome-ignore lint/suspicious/noExplicitAny: JSON vectors
type Json = any;

const SECRET = '0123456789abcdef';
const SECRET_B = 'fedcba9876543210';

function relative(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-300);
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

describe('sglangKeyType: keygen', () => {
  it('reads a hex key and the flags SGLang names', () => {
    const key = sglangKeyType.fromKeygen(
      'sglang:gumbel',
      { 'context-window': '2', tokenizer: 'Qwen/Qwen3-8B', 'vocab-size': '151936' },
      `0x${SECRET.toUpperCase()}`,
    );
    expect(key.kind).toBe('sglang');
    expect(key.scheme).toBe('gumbel');
    expect(key.engineKey).toBe(0x0123456789abcdefn);
    expect(key.contextWindow).toBe(2);
    expect(key.maxContexts).toBe(4096);
    expect(key.vocabSize).toBe(151936);
    expect(key.keyId).toMatch(/^sglang1_[0-9a-f]{24}$/);
    expect(sglangKeyType.schemeNames).toEqual(['sglang:gumbel', 'sglang:dual_key_gumbel']);
  });
  it("reads SGLang's --watermark-config JSON, key_b included", () => {
    const config = JSON.stringify({
      key: SECRET,
      key_b: SECRET_B,
      context_window: 3,
      mixing_probability: 0.25,
      enforce_all: true,
    });
    const key = sglangKeyType.fromKeygen('sglang:dual_key_gumbel', {}, config);
    expect(key.keyB).toBe(0xfedcba9876543210n);
    expect(key.contextWindow).toBe(3);
    expect(key.mixingProbability).toBe(0.25);
    // the same key from flags has the same id
    const again = createSglangWatermarkKey({
      scheme: 'dual_key_gumbel',
      engineKey: 0x0123456789abcdefn,
      keyB: 0xfedcba9876543210n,
      contextWindow: 3,
      mixingProbability: 0.25,
    });
    expect(again.keyId).toBe(key.keyId);
    expect(parseSglangSecret(config).key).toBe(0x0123456789abcdefn);
  });
  it('refuses what SGLang refuses, naming the flag and never the key', () => {
    const cases: [string, Record<string, string>, string | null, string][] = [
      ['sglang:gumbel', {}, null, 'secret'],
      ['sglang:gumbel', {}, `${SECRET}0`, 'secret'],
      ['sglang:gumbel', {}, 'xyz-not-hex', 'secret'],
      ['sglang:dual_key_gumbel', {}, SECRET, 'secret'],
      ['sglang:gumbel', {}, JSON.stringify({ key: SECRET, key_b: SECRET_B }), 'secret'],
      ['sglang:gumbel', {}, JSON.stringify({ key: SECRET, [SECRET_B]: 1 }), 'secret'],
      ['sglang:gumbel', { 'context-window': '65' }, SECRET, 'context-window'],
      ['sglang:gumbel', { 'context-window': '0' }, SECRET, 'context-window'],
      ['sglang:gumbel', { 'mixing-probability': '0.3' }, SECRET, 'mixing-probability'],
      [
        'sglang:dual_key_gumbel',
        { 'mixing-probability': '1' },
        JSON.stringify({ key: SECRET, key_b: SECRET_B }),
        'mixing-probability',
      ],
      ['sglang:gumbel', { 'max-contexts': '4097' }, SECRET, 'max-contexts'],
      ['sglang:gumbel', { 'context-width': '4' }, SECRET, 'context-width'],
      [
        'sglang:gumbel',
        { 'context-window': '2' },
        JSON.stringify({ key: SECRET, context_window: 4 }),
        'context-window',
      ],
      ['sglang:other', {}, SECRET, 'scheme'],
    ];
    for (const [scheme, flags, secret, parameter] of cases) {
      const error = thrown(() => sglangKeyType.fromKeygen(scheme, flags, secret));
      expect(error).toBeInstanceOf(ForeignKeyError);
      expect((error as ForeignKeyError).parameter).toBe(parameter);
      expect(error.message).not.toContain(SECRET);
      expect(error.message).not.toContain(SECRET_B);
    }
  });
});

describe('sglangKeyType: key files', () => {
  const key = createSglangWatermarkKey({
    scheme: 'dual_key_gumbel',
    engineKey: 0x0123456789abcdefn,
    keyB: 0xfedcba9876543210n,
  });
  it('round-trips, and the file holds what SGLang needs', () => {
    const text = sglangKeyType.serialize(key, new Date('2026-01-01T00:00:00Z'));
    const record = JSON.parse(text);
    expect(record.format).toBe(SGLANG_KEY_FILE_FORMAT);
    expect(record.key).toBe(SECRET);
    expect(record.keyB).toBe(SECRET_B);
    expect(record.mixingProbability).toBe(0.5);
    const parsed = sglangKeyType.parse(record);
    expect(parsed).toEqual(key);
    expect(sglangKeyType.parameters(key)).toEqual({
      contextWindow: 4,
      mixingProbability: 0.5,
      maxContexts: 4096,
      tokenizer: key.tokenizer,
    });
  });
  it('refuses edited, incomplete or unknown fields, without the keys', () => {
    const record = JSON.parse(serializeSglangKeyFile(key));
    const variants: Record<string, unknown>[] = [
      { ...record, contextWindow: 3 },
      { ...record, keyB: undefined },
      { ...record, context_window: 4 },
      { ...record, key: SECRET.toUpperCase() },
      { ...record, key: `${SECRET}00` },
      { ...record, scheme: 'gumbel' },
      { ...record, format: 'tracemark-vllm-key' },
      { ...record, maxContexts: 5000 },
    ];
    for (const variant of variants) {
      const error = thrown(() => parseSglangKeyFile(JSON.parse(JSON.stringify(variant))));
      expect(error).toBeInstanceOf(ForeignKeyFileError);
      expect(error.message).not.toContain(SECRET);
      expect(error.message).not.toContain(SECRET_B);
    }
  });
});

describe('sglangKeyType: scoring SGLang generations', () => {
  for (const c of (vectors.cases as Json[]).filter((row: Json) => row.window <= 64)) {
    it(c.name, () => {
      const key = createSglangWatermarkKey({
        scheme: c.keyB === undefined ? 'gumbel' : 'dual_key_gumbel',
        engineKey: BigInt(c.key),
        ...(c.keyB === undefined
          ? {}
          : { keyB: BigInt(c.keyB), mixingProbability: c.mixingProbability ?? 0.5 }),
        contextWindow: c.window,
        maxContexts: c.maxContexts ?? 4096,
      });
      const scorer = sglangKeyType.createScorer(key, 1e-3);
      expect(scorer.schemeName).toBe(`sglang:${key.scheme}`);
      expect(scorer.verdictOptions.alternative).toBeNull();
      // A scorer sees token ids only: SGLang's detector without prompt ids.
      const expected = c.detections.withoutPrompt.combined;
      const got = scorer.score(c.completion, 'context');
      expect(got.numTokens).toBe(c.completion.length);
      expect(got.numScored).toBe(expected.numContexts);
      expect(relative(got.score, expected.score)).toBeLessThan(1e-12);
      expect(relative(got.z, expected.zScore)).toBeLessThan(1e-9);
      expect(relative(got.log10P, expected.exactLog10)).toBeLessThan(1e-9);
      expect(relative(got.peerLog10P!, expected.logPValue / Math.LN10)).toBeLessThan(1e-9);
      expect(Number.isFinite(got.log10P)).toBe(true);
      expect(got.numGreen).toBeNull();
    });
  }
  it('ids outside the vocabulary are an input error that does not hold the key', () => {
    const key = createSglangWatermarkKey({
      scheme: 'gumbel',
      engineKey: 0x0123456789abcdefn,
      tokenizer: 'Qwen/Qwen3-8B',
      vocabSize: 1000,
    });
    const scorer = sglangKeyType.createScorer(key, 1e-3);
    const error = thrown(() => scorer.score([1, 2, 3, 4, 1000], 'context'));
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
    expect(error.message).not.toContain(SECRET);
    expect(error.message).not.toContain(BigInt(`0x${SECRET}`).toString(10));
  });
});

/** A corpus as `tracemark scan` pools it: each unit once, where it first occurs; a unit's value never changes. */
function pooled(
  scorer: ReturnType<typeof sglangKeyType.createScorer>,
  documents: readonly (readonly number[])[],
): { count: number; total: number; repeats: number; log10P: number } {
  const values = new Map<string, number>();
  let repeats = 0;
  for (const ids of documents) {
    const units = scorer.units!(ids);
    expect(new Set(units.keys).size).toBe(units.keys.length);
    units.keys.forEach((unit, i) => {
      const earlier = values.get(unit);
      if (earlier === undefined) values.set(unit, units.values[i]!);
      else {
        repeats++;
        expect(units.values[i], `unit ${unit}`).toBe(earlier);
      }
    });
  }
  let total = 0;
  for (const value of values.values()) total += value;
  return { count: values.size, total, repeats, log10P: scorer.tail!(total, values.size) };
}

function keyOfCase(c: Json) {
  return createSglangWatermarkKey({
    scheme: c.keyB === undefined ? 'gumbel' : 'dual_key_gumbel',
    engineKey: BigInt(c.key),
    ...(c.keyB === undefined ? {} : { keyB: BigInt(c.keyB), mixingProbability: c.mixingProbability ?? 0.5 }),
    contextWindow: c.window,
    maxContexts: c.maxContexts ?? 4096,
  });
}

describe('sglangKeyType: units and tail for corpus scans', () => {
  it('a one-document corpus gives the strict per-document numbers; repeated documents change nothing', () => {
    const cases = (vectors.cases as Json[]).filter((row: Json) => row.window <= 64);
    expect(cases.some((c: Json) => c.keyB !== undefined)).toBe(true);
    expect(cases.some((c: Json) => c.maxContexts !== undefined)).toBe(true);
    for (const c of cases) {
      const scorer = sglangKeyType.createScorer(keyOfCase(c), 1e-3);
      const strict = scorer.score(c.completion, 'strict');
      const one = pooled(scorer, [c.completion]);
      expect(one.count, c.name).toBe(strict.numScored);
      expect(relative(one.total, strict.score), c.name).toBeLessThan(1e-12);
      expect(relative(one.log10P, strict.log10P), c.name).toBeLessThan(1e-9);
      const positions = Array.from(scorer.units!(c.completion).positions);
      expect(positions.every((p, i) => i === 0 || p > positions[i - 1]!)).toBe(true);
      expect(positions[0]).toBe(c.window);
      const again = pooled(scorer, [c.completion, c.completion.slice(0, 30), c.completion]);
      expect(again.repeats).toBeGreaterThan(0);
      expect([again.count, again.total, again.log10P]).toEqual([one.count, one.total, one.log10P]);
    }
  });

  it('a unit is (context hash, token): the same context with another token is another unit', () => {
    const key = createSglangWatermarkKey({
      scheme: 'gumbel',
      engineKey: 0x0123456789abcdefn,
      contextWindow: 2,
    });
    const scorer = sglangKeyType.createScorer(key, 1e-3);
    const documents = [
      [5, 6, 7, 8],
      [5, 6, 9, 8],
      [5, 6, 7, 8, 9],
    ];
    const corpus = pooled(scorer, documents);
    // Units: (5 6 → 7), (6 7 → 8); (5 6 → 9), (6 9 → 8); (7 8 → 9) new in the third.
    expect(corpus.count).toBe(5);
    expect(corpus.repeats).toBe(2);
  });

  it('tail is the exact Gamma(count, 1) tail in log space, finite far below 1e-308', () => {
    const key = createSglangWatermarkKey({ scheme: 'gumbel', engineKey: 0x0123456789abcdefn });
    const scorer = sglangKeyType.createScorer(key, 1e-3);
    // mpmath, 50 digits: log10 P[Gamma(500, 1) ≥ 900]
    expect(relative(scorer.tail!(900, 500), -47.73569281369244)).toBeLessThan(1e-9);
    // Gamma(1, 1) is Exp(1): P[X ≥ x] = e^−x
    expect(relative(scorer.tail!(2000, 1), -2000 / Math.LN10)).toBeLessThan(1e-12);
    expect(scorer.tail!(0, 5)).toBe(0);
    expect(scorer.tail!(3, 0)).toBe(0);
    expect(() => scorer.tail!(1, 0.5)).toThrow(RangeError);
  });

  it('units of ids outside the vocabulary: an input error that does not hold the key', () => {
    const key = createSglangWatermarkKey({
      scheme: 'gumbel',
      engineKey: 0x0123456789abcdefn,
      tokenizer: 'Qwen/Qwen3-8B',
      vocabSize: 1000,
    });
    const error = thrown(() => sglangKeyType.createScorer(key, 1e-3).units!([1, 2, 3, 4, 1000]));
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
    expect(error.message).toContain('[4]');
    expect(error.message).not.toContain(SECRET);
  });
});
