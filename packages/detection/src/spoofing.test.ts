import {
  createNgramCounts,
  createRandom,
  createWatermarker,
  createWatermarkKey,
  type NgramCounts,
  spoofTest,
  type WatermarkKey,
} from '@tracemark/core';
import { getTokenizer } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import {
  createSpoofingChecker,
  SPOOF_TEST_ALPHA,
  SPOOF_TEST_MAX_TOKENS,
  SPOOF_TEST_NAME,
  type SpoofingCheckerOptions,
  spoofTestApplies,
} from './spoofing.ts';
import { createVllmWatermarkKey } from './vllm-keys.ts';

const tokenizer = getTokenizer('cl100k_base');
const LEARNABILITY = 'bigram counts of the test corpus';
const keyOf = (name: 'lefthash' | 'selfhash' | 'gumbel', contextWidth: number, fill = 5): WatermarkKey =>
  createWatermarkKey({ secret: new Uint8Array(32).fill(fill), scheme: { name, contextWidth } });
const lefthash1 = keyOf('lefthash', 1);

/**
 * Tokens whose odd positions are green under `key` and on pairs the reference counts often, and whose
 * even positions are red and on pairs it never saw (`forged`); or the other way round (green only on
 * unseen pairs). Returns the tokens and the reference corpus that makes those pairs common.
 */
function placedMark(key: WatermarkKey, forged: boolean, length: number, seed: number) {
  const random = createRandom(seed);
  const watermarker = createWatermarker(key);
  const randomToken = () => 1000 + (random.nextUint32() % 20_000);
  const tokens: number[] = Array.from({ length: key.scheme.contextWidth }, randomToken);
  const reference: number[][] = [];
  while (tokens.length < length) {
    const common = tokens.length % 2 === 1;
    const wantGreen = common === forged ? 1 : 0;
    const green = watermarker.candidateTester(tokens);
    let token = randomToken();
    while (green(token) !== wantGreen) token = randomToken();
    if (common) for (let i = 0; i < 5; i++) reference.push([tokens.at(-1)!, token]);
    tokens.push(token);
  }
  return { tokens, bigrams: createNgramCounts(reference, 2) };
}

const optionsFor = (table: NgramCounts, calls = { count: 0 }): SpoofingCheckerOptions => ({
  bigrams: async () => {
    calls.count++;
    return table;
  },
  learnability: LEARNABILITY,
});

describe('spoofTestApplies', () => {
  it.each([
    ['LeftHash(1)', keyOf('lefthash', 1), true],
    ['LeftHash(2)', keyOf('lefthash', 2), true],
    ['SelfHash(2)', keyOf('selfhash', 2), true],
    ['LeftHash(4): no power there', keyOf('lefthash', 4), false],
    ['Gumbel: no green lists', keyOf('gumbel', 1), false],
    [
      "an engine's key",
      createVllmWatermarkKey({ scheme: 'red_green', engineKey: 1n, contextWidth: 1 }),
      false,
    ],
  ])('%s → %s', (_name, key, applies) => {
    expect(spoofTestApplies(key)).toBe(applies);
    expect(spoofTestApplies(key, 100)).toBe(applies);
  });

  it('takes texts of 1 to SPOOF_TEST_MAX_TOKENS tokens', () => {
    expect(spoofTestApplies(lefthash1, 0)).toBe(false);
    expect(spoofTestApplies(lefthash1, 1)).toBe(true);
    expect(spoofTestApplies(lefthash1, SPOOF_TEST_MAX_TOKENS)).toBe(true);
    expect(spoofTestApplies(lefthash1, SPOOF_TEST_MAX_TOKENS + 1)).toBe(false);
  });
});

