import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRandom } from '../random.ts';
import { philox4x32 } from './philox.ts';
import {
  createVllmDetector,
  deriveVllmKey,
  sbwHashInt,
  sbwSeed,
  sbwSeedHalvesInto,
  sbwWord,
  type VllmKey,
  vllmHmacWord,
  vllmPhiloxWord,
  vllmRedGreenCount,
  vllmUniform,
} from './vllm.ts';

/** Vectors from vLLM's own code, run on CPU by packages/core/reference/foreign/vllm_vectors.py. */
const path = new URL('../../test/vectors/foreign/vllm.json', import.meta.url);
const vectors = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;

// biome-ignore lint/suspicious/noExplicitAny: JSON vectors
type Json = any;

function closeness(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-6);
}

function keyOf(c: Json, detectionKey: string): VllmKey {
  const key: VllmKey = { scheme: c.scheme, engineKey: BigInt(detectionKey), contextWidth: c.contextWidth };
  if (c.scheme !== 'sbw') key.prf = c.prf;
  if (c.scheme === 'dual_key_gumbel') key.alpha = c.alpha;
  if (c.scheme === 'red_green' || c.scheme === 'sbw') key.gamma = c.gamma;
  if (c.scheme === 'sbw') key.sbwScheme = c.sbwScheme;
  return key;
}

describe('vLLM vectors are present', () => {
  it('vllm.json exists and covers every scheme and PRF', () => {
    expect(vectors).not.toBeNull();
    const combos = new Set(vectors.cases.map((c: Json) => `${c.scheme}/${c.prf}`));
    for (const combo of [
      'gumbel/philox',
      'gumbel/hmac-sha256-v1',
      'dual_key_gumbel/philox',
      'dual_key_gumbel/hmac-sha256-v1',
      'red_green/philox',
      'red_green/hmac-sha256-v1',
      'sbw/sbw-philox',
    ]) {
      expect(combos.has(combo), combo).toBe(true);
    }
  });
});

describe('PRFs, bit for bit', () => {
  it('Philox4x32-10 matches the Random123 known answers (as run through vLLM)', () => {
    for (const c of vectors.prf.philoxKnownAnswers) {
      expect(Array.from(philox4x32(c.counter, c.key))).toEqual(c.words);
    }
  });

  it('philox PRF words and float32 uniforms, streams included', () => {
    let count = 0;
    for (const c of vectors.prf.philox) {
      c.tokens.forEach((token: number, i: number) => {
        const word = vllmPhiloxWord(BigInt(c.key), c.context, token, BigInt(c.stream));
        expect(word, JSON.stringify({ ...c, token })).toBe(c.words[i]);
        if (c.uniforms) expect(vllmUniform(word)).toBe(c.uniforms[i]);
        count++;
      });
    }
    expect(count).toBeGreaterThan(500);
  });

  it('hmac-sha256-v1 PRF words and uniforms, keys up to 2^256 − 1', () => {
    for (const c of vectors.prf.hmac) {
      c.tokens.forEach((token: number, i: number) => {
        const word = vllmHmacWord(BigInt(c.key), c.context, token);
        expect(word).toBe(c.words[i]);
        expect(vllmUniform(word)).toBe(c.uniforms[i]);
      });
    }
  });

  it('dual-key derivation', () => {
    for (const c of vectors.prf.keyDerivation) {
      expect(deriveVllmKey(BigInt(c.key), 'key_a')).toBe(BigInt(c.keyA));
      expect(deriveVllmKey(BigInt(c.key), 'key_b')).toBe(BigInt(c.keyB));
    }
  });

  it('sbw integer hash and Philox words', () => {
    for (const c of vectors.prf.sbwHash) expect(sbwHashInt(c.x)).toBe(c.hash);
    for (const c of vectors.prf.sbwWords) {
      c.tokens.forEach((token: number, i: number) => {
        expect(sbwWord(BigInt(c.seed), token)).toBe(c.words[i]);
      });
    }
  });

  it('red_green green counts over all 2^24 uniforms (vLLM compares in float32)', () => {
    for (const [gamma, count] of Object.entries(vectors.redGreenGreenCounts)) {
      expect(vllmRedGreenCount(Number(gamma)), gamma).toBe(count);
    }
  });
});

