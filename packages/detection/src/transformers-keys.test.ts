import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from './errors.ts';
import { ForeignKeyError, ForeignKeyFileError } from './foreign.ts';
import {
  createTransformersWatermarkKey,
  TRANSFORMERS_KEY_FILE_FORMAT,
  type TransformersWatermarkKey,
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
