import { readFileSync } from 'node:fs';
import {
  createRandom,
  createSynthidDetector,
  createSynthidGenerator,
  synthidSamplingTable,
} from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { InputError } from './errors.ts';
import { ForeignKeyError, ForeignKeyFileError } from './foreign.ts';
import {
  createSynthidWatermarkKey,
  SYNTHID_SCHEME_NAME,
  type SynthidWatermarkKey,
  synthidDetectorParams,
  synthidKeyType,
} from './synthid-keys.ts';

interface VectorCase {
  name: string;
  keys: string[];
  ngramLen: number;
  samplingTableSize: number;
  samplingTableSeed: string;
  contextHistorySize: number;
  skipFirstNgramCalls: boolean;
  vocabSize: number;
  generation: { kind: string };
  tokens: number[];
  detections: {
    eosTokenId: number | null;
    dedups: {
      dedup: 'none' | 'context' | 'strict';
      numScored: number;
      score: number;
      binomialLog10?: number;
    }[];
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../core/test/vectors/foreign/synthid.json', import.meta.url), 'utf8'),
) as { cases: VectorCase[] };

/** Keys no output may show. */
const SECRET = [918273645546372819n, -77777777777n, 4242424242n];
const SECRET_TEXT = SECRET.map(String);

function keyOf(c: VectorCase, eosTokenId: number | null): SynthidWatermarkKey {
  return createSynthidWatermarkKey({
    keys: c.keys.map(BigInt),
    ngramLen: c.ngramLen,
    samplingTableSize: c.samplingTableSize,
    samplingTableSeed: BigInt(c.samplingTableSeed),
    contextHistorySize: c.contextHistorySize,
    skipFirstNgramCalls: c.skipFirstNgramCalls,
    tokenizer: 'test/model',
    vocabSize: c.vocabSize,
    ...(eosTokenId === null ? {} : { eosTokenId }),
  });
}

function expectNoSecret(text: string): void {
  for (const secret of SECRET_TEXT) expect(text).not.toContain(secret);
}

describe('synthidKeyType: scoring the vectors end to end', () => {
  for (const c of vectors.cases) {
    const d = c.detections[0]!;
    it(`${c.name}: key file round trip, then the scorer reproduces the peer's numbers`, () => {
      const key = keyOf(c, d.eosTokenId);
      const parsed = synthidKeyType.parse(JSON.parse(synthidKeyType.serialize(key)));
      expect(parsed.keyId).toBe(key.keyId);
      const scorer = synthidKeyType.createScorer(parsed, 1e-4);
      expect(scorer.schemeName).toBe(SYNTHID_SCHEME_NAME);
      expect(scorer.verdictOptions.alternative).toBeNull();
      for (const v of d.dedups) {
        const result = scorer.score(c.tokens, v.dedup);
        expect(result.numScored).toBe(v.numScored);
        expect(result.score).toBe(v.score);
        expect(result.peerLog10P).toBeNull();
        if (v.binomialLog10 !== undefined) {
          expect(Math.abs(result.log10P - v.binomialLog10)).toBeLessThanOrEqual(
            1e-9 * Math.max(1, Math.abs(v.binomialLog10)),
          );
        }
      }
    });
  }

  it('marked vectors are found at 1e-4, unmarked ones are not', () => {
    for (const c of vectors.cases) {
      const d = c.detections[0]!;
      const result = synthidKeyType.createScorer(keyOf(c, d.eosTokenId), 1e-4).score(c.tokens, 'strict');
      if (c.generation.kind === 'unmarked') expect(result.log10P, c.name).toBeGreaterThan(-4);
      else if (c.tokens.length >= 150 && c.name !== 'd5-n2-dupkeys')
        expect(result.log10P, c.name).toBeLessThan(-4);
    }
  });

  it('a wrong key on marked text: no evidence', () => {
    const c = vectors.cases.find((x) => x.name === 'd30-n5-default')!;
    const wrong = createSynthidWatermarkKey({
      keys: c.keys.map((k) => BigInt(k) + 1n),
      ngramLen: c.ngramLen,
      tokenizer: 'test/model',
      vocabSize: c.vocabSize,
    });
    expect(synthidKeyType.createScorer(wrong, 1e-4).score(c.tokens, 'strict').log10P).toBeGreaterThan(-3);
  });

  it('generated with the core generator and detected through the key type', () => {
    const key = createSynthidWatermarkKey({
      keys: SECRET,
      ngramLen: 4,
      tokenizer: 'test/model',
      vocabSize: 64,
    });
    const generator = createSynthidGenerator(synthidDetectorParams(key));
    const rng = createRandom(3);
    const tokens: number[] = [];
    for (let t = 0; t < 200; t++) {
      const probs = Float64Array.from({ length: 64 }, () => Math.exp(2 * rng.nextFloat()));
      tokens.push(generator.sample(probs, rng));
    }
    const result = synthidKeyType.createScorer(key, 1e-4).score(tokens, 'strict');
    expect(result.log10P).toBeLessThan(-4);
  });

  it('ids outside the vocabulary: InputError TM_ERR_INVALID_TOKENS without the keys', () => {
    const key = createSynthidWatermarkKey({
      keys: SECRET,
      ngramLen: 3,
      tokenizer: 'test/model',
      vocabSize: 100,
    });
    const scorer = synthidKeyType.createScorer(key, 1e-4);
    for (const ids of [
      [1, 2, 100],
      [1, -1, 2],
      [1, 2.5, 3],
    ]) {
      let error: unknown;
      try {
        scorer.score(ids, 'strict');
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
      expectNoSecret((error as Error).message);
    }
  });
});

describe('synthidKeyType: keygen and key files', () => {
  it('keygen flags build the key with transformers defaults explicit', () => {
    const key = synthidKeyType.fromKeygen(SYNTHID_SCHEME_NAME, { 'ngram-len': '5' }, SECRET_TEXT.join(', '));
    expect(key).toMatchObject({
      kind: 'synthid',
      scheme: 'tournament',
      ngramLen: 5,
      samplingTableSize: 65536,
      samplingTableSeed: 0n,
      contextHistorySize: 1024,
      skipFirstNgramCalls: false,
      eosTokenId: null,
      tokenizer: 'cl100k_base',
      vocabSize: null,
    });
    expect(key.keys).toEqual(SECRET);
    expect(key.keyId).toMatch(/^synthid1_[0-9a-f]{24}$/);
    const flagged = synthidKeyType.fromKeygen(
      SYNTHID_SCHEME_NAME,
      {
        'ngram-len': '5',
        'sampling-table-size': '1000',
        'sampling-table-seed': '-3',
        'context-history-size': '8',
        'skip-first-ngram-calls': '',
        'eos-token-id': '1',
        tokenizer: 'google/gemma-2-2b',
        'vocab-size': '256000',
      },
      SECRET_TEXT.join(','),
    );
    expect(flagged).toMatchObject({
      samplingTableSize: 1000,
      samplingTableSeed: -3n,
      contextHistorySize: 8,
      skipFirstNgramCalls: true,
      eosTokenId: 1,
      vocabSize: 256000,
    });
  });

  it('the key id changes with what marks the ids, not with history, EOS or tokenizer', () => {
    const base = { keys: SECRET, ngramLen: 5 };
    const id = (options: object) => createSynthidWatermarkKey({ ...base, ...options }).keyId;
    const ids = [
      id({}),
      id({ keys: [...SECRET].reverse() }),
      id({ ngramLen: 4 }),
      id({ samplingTableSize: 1000 }),
      id({ samplingTableSeed: 1n }),
    ];
    expect(new Set(ids).size).toBe(ids.length);
    expect(id({ contextHistorySize: 8, skipFirstNgramCalls: true })).toBe(id({}));
    expect(id({ tokenizer: 'google/gemma-2-2b', vocabSize: 256000, eosTokenId: 1 })).toBe(id({}));
  });

  const invalid: [string, Record<string, string>, string | null, string][] = [
    ['no secret', { 'ngram-len': '5' }, null, 'secret'],
    ['secret not integers', { 'ngram-len': '5' }, '1,two,3', 'secret'],
    ['key ≥ 2^63', { 'ngram-len': '5' }, `${SECRET_TEXT[0]},9223372036854775808`, 'secret'],
    ['no ngram-len', {}, SECRET_TEXT.join(','), 'ngram-len'],
    ['ngram-len 1', { 'ngram-len': '1' }, SECRET_TEXT.join(','), 'ngram-len'],
    [
      'table 2^24 + 1',
      { 'ngram-len': '5', 'sampling-table-size': '16777217' },
      SECRET_TEXT.join(','),
      'sampling-table-size',
    ],
    [
      'history 0',
      { 'ngram-len': '5', 'context-history-size': '0' },
      SECRET_TEXT.join(','),
      'context-history-size',
    ],
    [
      'skip maybe',
      { 'ngram-len': '5', 'skip-first-ngram-calls': 'maybe' },
      SECRET_TEXT.join(','),
      'skip-first-ngram-calls',
    ],
    [
      'vocab with shipped tokenizer',
      { 'ngram-len': '5', 'vocab-size': '10' },
      SECRET_TEXT.join(','),
      'vocab-size',
    ],
    [
      'eos beyond vocab',
      { 'ngram-len': '5', tokenizer: 'm', 'vocab-size': '10', 'eos-token-id': '10' },
      SECRET_TEXT.join(','),
      'eos-token-id',
    ],
    ['foreign flag', { 'ngram-len': '5', 'context-width': '4' }, SECRET_TEXT.join(','), 'context-width'],
  ];
  for (const [name, flags, secret, parameter] of invalid) {
    it(`keygen refuses ${name}, naming ${parameter} and never a key`, () => {
      let error: unknown;
      try {
        synthidKeyType.fromKeygen(SYNTHID_SCHEME_NAME, flags, secret);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ForeignKeyError);
      expect((error as ForeignKeyError).parameter).toBe(parameter);
      expectNoSecret((error as Error).message);
    });
  }

  it('key files: edited, unknown or missing fields are refused without the keys', () => {
    const key = createSynthidWatermarkKey({ keys: SECRET, ngramLen: 5 });
    const file = JSON.parse(synthidKeyType.serialize(key, new Date(0))) as Record<string, unknown>;
    expect(file).toMatchObject({ format: 'tracemark-synthid-key', version: 1, keys: SECRET_TEXT });
    const edits: Record<string, unknown>[] = [
      { ...file, ngramLen: 4 },
      { ...file, keys: [...SECRET_TEXT, '1'] },
      { ...file, context_width: 4 },
      { ...file, keys: SECRET.map(Number) },
      { ...file, samplingTableSeed: 0 },
      { ...file, scheme: 'kgw' },
      Object.fromEntries(Object.entries(file).filter(([name]) => name !== 'contextHistorySize')),
    ];
    for (const edited of edits) {
      let error: unknown;
      try {
        synthidKeyType.parse(edited);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ForeignKeyFileError);
      expectNoSecret((error as Error).message);
    }
    expect(synthidKeyType.parse(file).keyId).toBe(key.keyId);
  });

  it('parameters and the key id never show the keys', () => {
    const key = createSynthidWatermarkKey({ keys: SECRET, ngramLen: 5 });
    expectNoSecret(JSON.stringify(synthidKeyType.parameters(key)));
    expectNoSecret(key.keyId);
  });
});

/** A corpus as `tracemark scan` pools it: each unit once, where it first occurs; a unit's value never changes. */
function pooled(
  scorer: ReturnType<typeof synthidKeyType.createScorer>,
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

describe('synthidKeyType: units and tail for corpus scans', () => {
  it('a one-document corpus gives the strict per-document numbers; repeated documents change nothing', () => {
    for (const c of vectors.cases) {
      const d = c.detections[0]!;
      const key = keyOf(c, d.eosTokenId);
      const scorer = synthidKeyType.createScorer(key, 1e-4);
      const strict = scorer.score(c.tokens, 'strict');
      const detection = createSynthidDetector(synthidDetectorParams(key)).detect(c.tokens, {
        dedup: 'strict',
      });
      expect(Array.from(scorer.units!(c.tokens).positions), c.name).toEqual(detection.positions);
      const one = pooled(scorer, [c.tokens]);
      expect(one.count, c.name).toBe(strict.numScored);
      expect(one.total, c.name).toBe(strict.score);
      expect(one.log10P, c.name).toBe(strict.log10P);
      const again = pooled(scorer, [c.tokens, c.tokens.slice(0, 60), c.tokens]);
      expect(again.repeats).toBeGreaterThan(0);
      expect([again.count, again.total, again.log10P]).toEqual([one.count, one.total, one.log10P]);
    }
  });

  it('a unit is the table seed: repeated seeds carry one value, duplicate layers count once', () => {
    // Keys 3 and 3 + 2^16 read the same entries of the default table: an effective depth of 3.
    const key = createSynthidWatermarkKey({
      keys: [...SECRET, SECRET[2]! + 65536n],
      ngramLen: 3,
      tokenizer: 'test/model',
      vocabSize: 12,
    });
    const scorer = synthidKeyType.createScorer(key, 1e-4);
    const rng = createRandom(17);
    const documents = Array.from({ length: 40 }, () =>
      Array.from({ length: 60 }, () => Math.floor(rng.nextFloat() * 12)),
    );
    const corpus = pooled(scorer, documents);
    expect(corpus.repeats).toBeGreaterThan(500);
    expect(corpus.count).toBeGreaterThan(pooled(scorer, documents.slice(0, 1)).count);
    // The values are counts over 3 effective layers, never 4.
    const values = documents.flatMap((ids) => Array.from(scorer.units!(ids).values));
    expect(Math.max(...values)).toBe(3);
    expect(corpus.log10P).toBeGreaterThan(-3);
    expect(scorer.tail!(3 * corpus.count, corpus.count)).toBeCloseTo(
      3 * corpus.count * Math.log10(scorer.nullGreenProbability!),
      8,
    );
  });

  it('tail is the exact Bin(count × effective depth, q) tail in log space, finite far below 1e-308', () => {
    const key = createSynthidWatermarkKey({
      keys: Array.from({ length: 30 }, (_, l) => 1_000_003n * BigInt(l + 1)),
      ngramLen: 5,
      tokenizer: 'test/model',
      vocabSize: 1000,
    });
    const scorer = synthidKeyType.createScorer(key, 1e-4);
    // The default table holds 32,743 ones; mpmath, 60 digits: log10 P[Bin(9000, q) ≥ 5000]
    expect(scorer.nullGreenProbability).toBe(32743 / 65536);
    expect(scorer.tail!(5000, 300)).toBeCloseTo(-25.88935763749647, 9);
    expect(scorer.tail!(3000 * 30, 3000)).toBeCloseTo(90000 * Math.log10(32743 / 65536), 6);
    expect(scorer.tail!(0, 10)).toBe(0);
    expect(() => scorer.tail!(1, -1)).toThrow(RangeError);
  });

  it('units of ids outside the vocabulary: InputError TM_ERR_INVALID_TOKENS without the keys', () => {
    const key = createSynthidWatermarkKey({
      keys: SECRET,
      ngramLen: 3,
      tokenizer: 'test/model',
      vocabSize: 100,
    });
    try {
      synthidKeyType.createScorer(key, 1e-4).units!([1, 2, 100]);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
      expect((error as Error).message).toContain('[2]');
      expectNoSecret((error as Error).message);
    }
  });
});

describe('synthidKeyType: the binomial null of a corpus scan', () => {
  it('matches the exact tail when the keys are what is random (the text fixed), to 0.05 in log10', () => {
    // Under the null the text does not depend on the keys. With random keys, layer l's g-values over
    // the scored seeds V are A(k_l) = Σ_{x∈V} T[((x + k_l)·M + 1) mod S], independent across layers:
    // the score's exact law is the 30-fold convolution of A's law over all S shifts.
    const S = 65536;
    const table = synthidSamplingTable(S, 0);
    const multiplier = Number(6364136223846793005n % BigInt(S));
    const rng = createRandom(41);
    const tokens = Array.from({ length: 700 }, () => rng.nextUint32() % 50_000);
    const key = createSynthidWatermarkKey({
      keys: Array.from({ length: 30 }, (_, l) => 7_777_777_777n * BigInt(l + 1)),
      ngramLen: 5,
    });
    const scorer = synthidKeyType.createScorer(key, 1e-4);
    const seeds = scorer.units!(tokens).keys.map(Number);
    const n = seeds.length;
    expect(n).toBeGreaterThan(650);
    const shifted = new Uint8Array(S);
    for (let x = 0; x < S; x++) shifted[x] = table[(Math.imul(x, multiplier) + 1) & (S - 1)]!;
    const counts = new Map<number, number>();
    for (let shift = 0; shift < S; shift++) {
      let a = 0;
      for (const seed of seeds) a += shifted[(seed + shift) & (S - 1)]!;
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    const low = Math.min(...counts.keys());
    const law = new Float64Array(Math.max(...counts.keys()) - low + 1);
    for (const [a, c] of counts) law[a - low] = c / S;
    let total = Float64Array.from([1]);
    for (let layer = 0; layer < 30; layer++) {
      const next = new Float64Array(total.length + law.length - 1);
      for (let i = 0; i < total.length; i++) {
        for (let j = 0; j < law.length; j++) next[i + j]! += total[i]! * law[j]!;
      }
      total = next;
    }
    const q = scorer.nullGreenProbability!;
    for (const level of [-2, -4, -6]) {
      let score = Math.ceil(30 * n * q);
      while (scorer.tail!(score, n) > level) score++;
      let exact = 0;
      for (let i = total.length - 1; i + 30 * low >= score; i--) exact += total[i]!;
      expect(Math.abs(Math.log10(exact) - scorer.tail!(score, n)), `at 1e${level}`).toBeLessThan(0.05);
    }
  });
});