describe('per-token scores and detections reproduce vLLM', () => {
  for (const c of vectors?.cases ?? []) {
    it(`${c.name} (${c.shipped})`, () => {
      for (const d of c.detections) {
        const detector = createVllmDetector(keyOf(c, d.detectionKey));
        const detection = detector.detect(c.tokens, { dedup: d.dedup ? 'context' : 'none' });
        const label = `${c.name} key=${d.detectionKey} dedup=${d.dedup}`;
        expect(detection.numScored, label).toBe(d.numScored);
        expect(Array.from(detection.positions), label).toEqual(d.positions);
        if (d.numScored === 0) continue;

        const all = d.scores ? detector.scoreTokens(c.tokens) : [];
        (d.scores ? d.positions : []).forEach((position: number, i: number) => {
          const t = all[position]!;
          if (c.scheme === 'dual_key_gumbel') {
            expect(t.words).toEqual([d.wordsA[i], d.wordsB[i]]);
            expect(t.uniforms).toEqual([d.uniformsA[i], d.uniformsB[i]]);
          } else {
            expect(t.words[0], `${label} #${i}`).toBe(d.words[i]);
            if (c.scheme === 'sbw') expect(t.seed).toBe(BigInt(d.seeds[i]));
            else expect(t.uniforms[0]).toBe(d.uniforms[i]);
          }
          expect(Math.abs(t.score - d.scores[i])).toBeLessThanOrEqual(
            1e-12 * Math.max(1, Math.abs(d.scores[i])),
          );
        });

        expect(Math.abs(detection.score - d.score)).toBeLessThanOrEqual(
          1e-12 * Math.max(1, Math.abs(d.score)),
        );
        // vLLM's own p-value, where its double is finite and above 1e-300: to 1e-9 relative
        if (d.pValue > 1e-300) {
          const ratio = 10 ** (detection.peerLog10PValue - Math.log10(d.pValue));
          expect(Math.abs(ratio - 1), `${label} peer p`).toBeLessThan(1e-9);
        } else {
          expect(d.pValue, label).toBe(0);
          expect(d.exactLog10).toBeLessThan(-300);
        }
        // mpmath, everywhere, including where vLLM underflows to 0
        expect(
          closeness(detection.peerLog10PValue, d.peerFormulaLog10),
          `${label} peer formula`,
        ).toBeLessThan(1e-9);
        expect(closeness(detection.log10PValue, d.exactLog10), `${label} exact`).toBeLessThan(1e-9);
      }
    });
  }
});

describe('findings the vectors pin down', () => {
  it('every scheme has a case where vLLM underflows to p = 0 and our log10 p is finite', () => {
    const underflows = vectors.cases.filter((c: Json) => c.detections.some((d: Json) => d.pValue === 0));
    expect(new Set(underflows.map((c: Json) => c.scheme))).toEqual(
      new Set(['gumbel', 'dual_key_gumbel', 'red_green', 'sbw']),
    );
    for (const c of underflows) {
      const d = c.detections[0];
      const detection = createVllmDetector(keyOf(c, d.detectionKey)).detect(c.tokens);
      expect(Number.isFinite(detection.log10PValue)).toBe(true);
      expect(detection.log10PValue).toBeLessThan(-308);
    }
  });

  it("sbw lefthash: vLLM's generator seeds with key·Σ context, its detector with key·Σ h(context)", () => {
    for (const c of vectors.cases.filter((x: Json) => x.scheme === 'sbw')) {
      for (const d of c.detections) {
        if (!d.generatorGreens) continue;
        const generator = createVllmDetector({ ...keyOf(c, d.detectionKey), sbwLefthashSeeds: 'generator' });
        const all = generator.scoreTokens(c.tokens);
        const greens = d.positions.map((position: number) => all[position]!.score);
        expect(greens).toEqual(d.generatorGreens);
        if (c.sbwScheme === 'lefthash') expect(greens).not.toEqual(d.scores);
        else expect(greens).toEqual(d.scores);
      }
    }
  });

  it('the dual-key moment match is anti-conservative: vLLM reports p far smaller than the exact tail', () => {
    const c = vectors.cases.find((x: Json) => x.name === 'dual-philox-long-underflow');
    const d = c.detections[0];
    expect(d.exactLog10 - d.peerFormulaLog10).toBeGreaterThan(40);
  });
});

