import { createRandom, sbwHashInt } from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { InputError } from './errors.ts';
import type { ForeignKeyScorer } from './foreign.ts';
import { createSglangWatermarkKey, sglangKeyType } from './sglang-keys.ts';
import { createSynthidWatermarkKey, synthidKeyType } from './synthid-keys.ts';
import { createVllmKeyScorer } from './vllm-detection.ts';
import { createVllmWatermarkKey, type VllmKeyOptions } from './vllm-keys.ts';

/** A unit's key from its words, as the scorer's packing documents it. */
type Decode = (words: Uint32Array, at: number) => string;

interface Case {
  readonly name: string;
  readonly scorer: ForeignKeyScorer;
  readonly decode: Decode;
}

const int64 = (hi: number, lo: number): bigint => BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));

/** vLLM gumbel, dual_key_gumbel, red_green: the context's ids (−1 as 0xFFFFFFFF), then the token. */
const contextAndToken =
  (width: number): Decode =>
  (words, at) =>
    `${Array.from(words.subarray(at, at + width), (word) => word | 0).join(',')}|${words[at + width]}`;
/** vLLM sbw: the seed's high and low halves, then the token. */
const seedAndToken: Decode = (words, at) => `${int64(words[at]!, words[at + 1]!)}:${words[at + 2]}`;
/** SGLang: the context hash, then the token. */
const hashAndToken: Decode = (words, at) => `${words[at]}:${words[at + 1]}`;
/** SynthID: the seed, one word (a power-of-two table) or the int64 hash's halves. */
const synthidSeed =
  (width: number): Decode =>
  (words, at) =>
    width === 1 ? `${words[at]}` : int64(words[at]!, words[at + 1]!).toString(10);

const VLLM_KEY = 0xfedcba9876543210n;
const SBW_KEY = 0x7edcba9876543211n;

function vllmCase(name: string, options: Omit<VllmKeyOptions, 'engineKey'>, decode?: Decode): Case {
  const key = createVllmWatermarkKey({
    engineKey: options.scheme === 'sbw' ? SBW_KEY : VLLM_KEY,
    ...options,
  });
  return {
    name,
    scorer: createVllmKeyScorer(key, 1e-3),
    decode: decode ?? (options.scheme === 'sbw' ? seedAndToken : contextAndToken(key.contextWidth)),
  };
}

function sglangCase(name: string, options: Partial<Parameters<typeof createSglangWatermarkKey>[0]>): Case {
  const key = createSglangWatermarkKey({
    scheme: options.keyB === undefined ? 'gumbel' : 'dual_key_gumbel',
    engineKey: 0x0123456789abcdefn,
    ...options,
  });
  return { name, scorer: sglangKeyType.createScorer(key, 1e-3), decode: hashAndToken };
}

function synthidCase(name: string, options: Partial<Parameters<typeof createSynthidWatermarkKey>[0]>): Case {
  const key = createSynthidWatermarkKey({
    keys: [654n, -400n, 9_223_372_036_854_775_807n, 654n + 65536n, -9_223_372_036_854_775_808n],
    ngramLen: 5,
    ...options,
  });
  const scorer = synthidKeyType.createScorer(key, 1e-3);
  return { name, scorer, decode: synthidSeed(scorer.unitWidth!) };
}

