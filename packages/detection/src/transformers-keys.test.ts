import { readFileSync } from 'node:fs';
import { createTransformersKgwDetector } from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { InputError } from './errors.ts';
import { ForeignKeyError, ForeignKeyFileError } from './foreign.ts';
import {
  createTransformersWatermarkKey,
  TRANSFORMERS_KEY_FILE_FORMAT,
  type TransformersWatermarkKey,
  transformersDetectorParams,
  transformersKeyType,
} from './transformers-keys.ts';

interface VectorCase {
  name: string;
  scheme: 'lefthash' | 'selfhash';
  vocabSize: number;
  contextWidth: number;
  hashKey: string;
  gamma: number;
  delta: number;
  tokens: number[];
  detection: {
    peer: { plain: { numScored: number; numGreen: number; pValue: number } };
    distinctNgrams: { numScored: number; numGreen: number };
    references: { exactLog10: number | null; exactDistinctLog10: number | null };
  };
}

const vectors = JSON.parse(
  readFileSync(new URL('../../core/test/vectors/foreign/transformers.json', import.meta.url), 'utf8'),
) as { cases: VectorCase[]; detections: VectorCase[] };

/** A key no output may show. */
const SECRET = 8765432109876543210n;
const SECRET_TEXT = SECRET.toString();

function keyOf(c: VectorCase): TransformersWatermarkKey {
  return transformersKeyType.fromKeygen(
    'transformers:kgw',
    {
      'seeding-scheme': c.scheme,
      gamma: String(c.gamma),
      delta: String(c.delta),
      'context-width': String(c.contextWidth),
      tokenizer: 'hf:test-model',
      'vocab-size': String(c.vocabSize),
    },
    c.hashKey,
  );
}

function closeLog10(actual: number, expected: number | null): void {
  expect(expected).not.toBeNull();
  expect(Math.abs(actual - expected!)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected!)));
}

describe('transformers keys: scoring through the key type', () => {
  it('reads transformers’ marks from token ids: counts, exact p-values, and transformers’ own p-value', () => {
    const chosen = vectors.cases.filter((c) => c.vocabSize >= 32000 && c.tokens.length <= 200).slice(0, 4);
    expect(chosen.length).toBe(4);
    for (const c of chosen) {
      const scorer = transformersKeyType.createScorer(keyOf(c), 1e-4);
      expect(scorer.schemeName).toBe('transformers:kgw');
      const none = scorer.score(c.tokens, 'none');
      expect(none.numScored).toBe(c.detection.peer.plain.numScored);
      expect(none.numGreen).toBe(c.detection.peer.plain.numGreen);
      closeLog10(none.log10P, c.detection.references.exactLog10);
      if (c.detection.peer.plain.pValue === 0) expect(none.peerLog10P).toBe(Number.NEGATIVE_INFINITY);
      else closeLog10(none.peerLog10P!, Math.log10(c.detection.peer.plain.pValue));
      const context = scorer.score(c.tokens, 'context');
      expect(context.numScored).toBe(c.detection.distinctNgrams.numScored);
      closeLog10(context.log10P, c.detection.references.exactDistinctLog10);
    }
  });

  it('a wrong hash key finds nothing on marked text', () => {
    const marked = vectors.cases.find((c) => c.name === 'lefthash-v32000-h1-default')!;
    const right = transformersKeyType.createScorer(keyOf(marked), 1e-4).score(marked.tokens, 'strict');
    const wrong = transformersKeyType
      .createScorer(keyOf({ ...marked, hashKey: '15485867' }), 1e-4)
      .score(marked.tokens, 'strict');
    expect(right.log10P).toBeLessThan(-10);
    expect(wrong.log10P).toBeGreaterThan(-3);
  });

  it('verdict alternative follows δ: none for δ = 0', () => {
    const base = { hashKey: 1n, tokenizer: 'gpt2' } as const;
    const scorer = transformersKeyType.createScorer(createTransformersWatermarkKey(base), 1e-4);
    expect(scorer.nullGreenProbability).toBeCloseTo(12564 / 50257, 15);
    expect(scorer.verdictOptions.alternative).toBeGreaterThan(scorer.nullGreenProbability!);
    const flat = transformersKeyType.createScorer(
      createTransformersWatermarkKey({ ...base, delta: 0 }),
      1e-4,
    );
    expect(flat.verdictOptions.alternative).toBeNull();
  });

  it('ids outside the vocabulary are an input error that does not show the key', () => {
    const key = createTransformersWatermarkKey({ hashKey: SECRET, vocabSize: 1000, tokenizer: 'hf:m' });
    const scorer = transformersKeyType.createScorer(key, 1e-4);
    for (const ids of [[1, 1000], [-1], [0.5]]) {
      try {
        scorer.score(ids, 'none');
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
        expect((error as Error).message).not.toContain(SECRET_TEXT);
      }
    }
  });
});