describe('createSpoofingChecker', () => {
  it("gives core spoofTest's numbers with the injected table, for text, token ids and a prompt", async () => {
    const text =
      'The committee met on Tuesday and said that the budget for the coming year would be set in March, after the hearings.';
    const prompt = 'Minutes of the meeting:';
    const ids = tokenizer.encodeFast(text);
    const table = createNgramCounts(
      [tokenizer.encodeFast(`${prompt} ${text} The committee said that the year`)],
      2,
    );
    const checker = createSpoofingChecker(tokenizer, optionsFor(table));
    const expected = spoofTest(
      ids,
      createWatermarker(lefthash1),
      (tokens, index) => table.count(tokens, index),
      {
        prompt: tokenizer.encodeFast(prompt),
      },
    );
    const result = await checker.check(lefthash1, { text, prompt });
    expect(result).toEqual({
      test: SPOOF_TEST_NAME,
      learnability: LEARNABILITY,
      keyId: lefthash1.keyId,
      numScored: expected.numScored,
      commonMarkedShare: expected.common.numMarked / expected.common.numScored,
      rareMarkedShare: expected.rare.numMarked / expected.rare.numScored,
      log10P: expected.log10P,
      alpha: SPOOF_TEST_ALPHA,
      flagged: expected.log10P <= Math.log10(SPOOF_TEST_ALPHA),
    });
    // Token ids in place of the text (a plain array or typed), the prompt as ids: the same numbers.
    expect(
      await checker.check(lefthash1, {
        tokens: Array.from(ids),
        prompt: Array.from(tokenizer.encodeFast(prompt)),
      }),
    ).toEqual(result);
    expect(await checker.check(lefthash1, { text: 'ignored', tokens: ids, prompt })).toEqual(result);
    // Without the prompt its pairs are scored: other numbers.
    const unprompted = await checker.check(lefthash1, { text });
    const plain = spoofTest(ids, createWatermarker(lefthash1), (tokens, index) => table.count(tokens, index));
    expect(unprompted?.log10P).toBe(plain.log10P);
    expect(unprompted?.numScored).toBe(plain.numScored);
  });

  it('flags a mark placed on common pairs, and not one placed on rare pairs; the flag is p ≤ α', async () => {
    for (const key of [keyOf('lefthash', 1), keyOf('lefthash', 2, 9)]) {
      const forged = placedMark(key, true, 301, 3);
      const flagged = await createSpoofingChecker(tokenizer, optionsFor(forged.bigrams)).check(key, {
        tokens: forged.tokens,
      });
      expect(flagged).toMatchObject({ flagged: true, commonMarkedShare: 1, rareMarkedShare: 0 });
      expect(flagged!.log10P).toBeLessThan(-50);
      const genuine = placedMark(key, false, 301, 4);
      const passed = await createSpoofingChecker(tokenizer, optionsFor(genuine.bigrams)).check(key, {
        tokens: genuine.tokens,
      });
      expect(passed).toMatchObject({ flagged: false, commonMarkedShare: 0, rareMarkedShare: 1, log10P: 0 });
    }
  });

  it('returns null without building the table where the test does not apply', async () => {
    const calls = { count: 0 };
    const checker = createSpoofingChecker(tokenizer, optionsFor(createNgramCounts([[1, 2]], 2), calls));
    const text = 'A text of a few tokens.';
    expect(await checker.check(keyOf('gumbel', 1), { text })).toBeNull();
    expect(await checker.check(keyOf('lefthash', 3), { text })).toBeNull();
    expect(
      await checker.check(createVllmWatermarkKey({ scheme: 'red_green', engineKey: 7n, contextWidth: 1 }), {
        text,
      }),
    ).toBeNull();
    expect(await checker.check(lefthash1, { text: '' })).toBeNull();
    expect(await checker.check(lefthash1, {})).toBeNull();
    expect(
      await checker.check(lefthash1, { tokens: new Uint32Array(SPOOF_TEST_MAX_TOKENS + 1).fill(1000) }),
    ).toBeNull();
    expect(calls.count).toBe(0);
    expect(
      await checker.check(lefthash1, { tokens: new Uint32Array(SPOOF_TEST_MAX_TOKENS).fill(1000) }),
    ).not.toBeNull();
    expect(calls.count).toBe(1);
  });

  it('builds the table once for concurrent checks; a failed build is tried again', async () => {
    const table = createNgramCounts([tokenizer.encodeFast('one two three four')], 2);
    let calls = 0;
    const checker = createSpoofingChecker(tokenizer, {
      bigrams: async () => {
        calls++;
        if (calls === 1) throw new Error('corpus unreadable');
        return table;
      },
      learnability: LEARNABILITY,
    });
    await expect(checker.check(lefthash1, { text: 'one two three' })).rejects.toThrow('corpus unreadable');
    const results = await Promise.all(
      [1, 2, 3].map(() => checker.check(lefthash1, { text: 'one two three' })),
    );
    expect(calls).toBe(2);
    expect(results[0]).not.toBeNull();
    expect(results[1]).toEqual(results[0]);
  });

  it('rejects a table of another order and bad options, naming the parameter', async () => {
    const unigrams = createNgramCounts([[1, 2, 3]], 1);
    await expect(
      createSpoofingChecker(tokenizer, optionsFor(unigrams)).check(lefthash1, { text: 'one two' }),
    ).rejects.toThrow(/options\.bigrams: expected counts of order 2/);
    expect(() =>
      createSpoofingChecker(tokenizer, { learnability: LEARNABILITY } as unknown as SpoofingCheckerOptions),
    ).toThrow(/options\.bigrams/);
    expect(() =>
      createSpoofingChecker(tokenizer, { bigrams: async () => unigrams, learnability: '' }),
    ).toThrow(/options\.learnability/);
  });
});