describe('deduplication', () => {
  it('strict ⊆ context ⊆ none, and strict drops repeated sbw (seed, token) pairs', () => {
    const tokens = [5, 6, 7, 5, 6, 8, 6, 5, 7, 9, 7, 6, 5, 8, 9, 5];
    for (const scheme of ['selfhash', 'lefthash'] as const) {
      const detector = createVllmDetector({
        scheme: 'sbw',
        engineKey: 42n,
        contextWidth: 3,
        sbwScheme: scheme,
      });
      const none = detector.detect(tokens, { dedup: 'none' }).positions;
      const context = detector.detect(tokens, { dedup: 'context' }).positions;
      const strict = detector.detect(tokens, { dedup: 'strict' }).positions;
      expect(none.length).toBe(tokens.length);
      expect(context.every((p) => none.includes(p))).toBe(true);
      expect(strict.every((p) => context.includes(p))).toBe(true);
      const all = detector.scoreTokens(tokens);
      const pairs = strict.map((p) => `${all[p]!.seed}:${all[p]!.token}`);
      expect(new Set(pairs).size).toBe(pairs.length);
    }
    // lefthash seeds depend on the multiset of the context: permuted windows collide
    const lefthash = createVllmDetector({
      scheme: 'sbw',
      engineKey: 42n,
      contextWidth: 2,
      sbwScheme: 'lefthash',
    });
    const permuted = [1, 2, 9, 2, 1, 9];
    expect(lefthash.detect(permuted, { dedup: 'context' }).numScored).toBe(6);
    expect(lefthash.detect(permuted, { dedup: 'strict' }).numScored).toBe(5);
  });

  it('a context seen before is skipped whatever token follows it (vLLM)', () => {
    const detector = createVllmDetector({ scheme: 'gumbel', engineKey: 42n, contextWidth: 1 });
    expect(detector.detect([1, 2, 1, 3]).numScored).toBe(3);
    expect(detector.detect([1, 1, 1, 1, 1]).numScored).toBe(2);
    expect(detector.detect([1, 1, 1, 1, 1], { dedup: 'none' }).numScored).toBe(5);
    expect(detector.detect([]).numScored).toBe(0);
    expect(detector.detect([]).log10PValue).toBe(0);
  });
});

describe('invalid input (vLLM raises for each; we throw RangeError naming the parameter)', () => {
  const calls: Record<string, () => unknown> = {
    'philox key 2^64': () => vllmPhiloxWord(2n ** 64n, [1], 1),
    'philox key -1': () => createVllmDetector({ scheme: 'gumbel', engineKey: -1n }),
    'hmac key 2^256': () => vllmHmacWord(2n ** 256n, [1], 1),
    'context width 0': () => createVllmDetector({ scheme: 'gumbel', engineKey: 1n, contextWidth: 0 }),
    'dual alpha 1.5': () => createVllmDetector({ scheme: 'dual_key_gumbel', engineKey: 1n, alpha: 1.5 }),
    'red_green gamma 0': () => createVllmDetector({ scheme: 'red_green', engineKey: 1n, gamma: 0 }),
    'sbw gamma 1': () => createVllmDetector({ scheme: 'sbw', engineKey: 1n, gamma: 1 }),
    'sbw key 2^63 (detect)': () => createVllmDetector({ scheme: 'sbw', engineKey: 2n ** 63n }),
    'sbw key 2^64-1 (detect)': () => createVllmDetector({ scheme: 'sbw', engineKey: 2n ** 64n - 1n }),
    'derive_watermark_key 2^64': () => deriveVllmKey(2n ** 64n, 'key_a'),
    'philox stream 2^64': () => vllmPhiloxWord(1n, [1], 1, 2n ** 64n),
  };

  it('covers every invalid vector', () => {
    for (const c of vectors.invalid) {
      expect(c.peerRaises, c.what).not.toBeNull();
      const call = calls[c.what];
      expect(call, c.what).toBeDefined();
      expect(call!, c.what).toThrow(RangeError);
    }
  });

  it('rejects bad token ids, contexts and options', () => {
    const detector = createVllmDetector({ scheme: 'gumbel', engineKey: 1n, prf: 'hmac-sha256-v1' });
    expect(() => detector.detect([1, -1])).toThrow(/tokenIds\[1\]/);
    expect(() => detector.detect([1.5])).toThrow(RangeError);
    expect(() => detector.detect([2 ** 31])).toThrow(RangeError);
    expect(() => detector.scoreToken([1, 2, 3], 4)).toThrow(/context/);
    expect(() => detector.scoreToken([-1, -1, -1, 2], -1)).toThrow(/token/);
    expect(() => detector.detect([1], { dedup: 'window' as never })).toThrow(/dedup/);
    expect(() => createVllmDetector({ scheme: 'kgw' as never, engineKey: 1n })).toThrow(/scheme/);
    expect(() => createVllmDetector({ scheme: 'gumbel', prf: 'sha1' as never, engineKey: 1n })).toThrow(
      /prf/,
    );
    expect(() => createVllmDetector({ scheme: 'gumbel', engineKey: 1 as never })).toThrow(TypeError);
    expect(() => sbwSeed(2n ** 63n, 'selfhash', [1], 2)).toThrow(/key/);
  });

  it('scoreToken agrees with scoreTokens and the detector object is frozen', () => {
    const detector = createVllmDetector({ scheme: 'dual_key_gumbel', engineKey: 7n, contextWidth: 2 });
    const tokens = [10, 11, 12, 13];
    const all = detector.scoreTokens(tokens);
    expect(detector.scoreToken([11, 12], 13).score).toBe(all[3]!.score);
    expect(detector.scoreToken([-1, -1], 10).words).toEqual(all[0]!.words);
    expect(Object.isFrozen(detector)).toBe(true);
    expect(Object.isFrozen(detector.key)).toBe(true);
    expect(detector.key.keyA).toBe(deriveVllmKey(7n, 'key_a'));
  });
});