describe('transformers keys: keygen and key files', () => {
  it('fills in transformers’ defaults and the shipped tokenizer’s vocabulary size', () => {
    const key = transformersKeyType.fromKeygen('transformers:kgw', { tokenizer: 'gpt2' }, '15485863');
    expect(key).toMatchObject({
      kind: 'transformers',
      scheme: 'kgw',
      seedingScheme: 'lefthash',
      hashKey: 15485863n,
      gamma: 0.25,
      delta: 2,
      contextWidth: 1,
      tokenizer: 'gpt2',
      vocabSize: 50257,
    });
    expect(key.keyId).toMatch(/^tfkgw1_[0-9a-f]{24}$/);
    expect(transformersKeyType.parameters(key)).not.toHaveProperty('hashKey');
  });

  it('the key id depends on what decides green lists, not on δ or the tokenizer', () => {
    const base = { hashKey: SECRET, vocabSize: 32000, tokenizer: 'hf:a' } as const;
    const id = createTransformersWatermarkKey(base).keyId;
    expect(createTransformersWatermarkKey({ ...base, delta: 1, tokenizer: 'hf:b' }).keyId).toBe(id);
    expect(createTransformersWatermarkKey({ ...base, vocabSize: 32001 }).keyId).not.toBe(id);
    expect(createTransformersWatermarkKey({ ...base, hashKey: SECRET + 1n }).keyId).not.toBe(id);
    expect(createTransformersWatermarkKey({ ...base, contextWidth: 2 }).keyId).not.toBe(id);
    expect(id).not.toContain(SECRET_TEXT);
  });

  it('a key file round-trips, and edited or incomplete files are refused without the key', () => {
    const key = createTransformersWatermarkKey({
      hashKey: -42n,
      seedingScheme: 'lefthash',
      contextWidth: 4,
      tokenizer: 'hf:m',
      vocabSize: 32000,
    });
    const text = transformersKeyType.serialize(key, new Date('2026-01-01T00:00:00Z'));
    const record = JSON.parse(text) as Record<string, unknown>;
    expect(record.format).toBe(TRANSFORMERS_KEY_FILE_FORMAT);
    expect(record.hashKey).toBe('-42');
    expect(transformersKeyType.parse(record)).toEqual(key);
    const broken: Record<string, unknown>[] = [
      { ...record, gamma: 0.3 },
      { ...record, context_width: 4 },
      { ...record, vocabSize: undefined },
      { ...record, hashKey: 42 },
      { ...record, seedingScheme: 'minhash' },
      { ...record, version: 2 },
    ];
    for (const file of broken) {
      const cleaned = JSON.parse(JSON.stringify(file)) as Record<string, unknown>;
      expect(() => transformersKeyType.parse(cleaned)).toThrow(ForeignKeyFileError);
    }
    const secretFile = JSON.parse(
      transformersKeyType.serialize(createTransformersWatermarkKey({ hashKey: SECRET, tokenizer: 'gpt2' })),
    ) as Record<string, unknown>;
    try {
      transformersKeyType.parse({ ...secretFile, delta: 'x' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ForeignKeyFileError);
      expect((error as Error).message).toContain('"delta"');
      expect((error as Error).message).not.toContain(SECRET_TEXT);
    }
  });

  it('keygen refuses what transformers would not accept, naming the flag and never the key', () => {
    const attempts: [Record<string, string>, string | null, string][] = [
      [{ tokenizer: 'gpt2' }, null, 'secret'],
      [{ tokenizer: 'gpt2' }, '18446744073709551616', 'secret'],
      [{ tokenizer: 'gpt2', 'seeding-scheme': 'selfhash' }, '9223372036854775808', 'secret'],
      [{ tokenizer: 'gpt2' }, '12ab', 'secret'],
      [{ tokenizer: 'gpt2', gamma: '1' }, '777', 'gamma'],
      [{ tokenizer: 'gpt2', 'context-width': '0' }, '777', 'context-width'],
      [{ tokenizer: 'gpt2', 'seeding-scheme': 'minhash' }, '777', 'seeding-scheme'],
      [{ tokenizer: 'hf:model' }, '777', 'vocab-size'],
      [{ tokenizer: 'gpt2', 'vocab-size': '50000' }, '777', 'vocab-size'],
      [{ tokenizer: 'gpt2', alpha: '0.1' }, '777', 'alpha'],
    ];
    for (const [flags, secret, parameter] of attempts) {
      try {
        transformersKeyType.fromKeygen('transformers:kgw', flags, secret);
        expect.unreachable(`${parameter} accepted`);
      } catch (error) {
        expect(error).toBeInstanceOf(ForeignKeyError);
        expect((error as ForeignKeyError).parameter).toBe(parameter);
        if (secret !== null) expect((error as Error).message).not.toContain(secret);
      }
    }
    // a padded model vocabulary above the shipped tokenizer's is accepted
    expect(
      transformersKeyType.fromKeygen('transformers:kgw', { tokenizer: 'gpt2', 'vocab-size': '50304' }, '777')
        .vocabSize,
    ).toBe(50304);
    expect(() => transformersKeyType.fromKeygen('vllm:gumbel', {}, '777')).toThrow(ForeignKeyError);
  });
});

/** A corpus as `tracemark scan` pools it: each unit once, where it first occurs; a unit's value never changes. */
function pooled(
  scorer: ReturnType<typeof transformersKeyType.createScorer>,
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

describe('transformers keys: units and tail for corpus scans', () => {
  const random = (seed: number, length: number, vocabSize: number): number[] => {
    let state = seed;
    return Array.from({ length }, () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % vocabSize;
    });
  };

  it('a one-document corpus gives the strict per-document numbers; repeated documents change nothing', () => {
    const chosen = vectors.cases.filter((c) => c.tokens.length <= 300).slice(0, 6);
    expect(chosen.map((c) => c.scheme)).toContain('selfhash');
    for (const c of chosen) {
      const scorer = transformersKeyType.createScorer(keyOf(c), 1e-4);
      const strict = scorer.score(c.tokens, 'strict');
      const units = scorer.units!(c.tokens);
      const core = createTransformersKgwDetector(transformersDetectorParams(keyOf(c)));
      expect(Array.from(units.positions)).toEqual(core.detect(c.tokens, { dedup: 'strict' }).positions);
      const one = pooled(scorer, [c.tokens]);
      expect(one.count).toBe(strict.numScored);
      expect(one.total).toBe(strict.numGreen);
      expect(one.log10P).toBe(strict.log10P);
      const again = pooled(scorer, [c.tokens, c.tokens.slice(0, 40), c.tokens]);
      expect(again.repeats).toBeGreaterThan(0);
      expect([again.count, again.total, again.log10P]).toEqual([one.count, one.total, one.log10P]);
    }
  });

  it('a unit is what decides its green bit: over a small vocabulary, repeated units carry one value', () => {
    for (const seedingScheme of ['lefthash', 'selfhash'] as const) {
      const key = createTransformersWatermarkKey({
        hashKey: SECRET,
        seedingScheme,
        contextWidth: 3,
        vocabSize: 60,
        tokenizer: 'hf:tiny',
      });
      const scorer = transformersKeyType.createScorer(key, 1e-4);
      const documents = Array.from({ length: 30 }, (_, d) => random(d + 1, 80, 60));
      const corpus = pooled(scorer, documents);
      expect(corpus.repeats).toBeGreaterThan(100);
      // Distinct units keep their own values: the pooled count is not the first document's again.
      expect(corpus.count).toBeGreaterThan(pooled(scorer, documents.slice(0, 1)).count);
      expect(corpus.log10P).toBeGreaterThan(-3);
    }
  });

  it('tail is the exact binomial tail at γ₀ = g/V in log space, finite far below 1e-308', () => {
    const key = createTransformersWatermarkKey({ hashKey: SECRET, vocabSize: 1000, tokenizer: 'hf:m' });
    const scorer = transformersKeyType.createScorer(key, 1e-4);
    // mpmath, 60 digits: log10 P[Bin(2000, 0.25) ≥ 900]
    expect(scorer.tail!(900, 2000)).toBeCloseTo(-83.096768051045, 9);
    // every unit green: P = γ₀^n exactly
    expect(scorer.tail!(5000, 5000)).toBeCloseTo(5000 * Math.log10(0.25), 8);
    expect(scorer.tail!(0, 100)).toBe(0);
    expect(scorer.tail!(0, 0)).toBe(0);
    expect(() => scorer.tail!(3, 1.5)).toThrow(RangeError);
  });

  it('units of ids outside the vocabulary are an input error that does not show the key', () => {
    const key = createTransformersWatermarkKey({ hashKey: SECRET, vocabSize: 1000, tokenizer: 'hf:m' });
    const scorer = transformersKeyType.createScorer(key, 1e-4);
    try {
      scorer.units!([1, 2, 1000]);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
      expect((error as Error).message).toContain('[2]');
      expect((error as Error).message).not.toContain(SECRET_TEXT);
    }
  });
});