const CASES: readonly Case[] = [
  vllmCase('vllm:gumbel philox, width 4', { scheme: 'gumbel' }),
  vllmCase('vllm:gumbel philox, width 1', { scheme: 'gumbel', contextWidth: 1 }),
  vllmCase('vllm:gumbel philox, width 15 (the widest that packs)', { scheme: 'gumbel', contextWidth: 15 }),
  vllmCase('vllm:gumbel hmac, width 2', { scheme: 'gumbel', prf: 'hmac-sha256-v1', contextWidth: 2 }),
  vllmCase('vllm:dual_key_gumbel, width 4', { scheme: 'dual_key_gumbel', alpha: 0.3 }),
  vllmCase('vllm:dual_key_gumbel, width 6', { scheme: 'dual_key_gumbel', contextWidth: 6 }),
  vllmCase('vllm:red_green, width 3', { scheme: 'red_green', contextWidth: 3, gamma: 0.4 }),
  vllmCase('vllm:sbw selfhash, width 4', { scheme: 'sbw' }),
  vllmCase('vllm:sbw selfhash, width 20', { scheme: 'sbw', contextWidth: 20 }),
  vllmCase('vllm:sbw lefthash, detector seeds', { scheme: 'sbw', sbwScheme: 'lefthash', contextWidth: 2 }),
  vllmCase('vllm:sbw lefthash, generator seeds', {
    scheme: 'sbw',
    sbwScheme: 'lefthash',
    sbwLefthashSeeds: 'generator',
    contextWidth: 3,
    gamma: 0.3,
  }),
  sglangCase('sglang:gumbel, window 4', {}),
  sglangCase('sglang:gumbel, window 1', { contextWindow: 1 }),
  sglangCase('sglang:gumbel, at most 7 contexts', { contextWindow: 2, maxContexts: 7 }),
  sglangCase('sglang:dual_key_gumbel, window 3', {
    keyB: 0xfedcba9876543210n,
    mixingProbability: 0.3,
    contextWindow: 3,
  }),
  synthidCase('synthid:tournament, power-of-two table', {}),
  synthidCase('synthid:tournament, 1000-entry table, EOS', {
    ngramLen: 3,
    samplingTableSize: 1000,
    samplingTableSeed: 5n,
    eosTokenId: 3,
  }),
  synthidCase('synthid:tournament, bigram, 64-entry table', { ngramLen: 2, samplingTableSize: 64 }),
];

/** Lengths 0, 1, short and long; ids from a small vocabulary so contexts and units repeat, within and across. */
function sequences(seed: number): number[][] {
  const rng = createRandom(seed);
  const out: number[][] = [];
  for (const length of [0, 1, 2, 3, 4, 5, 7, 12, 30, 80, 300, 2500]) {
    for (const vocabulary of [2, 5, 40, 400]) {
      out.push(Array.from({ length }, () => rng.nextUint32() % vocabulary));
    }
  }
  // Repeats of earlier sequences and of their prefixes: units seen in another document.
  out.push(out[out.length - 2]!.slice(0, 100), out[out.length - 5]!, [...out[out.length - 4]!].reverse());
  return out;
}

/** The keys a packing spells, in order. */
function decoded(c: Case, words: Uint32Array): string[] {
  const width = c.scorer.unitWidth!;
  expect(words.length % width).toBe(0);
  return Array.from({ length: words.length / width }, (_, i) => c.decode(words, width * i));
}

/** Doubles as their bit patterns: equal only when identical. */
const bits = (values: Float64Array): bigint[] =>
  Array.from(new BigUint64Array(Float64Array.from(values).buffer));

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** What identifies an error: its class, name, message, and an InputError's code and field. */
function described(error: unknown): unknown {
  const e = error as InputError;
  return { input: e instanceof InputError, name: e.name, message: e.message, code: e.code, field: e.field };
}