describe('vLLM detect in 32-bit arithmetic', () => {
  it('the SBW seed as halves equals the BigInt seed (keys, contexts and hashes of every sign)', () => {
    const rng = createRandom(63);
    const halves = new Int32Array(2);
    for (let trial = 0; trial < 3000; trial++) {
      const key = ((BigInt(rng.nextUint32()) << 31n) ^ BigInt(rng.nextUint32())) % (1n << 63n);
      const width = 1 + (trial % 5);
      const context = Array.from({ length: width }, (_, i) =>
        i === 0 && trial % 7 === 0 ? -1 : rng.nextUint32() % (trial % 3 === 0 ? 2 ** 31 : 200_000),
      );
      const token = rng.nextUint32() % 2 ** 31;
      for (const [scheme, seeds] of [
        ['selfhash', 'detector'],
        ['lefthash', 'detector'],
        ['lefthash', 'generator'],
      ] as const) {
        const expected = BigInt.asUintN(64, sbwSeed(key, scheme, context, token, seeds));
        const unsigned = BigInt.asUintN(64, key);
        sbwSeedHalvesInto(
          halves,
          Number(unsigned >> 32n) | 0,
          Number(unsigned & 0xffffffffn) | 0,
          scheme,
          context,
          token,
          seeds,
        );
        const got = (BigInt(halves[0]! >>> 0) << 32n) | BigInt(halves[1]! >>> 0);
        expect(got, `${scheme} ${seeds} trial ${trial}`).toBe(expected);
      }
    }
  });

  it('detect equals its sums over scoreTokens, for every scheme and dedup', () => {
    const rng = createRandom(64);
    const keys: VllmKey[] = [
      { scheme: 'gumbel', engineKey: 11n, contextWidth: 2 },
      { scheme: 'red_green', engineKey: 12n, contextWidth: 1 },
      { scheme: 'dual_key_gumbel', engineKey: 13n, contextWidth: 2 },
      { scheme: 'sbw', engineKey: 14n, contextWidth: 3 },
      { scheme: 'sbw', engineKey: 15n, sbwScheme: 'lefthash' },
    ];
    for (const key of keys) {
      const detector = createVllmDetector(key);
      // a vocabulary of 6 repeats contexts and (seed, token) pairs
      const tokens = Array.from({ length: 400 }, () => rng.nextUint32() % 6);
      const records = detector.scoreTokens(tokens);
      for (const dedup of ['none', 'context', 'strict'] as const) {
        const contexts = new Set<string>();
        const seeds = new Set<string>();
        const positions: number[] = [];
        let total = 0;
        for (const record of records) {
          if (dedup !== 'none') {
            if (contexts.has(record.context.join(','))) continue;
            contexts.add(record.context.join(','));
          }
          if (dedup === 'strict' && record.seed !== null) {
            if (seeds.has(`${record.seed}:${record.token}`)) continue;
            seeds.add(`${record.seed}:${record.token}`);
          }
          positions.push(record.position);
          total += record.score;
        }
        const detection = detector.detect(tokens, { dedup });
        expect(detection.positions, `${key.scheme} ${dedup}`).toEqual(positions);
        expect(detection.score).toBe(total);
      }
    }
  });
});

