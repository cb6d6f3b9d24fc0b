import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRandom } from '../random.ts';
import { logGammaSf } from './gamma-tail.ts';
import {
  createSglangDetector,
  formatSglangKey,
  parseSglangKey,
  type SglangKey,
  sglangContextHash,
  sglangGumbelSample,
  sglangKeyCoin,
  sglangLogUniformFloat32,
  sglangMixingThreshold,
  sglangTokenHash,
  sglangUniform,
} from './sglang.ts';

/** Vectors from SGLang's own code, run on CPU by packages/core/reference/foreign/sglang_vectors.py. */
const vectors = JSON.parse(
  readFileSync(new URL('../../test/vectors/foreign/sglang.json', import.meta.url), 'utf8'),
);

// biome-ignore lint/suspicious/noExplicitAny: JSON vectors
type Json = any;

function relative(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-300);
}

function keyOf(c: Json, overrides: Partial<SglangKey> = {}): SglangKey {
  return {
    engineKey: BigInt(c.key),
    ...(c.keyB === undefined ? {} : { keyB: BigInt(c.keyB), mixingProbability: c.mixingProbability ?? 0.5 }),
    contextWindow: c.window,
    maxContexts: c.maxContexts ?? 4096,
    ...overrides,
  };
}

describe('SGLang keys', () => {
  it('parses every key text SGLang accepts to the same 64-bit value', () => {
    expect(vectors.keys.valid.length).toBeGreaterThan(5);
    for (const row of vectors.keys.valid) {
      expect(parseSglangKey(row.text)).toBe(BigInt(row.unsigned));
      expect(parseSglangKey(formatSglangKey(BigInt(row.unsigned)))).toBe(BigInt(row.unsigned));
    }
  });
  it('refuses every key text SGLang refuses, without repeating it', () => {
    for (const row of vectors.keys.invalid) {
      let message = '';
      expect(() => {
        try {
          parseSglangKey(row.text);
        } catch (error) {
          message = (error as Error).message;
          throw error;
        }
      }).toThrow(RangeError);
      if (row.text.length > 2) expect(message).not.toContain(row.text);
    }
  });
});

describe('SGLang hashes (bit for bit)', () => {
  it('context hashes', () => {
    for (const row of vectors.hashes.contexts) expect(sglangContextHash(row.context)).toBe(row.hash);
  });
  it('token hashes', () => {
    let count = 0;
    for (const row of vectors.hashes.tokens) {
      row.tokens.forEach((token: number, i: number) => {
        expect(sglangTokenHash(BigInt(row.key), row.contextHash, token)).toBe(row.hashes[i]);
        count++;
      });
    }
    expect(count).toBeGreaterThan(50);
  });
  it('dual-key coins and thresholds', () => {
    for (const row of vectors.hashes.coins) {
      expect(sglangKeyCoin(BigInt(row.keyA), BigInt(row.keyB), row.contextHash)).toBe(row.coin);
    }
    expect(sglangMixingThreshold(0.5)).toBe(2 ** 31);
    expect(sglangMixingThreshold(0.25)).toBe(2 ** 30);
  });
  it('float32 log-uniforms, uniforms and scores', () => {
    for (const row of vectors.uniforms) {
      expect(sglangLogUniformFloat32(row.hash)).toBe(row.logUniformF32);
      expect(sglangLogUniformFloat32(row.hash)).toBeLessThan(0);
      expect(sglangUniform(row.hash)).toBe(row.uniform);
      expect(relative(-Math.log1p(-sglangUniform(row.hash)), row.score)).toBeLessThan(1e-15);
    }
  });
});

describe('SGLang selector', () => {
  it('picks the token SGLang picks, one key and two', () => {
    let dual = 0;
    for (const row of vectors.selector) {
      const probs = Float64Array.from(row.probabilities as number[]);
      const params: SglangKey = {
        engineKey: BigInt(row.key),
        contextWindow: row.context.length,
        ...(row.keyB === undefined
          ? {}
          : { keyB: BigInt(row.keyB), mixingProbability: row.mixingProbability }),
      };
      if (row.keyB !== undefined) dual++;
      expect(sglangContextHash(row.context)).toBe(row.contextHash);
      expect(sglangGumbelSample(params, row.context, probs)).toBe(row.selected);
    }
    expect(dual).toBeGreaterThan(5);
  });
  it('uses only the last contextWindow ids and refuses an empty context or no support', () => {
    const probs = new Float64Array([0.2, 0.3, 0.5]);
    const params = { engineKey: 7n, contextWindow: 2 };
    expect(sglangGumbelSample(params, [9, 9, 1, 2], probs)).toBe(sglangGumbelSample(params, [1, 2], probs));
    expect(() => sglangGumbelSample(params, [], probs)).toThrow(RangeError);
    expect(() => sglangGumbelSample(params, [1], new Float64Array(3))).toThrow(RangeError);
  });
  it('samples from p (exponential race): empirical frequencies match on random keys', () => {
    const probs = new Float64Array([0.5, 0.3, 0.15, 0.05]);
    const counts = [0, 0, 0, 0];
    const trials = 4000;
    for (let i = 0; i < trials; i++) {
      counts[
        sglangGumbelSample({ engineKey: (BigInt(i) * 0x9e3779b97f4a7c15n) % (1n << 64n) }, [i], probs)
      ]!++;
    }
    counts.forEach((count, i) => {
      const p = probs[i]!;
      expect(Math.abs(count / trials - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / trials));
    });
  });
});