describe('packedUnits: the units of units(), as words', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s: same units, order and values', (_, c) => {
    const { scorer } = c;
    const width = scorer.unitWidth!;
    expect(Number.isInteger(width) && width >= 1 && width <= 16).toBe(true);
    let units = 0;
    for (const ids of sequences(7)) {
      const expected = scorer.units!(ids);
      for (const given of [ids, Uint32Array.from(ids)]) {
        const packed = scorer.packedUnits!(given);
        expect(packed.prompt).toBeNull();
        expect(decoded(c, packed.completion.words)).toEqual(expected.keys);
        expect(bits(packed.completion.values)).toEqual(bits(expected.values));
      }
      units += expected.keys.length;
    }
    expect(units).toBeGreaterThan(150);
  });

  it.each(CASES.map((c) => [c.name, c] as const))(
    '%s: units are equal in words exactly when their keys are, across documents',
    (_, c) => {
      const { scorer } = c;
      const width = scorer.unitWidth!;
      const wordsOfKey = new Map<string, string>();
      const keyOfWords = new Map<string, string>();
      const conflicts: string[] = [];
      let repeats = 0;
      for (const ids of sequences(11)) {
        const keys = scorer.units!(ids).keys;
        const { words } = scorer.packedUnits!(ids).completion;
        keys.forEach((key, i) => {
          const packed = words.subarray(width * i, width * (i + 1)).join(' ');
          const earlier = wordsOfKey.get(key);
          if (earlier === undefined) wordsOfKey.set(key, packed);
          else {
            repeats++;
            if (earlier !== packed) conflicts.push(`${key}: ${earlier} and ${packed}`);
          }
          const other = keyOfWords.get(packed);
          if (other === undefined) keyOfWords.set(packed, key);
          else if (other !== key) conflicts.push(`${packed}: ${other} and ${key}`);
        });
      }
      expect(conflicts).toEqual([]);
      expect(repeats).toBeGreaterThan(20);
      expect(keyOfWords.size).toBe(wordsOfKey.size);
    },
  );

  it.each(CASES.map((c) => [c.name, c] as const))("%s: a prompt's units are units(prompt) packed", (_, c) => {
    const { scorer } = c;
    const all = sequences(13);
    for (let i = 0; i + 1 < all.length; i++) {
      const ids = all[i + 1]!;
      const prompt = all[i]!;
      const alone = scorer.packedUnits!(ids);
      const withPrompt = scorer.packedUnits!(ids, prompt);
      expect(decoded(c, withPrompt.completion.words)).toEqual(decoded(c, alone.completion.words));
      expect(bits(withPrompt.completion.values)).toEqual(bits(alone.completion.values));
      if (prompt.length === 0) expect(withPrompt.prompt).toBeNull();
      else expect(decoded(c, withPrompt.prompt!)).toEqual(scorer.units!(prompt).keys);
    }
    expect(scorer.packedUnits!([1, 2, 3], []).prompt).toBeNull();
    expect(scorer.packedUnits!([1, 2, 3], undefined).prompt).toBeNull();
  });
});

describe('packedUnits: sbw seeds', () => {
  it('selfhash takes the least seed over whole 64-bit products, where their high words tie', () => {
    // Ids whose hash is small and positive: with key 1 every product is below 2^32, its high word 0.
    const ids = [11172, 84744, 169489, 307233, 339702, 352026];
    for (const id of ids) expect(sbwHashInt(id)).toBeGreaterThan(0);
    expect(Math.max(...ids.map(sbwHashInt))).toBeLessThan(2 ** 15);
    const rng = createRandom(5);
    for (const contextWidth of [2, 3]) {
      const scorer = createVllmKeyScorer(
        createVllmWatermarkKey({ scheme: 'sbw', engineKey: 1n, contextWidth }),
        1e-3,
      );
      const c: Case = { name: 'sbw key 1', scorer, decode: seedAndToken };
      for (let round = 0; round < 20; round++) {
        const sequence = Array.from({ length: 40 }, () => ids[rng.nextUint32() % ids.length]!);
        const expected = scorer.units(sequence);
        const packed = scorer.packedUnits!(sequence).completion;
        expect(decoded(c, packed.words)).toEqual(expected.keys);
        expect(bits(packed.values)).toEqual(bits(expected.values));
      }
    }
  });
});