describe('vLLM strictUnits', () => {
  /** The words the doc states for a record: the context (−1 as 0xFFFFFFFF) and token, or sbw's seed halves and token. */
  const wordsOf = (record: ReturnType<ReturnType<typeof createVllmDetector>['scoreToken']>): number[] => {
    if (record.seed === null) return [...record.context, record.token].map((id) => id >>> 0);
    const seed = BigInt.asUintN(64, record.seed);
    return [Number(seed >> 32n), Number(seed & 0xffffffffn), record.token];
  };

  it("is detect(strict)'s positions and scores, bit for bit, with each unit's words (every scheme and PRF)", () => {
    const rng = createRandom(65);
    const keys: VllmKey[] = [];
    for (const prf of ['philox', 'hmac-sha256-v1'] as const) {
      keys.push(
        { scheme: 'gumbel', engineKey: 21n, prf, contextWidth: 2 },
        { scheme: 'gumbel', engineKey: 22n, prf, contextWidth: 5 },
        { scheme: 'dual_key_gumbel', engineKey: 23n, prf, contextWidth: 3, alpha: 0.3 },
        { scheme: 'red_green', engineKey: 24n, prf, contextWidth: 1, gamma: 0.4 },
      );
    }
    keys.push(
      { scheme: 'sbw', engineKey: 25n, contextWidth: 3 },
      { scheme: 'sbw', engineKey: 26n, sbwScheme: 'lefthash', contextWidth: 2 },
      {
        scheme: 'sbw',
        engineKey: 27n,
        sbwScheme: 'lefthash',
        sbwLefthashSeeds: 'generator',
        contextWidth: 3,
      },
    );
    // positions strict dedup skips: repeated contexts, and for sbw repeated (seed, token) pairs too
    let skipped = 0;
    let sbwSkipped = 0;
    for (const key of keys) {
      const detector = createVllmDetector(key);
      const name = `${key.scheme} ${key.prf ?? ''} ${key.sbwScheme ?? ''} ${key.contextWidth}`;
      for (const [length, vocabulary] of [
        [0, 2],
        [1, 2],
        [3, 2],
        [300, 4],
        [300, 6],
        [200, 2 ** 31],
      ]) {
        const tokens = Array.from({ length: length! }, () => rng.nextUint32() % vocabulary!);
        const units = detector.strictUnits(tokens);
        const detection = detector.detect(tokens, { dedup: 'strict' });
        const width = key.scheme === 'sbw' ? 3 : key.contextWidth! + 1;
        expect(units.unitWidth, name).toBe(width);
        expect(Array.from(units.positions), name).toEqual(detection.positions);
        skipped += length! - units.positions.length;
        if (key.scheme === 'sbw') {
          sbwSkipped += detector.detect(tokens, { dedup: 'context' }).numScored - units.positions.length;
        }
        let total = 0;
        for (const value of units.values) total += value;
        expect(total, name).toBe(detection.score);
        // each unit is its position's record: the same score and the words the doc states
        const records = detector.scoreTokens(tokens);
        expect(units.words.length).toBe(width * units.positions.length);
        units.positions.forEach((position, i) => {
          expect(units.values[i], name).toBe(records[position]!.score);
          expect(Array.from(units.words.subarray(width * i, width * (i + 1))), name).toEqual(
            wordsOf(records[position]!),
          );
        });
      }
    }
    expect(skipped).toBeGreaterThan(500);
    expect(sbwSkipped).toBeGreaterThan(10);
  });

  it('refuses the ids detect refuses', () => {
    const detector = createVllmDetector({ scheme: 'sbw', engineKey: 1n });
    expect(() => detector.strictUnits([1, -1])).toThrow(/tokenIds\[1\]/);
    expect(() => detector.strictUnits([2 ** 31])).toThrow(RangeError);
    expect(() => detector.strictUnits(null as unknown as number[])).toThrow(TypeError);
  });
});