describe('SGLang detector against SGLang generations', () => {
  const check = (stats: Json, got: ReturnType<ReturnType<typeof createSglangDetector>['detect']>): void => {
    expect(got.numScored).toBe(stats.numContexts);
    expect(relative(got.score, stats.score)).toBeLessThan(1e-12);
    expect(relative(got.peerLog10PValue, stats.logPValue / Math.LN10)).toBeLessThan(1e-9);
    expect(relative(got.log10PValue, stats.exactLog10)).toBeLessThan(1e-9);
    expect(Number.isFinite(got.log10PValue)).toBe(true);
  };

  for (const c of vectors.cases as Json[]) {
    it(c.name, () => {
      const detector = createSglangDetector(keyOf(c));
      const withPrompt = detector.detect(c.completion, { promptIds: c.prompt });
      check(c.detections.withPrompt.combined, withPrompt);
      expect(withPrompt.tokensExamined).toBe(c.detections.withPrompt.tokensExamined);
      expect(withPrompt.repeatedContexts).toBe(c.detections.withPrompt.repeatedContexts);
      expect(withPrompt.prefixLimitReached).toBe(c.detections.withPrompt.prefixLimitReached);

      const withoutPrompt = detector.detect(c.completion);
      check(c.detections.withoutPrompt.combined, withoutPrompt);
      expect(withoutPrompt.skippedInitialTokens).toBe(c.detections.withoutPrompt.skippedInitialTokens);

      const wrong = createSglangDetector({
        engineKey: 0x5eedn,
        contextWindow: c.window,
        maxContexts: c.maxContexts ?? 4096,
      });
      check(c.detections.wrongKey.combined, wrong.detect(c.completion, { promptIds: c.prompt }));

      // The generator's own rule (a 32-bit context hash is forced once) is `strict`: with no
      // entropy gate, the positions it scores are exactly the ones SGLang forced.
      if (c.maxProbability === undefined) {
        expect(detector.detect(c.completion, { promptIds: c.prompt, dedup: 'strict' }).positions).toEqual(
          c.forced,
        );
      }
      if (c.perToken !== undefined) {
        // SGLang's per-token rows are key A's, every position, no cap.
        const keyA = createSglangDetector({ engineKey: BigInt(c.key), contextWindow: c.window });
        const all = keyA.detect(c.completion, { promptIds: c.prompt, dedup: 'none', tokens: true });
        expect(all.tokens!.length).toBe(c.perToken.length);
        const detail = all.tokens!;
        c.perToken.forEach((row: Json, i: number) => {
          expect(detail[i]!.position).toBe(row.position);
          expect(detail[i]!.contextHash).toBe(row.contextHash);
          expect(detail[i]!.hash).toBe(row.hash);
          expect(relative(detail[i]!.score, row.score)).toBeLessThan(1e-15);
        });
      }
    });
  }

  it('reaches the far tail finitely (below 1e-308) and agrees with mpmath', () => {
    const far = (vectors.cases as Json[]).filter((c) => c.detections.withPrompt.combined.exactLog10 < -400);
    expect(far.length).toBeGreaterThanOrEqual(2);
    for (const c of far) {
      const got = createSglangDetector(keyOf(c)).detect(c.completion, { promptIds: c.prompt });
      expect(got.log10PValue).toBeLessThan(-1000);
      expect(relative(got.log10PValue, c.detections.withPrompt.combined.exactLog10)).toBeLessThan(1e-9);
      // SGLang's own p_value underflows there; its log does not.
      expect(c.detections.withPrompt.combined.pValue).toBe(0);
    }
  });

  it('Gamma tail references (mpmath)', () => {
    for (const row of vectors.gammaTail) {
      expect(relative(logGammaSf(row.n, row.score) / Math.LN10, row.log10)).toBeLessThan(1e-10);
    }
  });
});