describe('packedUnits: bad token ids', () => {
  const bad: readonly (readonly number[])[] = [
    [1, 2, -1],
    [0, 1.5, 2],
    [3, Number.NaN],
    [1, 2, 3, 4, 5, 2 ** 31],
    [1, 2, 3, 4, 5, 6, 2 ** 32],
  ];
  it.each(CASES.map((c) => [c.name, c] as const))('%s: the error units() throws', (_, c) => {
    const { scorer } = c;
    for (const ids of bad) {
      if (c.name.startsWith('sglang') && ids.includes(2 ** 31)) continue; // SGLang takes 32-bit ids
      const expected = described(thrown(() => scorer.units!(ids)));
      expect(described(thrown(() => scorer.packedUnits!(ids))), `${ids}`).toEqual(expected);
      expect(described(thrown(() => scorer.packedUnits!([1, 2, 3, 4], ids))), `prompt ${ids}`).toEqual(
        expected,
      );
      // The completion's error comes first.
      expect(described(thrown(() => scorer.packedUnits!(ids, [1, 2, -5])))).toEqual(expected);
    }
    expect(described(thrown(() => scorer.packedUnits!(null as unknown as number[])))).toEqual(
      described(thrown(() => scorer.units!(null as unknown as number[]))),
    );
  });

  it('ids beyond a vocabulary the key names', () => {
    const sglang = sglangKeyType.createScorer(
      createSglangWatermarkKey({
        scheme: 'gumbel',
        engineKey: 7n,
        tokenizer: 'test/model',
        vocabSize: 50,
      }),
      1e-3,
    );
    const synthid = synthidKeyType.createScorer(
      createSynthidWatermarkKey({ keys: [1n, 2n], ngramLen: 3, tokenizer: 'test/model', vocabSize: 100 }),
      1e-3,
    );
    for (const [scorer, ids] of [
      [sglang, [1, 2, 3, 4, 5, 50]],
      [synthid, [1, 2, 100]],
    ] as const) {
      const error = thrown(() => scorer.packedUnits!(ids));
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).code).toBe('TM_ERR_INVALID_TOKENS');
      expect(described(error)).toEqual(described(thrown(() => scorer.units!(ids))));
    }
  });
});

describe('packedUnits: which scorers pack', () => {
  it('vLLM keys whose context does not fit 16 words have units but no packedUnits (sbw packs its seed)', () => {
    const wide = createVllmKeyScorer(
      createVllmWatermarkKey({ scheme: 'gumbel', engineKey: VLLM_KEY, contextWidth: 16 }),
      1e-3,
    );
    expect(wide.units([1, 2, 3]).keys.length).toBe(3);
    expect(wide.packedUnits).toBeUndefined();
    expect(wide.unitWidth).toBeUndefined();
    expect('unitWidth' in wide).toBe(false);
    const widths = CASES.map((c) => [c.name, c.scorer.unitWidth]);
    expect(Object.fromEntries(widths)).toMatchObject({
      'vllm:gumbel philox, width 4': 5,
      'vllm:gumbel philox, width 15 (the widest that packs)': 16,
      'vllm:sbw selfhash, width 20': 3,
      'sglang:gumbel, window 4': 2,
      'synthid:tournament, power-of-two table': 1,
      'synthid:tournament, 1000-entry table, EOS': 2,
    });
  });
});

describe('tailLowerBound', () => {
  it('dual_key_gumbel: never above the exact tail; the other schemes have none', () => {
    const random = createRandom(41);
    for (const alpha of [0.1, 0.3, 0.5, 0.8]) {
      const scorer = createVllmKeyScorer(
        createVllmWatermarkKey({ engineKey: VLLM_KEY, scheme: 'dual_key_gumbel', contextWidth: 2, alpha }),
        1e-3,
      );
      for (let i = 0; i < 60; i++) {
        const count = 1 + Math.floor(random.nextFloat() * 800);
        const score = count * 2.5 * random.nextFloat();
        expect(scorer.tailLowerBound!(score, count)).toBeLessThanOrEqual(scorer.tail(score, count) + 1e-9);
      }
      expect(scorer.tailLowerBound!(0, 10)).toBe(0);
      expect(scorer.tailLowerBound!(5, 0)).toBe(0);
    }
    for (const scheme of ['gumbel', 'red_green', 'sbw'] as const) {
      const key = createVllmWatermarkKey({
        engineKey: scheme === 'sbw' ? SBW_KEY : VLLM_KEY,
        scheme,
        contextWidth: 2,
        ...(scheme === 'gumbel' ? {} : { gamma: 0.25 }),
      });
      expect(createVllmKeyScorer(key, 1e-3).tailLowerBound).toBeUndefined();
    }
  });
});