describe('SGLang detector input checks', () => {
  const secret = 0x0123456789abcdefn;
  it('ids outside the vocabulary are a RangeError that does not hold the key', () => {
    const detector = createSglangDetector({ engineKey: secret, vocabSize: 100 });
    for (const bad of [[1, 2, 100], [1, -1], [1.5], [2 ** 32]]) {
      try {
        detector.detect(bad);
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(RangeError);
        const message = (error as Error).message;
        expect(message).not.toContain(secret.toString(10));
        expect(message).not.toContain(secret.toString(16));
      }
    }
  });
  it('refuses what SGLang refuses, never echoing a key', () => {
    expect(() => createSglangDetector({ engineKey: 1n << 64n })).toThrow(/2\^64/);
    expect(() => createSglangDetector({ engineKey: -1n })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, contextWindow: 0 })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, contextWindow: 65 })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, maxContexts: 4097 })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, keyB: 2n, mixingProbability: 0 })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, keyB: 2n, mixingProbability: 1 })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, mixingProbability: 0.3 })).toThrow(RangeError);
    expect(() => createSglangDetector({ engineKey: 1n, scheme: 'dual_key_gumbel' })).toThrow(RangeError);
    expect(vectors.invalid.length).toBeGreaterThan(5);
  });
  it('an empty completion scores nothing (p = 1)', () => {
    const got = createSglangDetector({ engineKey: 5n }).detect([]);
    expect(got.numScored).toBe(0);
    expect(got.log10PValue).toBe(0);
  });
});

describe('SGLang strictUnits', () => {
  /** Neumaier's compensated sum in order, as detect sums its scores. */
  const compensated = (values: Float64Array): number => {
    let sum = 0;
    let compensation = 0;
    for (const value of values) {
      const next = sum + value;
      compensation += Math.abs(sum) >= Math.abs(value) ? sum - next + value : value - next + sum;
      sum = next;
    }
    return sum + compensation;
  };

  it("is detect(strict)'s positions and scores, with each unit's (context hash, token) (one key and two, maxContexts)", () => {
    const rng = createRandom(29);
    const keys: SglangKey[] = [
      { engineKey: 0x0123456789abcdefn },
      { engineKey: 5n, contextWindow: 1 },
      { engineKey: 7n, contextWindow: 2, maxContexts: 7 },
      { engineKey: 0x0123456789abcdefn, keyB: 0xfedcba9876543210n, mixingProbability: 0.3, contextWindow: 3 },
      { engineKey: 3n, keyB: 4n, contextWindow: 4, maxContexts: 40 },
    ];
    let capped = 0;
    let skipped = 0;
    const chosen = new Set<string>();
    for (const key of keys) {
      const detector = createSglangDetector(key);
      for (const [length, vocabulary] of [
        [0, 3],
        [2, 3],
        [300, 3],
        [300, 8],
        [300, 2 ** 32],
      ] as const) {
        const tokens = Array.from({ length }, () => rng.nextUint32() % vocabulary);
        for (const prompt of [undefined, [], [9], [1, 2, 3, 4, 5, 6]]) {
          const options = prompt === undefined ? {} : { promptIds: prompt };
          const units = detector.strictUnits(tokens, options);
          const detection = detector.detect(tokens, { ...options, dedup: 'strict', tokens: true });
          expect(units.unitWidth).toBe(2);
          expect(Array.from(units.positions)).toEqual(detection.positions);
          expect(compensated(units.values)).toBe(detection.score);
          const scored = detection.tokens!;
          expect(Array.from(units.values)).toEqual(scored.map((token) => token.score));
          expect(Array.from(units.words)).toEqual(
            scored.flatMap((token) => [token.contextHash, token.token]),
          );
          for (const token of scored) chosen.add(token.key);
          if (detection.prefixLimitReached) capped++;
          skipped += detection.repeatedContexts;
        }
      }
    }
    expect(capped).toBeGreaterThan(5);
    expect(skipped).toBeGreaterThan(500);
    expect([...chosen].sort()).toEqual(['a', 'b']);
  });

  it('skips a context whose 32-bit hash was scored before, as detect(strict) does', () => {
    // Two contexts with one hash (found by search): strict scores the first only, `context` both.
    expect(sglangContextHash([24, 2785])).toBe(sglangContextHash([44, 1572]));
    const detector = createSglangDetector({ engineKey: 11n, contextWindow: 2 });
    const tokens = [24, 2785, 7, 44, 1572, 8];
    const units = detector.strictUnits(tokens);
    expect(Array.from(units.positions)).toEqual([2, 3, 4]);
    expect(detector.detect(tokens, { dedup: 'strict' }).positions).toEqual([2, 3, 4]);
    expect(detector.detect(tokens, { dedup: 'context' }).positions).toEqual([2, 3, 4, 5]);
  });

  it('refuses the ids detect refuses', () => {
    const detector = createSglangDetector({ engineKey: 1n, vocabSize: 100 });
    expect(() => detector.strictUnits([1, 100])).toThrow(RangeError);
    expect(() => detector.strictUnits([1, 2], { promptIds: [-1] })).toThrow(/promptIds/);
  });
});
