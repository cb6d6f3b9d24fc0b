import { readFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { createRandom } from '../random.ts';
import {
  ContextHistory,
  createSynthidDetector,
  createSynthidGenerator,
  logChernoffBernoulliTail,
  type SynthidDedup,
  type SynthidParams,
  synthidAccumulateHash,
  synthidGValues,
  synthidSample,
  synthidSamplingTable,
  synthidTournamentDistribution,
  synthidWeights,
} from './synthid.ts';

interface VectorDedup {
  dedup: SynthidDedup;
  positions: number[];
  numScored: number;
  score: number;
  meanScore?: number;
  weightedMeanScore?: number;
  weightedScore?: number;
  numGValues?: number;
  binomialLog10?: number;
  weightedChernoffLog10?: number;
}
interface VectorCase {
  name: string;
  keys: string[];
  ngramLen: number;
  samplingTableSize: number;
  samplingTableSeed: string;
  contextHistorySize: number;
  skipFirstNgramCalls: boolean;
  vocabSize: number;
  generation: {
    kind: string;
    recordedSteps?: { logits: number[]; processed: number[]; token: number }[];
  };
  table: { ones: number; sha256: string };
  tokens: number[];
  detections: {
    peerMasks: { contextRepetition: number[]; eos: number[]; combined: number[] };
    gValues: string[];
    eosTokenId: number | null;
    effectiveDepth: number;
    dedups: VectorDedup[];
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../test/vectors/foreign/synthid.json', import.meta.url), 'utf8'),
) as {
  hashes: { hash: string; data: string[]; result: string }[];
  tables: { size: number; seed: string; ones: number; first64: string; sha256: string }[];
  cases: VectorCase[];
};

function paramsOf(c: VectorCase, eosTokenId: number | null = null): SynthidParams {
  return {
    keys: c.keys.map(BigInt),
    ngramLen: c.ngramLen,
    samplingTableSize: c.samplingTableSize,
    samplingTableSeed: BigInt(c.samplingTableSeed),
    contextHistorySize: c.contextHistorySize,
    skipFirstNgramCalls: c.skipFirstNgramCalls,
    vocabSize: c.vocabSize,
    eosTokenId,
  };
}

function expectLog10Close(actual: number, expected: number, label: string): void {
  expect(Math.abs(actual - expected), label).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)));
}

describe('SynthID hashing and table (transformers, run)', () => {
  it("accumulate_hash equals the peer's int64 LCG with wraparound", () => {
    for (const v of vectors.hashes) {
      expect(synthidAccumulateHash(BigInt(v.hash), v.data.map(BigInt))).toBe(BigInt(v.result));
    }
  });

  it("the sampling table equals torch's CPU randint for every size and seed", () => {
    for (const v of vectors.tables) {
      const table = synthidSamplingTable(v.size, BigInt(v.seed));
      expect(Array.from(table.slice(0, 64)).join(''), `${v.size}/${v.seed}`).toBe(v.first64);
      expect(table.reduce((a, b) => a + b, 0)).toBe(v.ones);
      expect(bytesToHex(sha256(table))).toBe(v.sha256);
    }
  });
});

describe('SynthID g-values, masks and scores (vectors)', () => {
  for (const c of vectors.cases) {
    for (const d of c.detections) {
      it(`${c.name}: g-values, masks, mean scores and exact tests`, () => {
        const detector = createSynthidDetector(paramsOf(c, d.eosTokenId));
        const scores = detector.scoreTokens(c.tokens);
        expect(scores.map((s) => s.gValues.join(''))).toEqual(d.gValues);
        expect(scores.map((s) => (s.repeatedContext ? 0 : 1))).toEqual(d.peerMasks.contextRepetition);
        expect(scores.map((s) => (s.afterEos ? 0 : 1))).toEqual(d.peerMasks.eos);
        expect(detector.nullProbability).toBe(c.table.ones / c.samplingTableSize);
        for (const v of d.dedups) {
          const detection = detector.detect(c.tokens, { dedup: v.dedup });
          expect(detection.positions, v.dedup).toEqual(v.positions);
          expect(detection.score).toBe(v.score);
          expect(detection.effectiveDepth).toBe(d.effectiveDepth);
          if (v.numScored === 0) continue;
          expect(detection.meanScore).toBeCloseTo(v.meanScore!, 12);
          expect(detection.weightedMeanScore).toBeCloseTo(v.weightedMeanScore!, 12);
          expect(detection.weightedScore).toBeCloseTo(v.weightedScore!, 9);
          expect(detection.numGValues).toBe(v.numGValues);
          expectLog10Close(detection.binomialLog10PValue, v.binomialLog10!, `${v.dedup} binomial`);
          expect(
            Math.abs(detection.weightedLog10PValue - v.weightedChernoffLog10!),
            `${v.dedup} chernoff`,
          ).toBeLessThanOrEqual(1e-8 * Math.max(1, Math.abs(v.weightedChernoffLog10!)));
          expect(detection.log10PValue).toBe(detection.binomialLog10PValue);
          expect(detection.peerLog10PValue).toBeNull();
        }
        // transformers' combined mask is the `context` rule with the EOS mask
        const context = detector.detect(c.tokens, { dedup: 'context' });
        const combined = d.peerMasks.combined.flatMap((m, i) => (m ? [i + c.ngramLen - 1] : []));
        expect(context.positions).toEqual(combined);
      });
    }
  }

  it('p-values far below 1e-308 stay finite (1500 marked tokens, 30 layers)', () => {
    const c = vectors.cases.find((x) => x.name === 'd30-n5-long')!;
    const detection = createSynthidDetector(paramsOf(c)).detect(c.tokens);
    expect(detection.log10PValue).toBeLessThan(-1000);
    expect(Number.isFinite(detection.log10PValue)).toBe(true);
  });
});

describe("SynthID tournament sampling (the processor's distribution, run)", () => {
  const withSteps = vectors.cases.filter((c) => (c.generation.recordedSteps?.length ?? 0) > 0);

  it('has recorded steps to compare', () => {
    expect(withSteps.length).toBeGreaterThanOrEqual(3);
  });

  for (const c of withSteps) {
    it(`${c.name}: each step's distribution equals softmax of the processor's output`, () => {
      const generator = createSynthidGenerator(paramsOf(c));
      for (const step of c.generation.recordedSteps!) {
        const logits = step.logits;
        const max = Math.max(...logits);
        const probs = Float64Array.from(logits, (x) => Math.exp(x - max));
        const { distribution } = generator.step(probs);
        const processed = step.processed;
        const top = Math.max(...processed);
        const peer = processed.map((x) => Math.exp(x - top));
        const peerTotal = peer.reduce((a, b) => a + b, 0);
        // the peer computes in float32
        distribution.forEach((p, v) => {
          expect(Math.abs(p - peer[v]! / peerTotal), `${c.name} token ${v}`).toBeLessThan(2e-6);
        });
        generator.accept(step.token);
      }
    });
  }

  it('the tournament keeps a distribution and favours g = 1 at layer 1', () => {
    const params: SynthidParams = { keys: [654, 400, 836], ngramLen: 3 };
    const probs = Float64Array.from({ length: 500 }, (_, i) => 1 / (i + 1));
    const q = synthidTournamentDistribution(params, [17, 4], probs);
    expect(q.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const g = synthidGValues(
      params,
      [17, 4],
      Array.from({ length: 500 }, (_, i) => i),
    );
    const total = probs.reduce((a, b) => a + b, 0);
    let before = 0;
    let after = 0;
    for (let v = 0; v < 500; v++) {
      before += g[v * 3]! * (probs[v]! / total);
      after += g[v * 3]! * q[v]!;
    }
    // layer 1 alone turns mass m into m(2 − m); later layers move it little
    expect(after).toBeGreaterThan(before);
  });

  it('sampling many tokens reproduces the tournament distribution (chi-square)', () => {
    const params: SynthidParams = { keys: [1, 2, 3, 4], ngramLen: 2 };
    const probs = Float64Array.from([0.4, 0.3, 0.2, 0.1]);
    const expected = synthidTournamentDistribution(params, [3], probs);
    const rng = createRandom(7);
    const counts = [0, 0, 0, 0];
    const draws = 20000;
    for (let i = 0; i < draws; i++) counts[synthidSample(params, [3], probs, rng)]!++;
    let chi2 = 0;
    expected.forEach((p, v) => {
      if (p > 0) chi2 += (counts[v]! - draws * p) ** 2 / (draws * p);
    });
    expect(chi2).toBeLessThan(16.3); // χ²(3) at 0.999
  });
});

describe('SynthID statistics', () => {
  it('the Chernoff bound lies above the exact binomial tail with equal weights, and close to it', async () => {
    const { logBinomialSf } = await import('../statistics.ts');
    for (const [k, n, q] of [
      [70, 100, 0.5],
      [900, 1000, 0.49],
      [30, 40, 0.3],
    ] as const) {
      const bound = logChernoffBernoulliTail([1], [n], q, k);
      const exact = logBinomialSf(k, n, q);
      expect(bound).toBeGreaterThanOrEqual(exact);
      expect(bound - exact).toBeLessThan(Math.log(10 * Math.sqrt(n)));
    }
  });

  it('weights are linspace(10, 1, depth) scaled to sum depth', () => {
    const w = synthidWeights(30);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(30, 12);
    expect(w[0]! / w[29]!).toBeCloseTo(10, 12);
    expect(synthidWeights(1)).toEqual([1]);
  });

  it('unmarked text under 20 random keys: the binomial p-values are not small', () => {
    const rng = createRandom(11);
    const tokens = Array.from({ length: 400 }, () => rng.nextUint32() % 50000);
    let small = 0;
    for (let trial = 0; trial < 20; trial++) {
      const keys = Array.from({ length: 30 }, () => rng.nextUint32() % 1000);
      const detection = createSynthidDetector({ keys, ngramLen: 5 }).detect(tokens, { dedup: 'strict' });
      if (detection.log10PValue < -2) small++;
    }
    expect(small).toBeLessThanOrEqual(2);
  });
});

describe('SynthID effective layers', () => {
  it('lists the first layer of each group of keys that read the same entries; the score sums them', () => {
    const S = 65536n;
    // Layers 2 and 4 repeat layers 0 and 1 modulo the table size; layer 3 is new.
    const keys = [123456789n, -5n, 123456789n + 7n * S, 42n, -5n - S];
    const detector = createSynthidDetector({ keys, ngramLen: 3, vocabSize: 500 });
    expect(detector.effectiveLayers).toEqual([0, 1, 3]);
    expect(Object.isFrozen(detector.effectiveLayers)).toBe(true);
    const rng = createRandom(5);
    const tokens = Array.from({ length: 300 }, () => rng.nextUint32() % 500);
    const detection = detector.detect(tokens, { dedup: 'none' });
    expect(detection.effectiveDepth).toBe(3);
    let score = 0;
    for (const position of detector.scoreTokens(tokens)) {
      for (const layer of detector.effectiveLayers) score += position.gValues[layer]!;
      // Grouped layers carry the same bits.
      expect(position.gValues[2]).toBe(position.gValues[0]);
      expect(position.gValues[4]).toBe(position.gValues[1]);
    }
    expect(detection.score).toBe(score);
    // A table size that is not a power of two groups only equal keys.
    const odd = createSynthidDetector({ keys, ngramLen: 3, samplingTableSize: 1000 });
    expect(odd.effectiveLayers).toEqual([0, 1, 2, 3, 4]);
  });
});

/** detect's sums recomputed from scoreTokens' records, as the spec states them (§6). */
function referenceTally(
  detector: ReturnType<typeof createSynthidDetector>,
  tokens: number[],
  dedup: SynthidDedup,
) {
  const contexts = new Set<string>();
  const seeds = new Set<bigint>();
  const positions: number[] = [];
  let score = 0;
  let weightedScore = 0;
  for (const s of detector.scoreTokens(tokens)) {
    if (s.afterEos || (dedup === 'context' && s.repeatedContext)) continue;
    if (dedup === 'strict') {
      const key = s.context.join(',');
      const seen = contexts.has(key);
      contexts.add(key);
      if (seen || seeds.has(s.seed)) continue;
      seeds.add(s.seed);
    }
    positions.push(s.position);
    for (const l of detector.effectiveLayers) score += s.gValues[l]!;
    s.gValues.forEach((bit, l) => {
      weightedScore += bit * detector.weights[l]!;
    });
  }
  return { positions, score, weightedScore };
}

describe('SynthID detect against the per-position records', () => {
  // Small vocabularies and n-grams repeat contexts and seeds; a table of 1000 (not a power of two)
  // keys seeds by the whole 64-bit hash; a short history makes repeats leave the window.
  const cases: [string, SynthidParams, number][] = [
    ['n-gram 2, vocabulary 7, history 3', { keys: [11, 12, 13], ngramLen: 2, contextHistorySize: 3 }, 7],
    ['n-gram 3, vocabulary 5, table 1000', { keys: [5, -9], ngramLen: 3, samplingTableSize: 1000 }, 5],
    ['n-gram 4, vocabulary 40, EOS 3', { keys: [1, 2, 3, 4], ngramLen: 4, eosTokenId: 3 }, 40],
    ['table 16: seeds collide', { keys: [77, 78], ngramLen: 2, samplingTableSize: 16 }, 300],
  ];
  for (const [name, params, vocabulary] of cases) {
    it(name, () => {
      const detector = createSynthidDetector(params);
      const rng = createRandom(vocabulary);
      for (let trial = 0; trial < 20; trial++) {
        const tokens = Array.from({ length: 50 + trial * 20 }, () => rng.nextUint32() % vocabulary);
        for (const dedup of ['none', 'context', 'strict'] as const) {
          const expected = referenceTally(detector, tokens, dedup);
          const detection = detector.detect(tokens, { dedup });
          expect(detection.positions, `${dedup} trial ${trial}`).toEqual(expected.positions);
          expect(detection.score).toBe(expected.score);
          expect(detection.weightedScore).toBe(expected.weightedScore);
        }
      }
    });
  }
});

describe('SynthID context history', () => {
  it('hashes that share a low half are told apart, in and out of the window', () => {
    const history = new ContextHistory(3);
    expect(history.seenThenPushHalves(1, 7)).toBe(false);
    expect(history.seenThenPushHalves(2, 7)).toBe(false);
    // (1, 7) is older than the latest push with low half 7, and still in the window
    expect(history.seenThenPushHalves(1, 7)).toBe(true);
    expect(history.seenThenPushHalves(3, 7)).toBe(false);
    // the window is now (2,7) (1,7) (3,7): the first (1, 7) has left it, the second not
    expect(history.seenThenPushHalves(1, 7)).toBe(true);
    expect(history.seenThenPushHalves(9, 9)).toBe(false);
    expect(history.seenThenPushHalves(8, 8)).toBe(false);
    expect(history.seenThenPushHalves(2, 7)).toBe(false);
  });

  it('zero counts as seen while the initial zeros remain; the ring grows past its first size', () => {
    const history = new ContextHistory(100);
    expect(history.seenThenPushHalves(0, 0)).toBe(true);
    for (let k = 1; k < 100; k++) expect(history.seenThenPushHalves(k, -k)).toBe(false);
    // 100 pushes: the zeros are gone, but the pushed (0, 0) is still in the window
    expect(history.seenThenPushHalves(0, 0)).toBe(true);
    // 150 pushes in all: the window holds pushes 50 … 149
    for (let k = 101; k < 150; k++) expect(history.seenThenPushHalves(k, -k)).toBe(false);
    expect(history.seenThenPushHalves(10, -10)).toBe(false);
    expect(history.seenThenPushHalves(60, -60)).toBe(true);
  });
});

describe('SynthID invalid input', () => {
  const SECRET = 987654321987n;
  const params: SynthidParams = { keys: [SECRET, 5], ngramLen: 3, vocabSize: 100 };

  const cases: [string, () => unknown][] = [
    ['id = vocabSize', () => createSynthidDetector(params).detect([1, 2, 100])],
    ['negative id', () => createSynthidDetector(params).detect([1, -1, 3])],
    ['fractional id', () => createSynthidDetector(params).detect([1, 2.5, 3])],
    [
      'id ≥ 2^31 without vocab',
      () => createSynthidDetector({ keys: [SECRET], ngramLen: 2 }).detect([2 ** 31]),
    ],
    ['context too short', () => synthidGValues(params, [1], [2])],
    ['candidate outside vocab', () => synthidGValues(params, [1, 2], [100])],
    [
      'probs beyond vocab',
      () => synthidTournamentDistribution(params, [1, 2], new Float64Array(101).fill(1)),
    ],
    ['negative probability', () => synthidTournamentDistribution(params, [1, 2], Float64Array.from([1, -1]))],
    ['ngramLen 1', () => createSynthidDetector({ keys: [SECRET], ngramLen: 1 })],
    ['no keys', () => createSynthidDetector({ keys: [], ngramLen: 3 })],
    ['key ≥ 2^63', () => createSynthidDetector({ keys: [SECRET << 63n], ngramLen: 3 })],
    [
      'table size 2^24 + 1',
      () => createSynthidDetector({ keys: [SECRET], ngramLen: 3, samplingTableSize: 2 ** 24 + 1 }),
    ],
    ['bad dedup', () => createSynthidDetector(params).detect([1, 2, 3], { dedup: 'all' as 'none' })],
  ];
  for (const [name, run] of cases) {
    it(`${name}: RangeError or TypeError without the key`, () => {
      let error: unknown;
      try {
        run();
      } catch (caught) {
        error = caught;
      }
      expect(error instanceof RangeError || error instanceof TypeError, name).toBe(true);
      const message = (error as Error).message;
      expect(message).not.toContain(SECRET.toString());
      expect(message).not.toContain((SECRET << 63n).toString());
    });
  }
});

describe('SynthID strictUnits', () => {
  it("is detect(strict)'s positions and scores, with each unit's table seed as words (tables of 2^k and not, EOS)", () => {
    const rng = createRandom(23);
    const keys = [654n, -400n, 9_223_372_036_854_775_807n, 654n + 65536n, -9_223_372_036_854_775_808n];
    const cases: SynthidParams[] = [
      { keys, ngramLen: 3, eosTokenId: 3 },
      { keys, ngramLen: 2, samplingTableSize: 64 },
      { keys, ngramLen: 3, samplingTableSize: 1000, samplingTableSeed: 5n, eosTokenId: 1 },
      { keys, ngramLen: 4, samplingTableSize: 3 },
    ];
    let skipped = 0;
    let cutByEos = 0;
    for (const params of cases) {
      const detector = createSynthidDetector(params);
      const size = params.samplingTableSize ?? 65536;
      const powerOfTwo = (size & (size - 1)) === 0;
      const name = `table ${size}`;
      for (const [length, vocabulary] of [
        [0, 5],
        [2, 5],
        [400, 4],
        [400, 12],
        [300, 50_000],
      ] as const) {
        const tokens = Array.from({ length }, () => rng.nextUint32() % vocabulary);
        const units = detector.strictUnits(tokens);
        const detection = detector.detect(tokens, { dedup: 'strict' });
        const width = powerOfTwo ? 1 : 2;
        expect(units.unitWidth, name).toBe(width);
        expect(Array.from(units.positions), name).toEqual(detection.positions);
        let total = 0;
        for (const value of units.values) total += value;
        expect(total, name).toBe(detection.score);
        const records = detector.scoreTokens(tokens);
        const ngram = (params.ngramLen as number) - 1;
        expect(units.words.length).toBe(width * units.positions.length);
        units.positions.forEach((position, i) => {
          const record = records[position - ngram]!;
          expect(record.afterEos).toBe(false);
          let value = 0;
          for (const layer of detector.effectiveLayers) value += record.gValues[layer]!;
          expect(units.values[i], name).toBe(value);
          const seed = BigInt.asUintN(64, record.seed);
          const words = powerOfTwo ? [Number(seed)] : [Number(seed >> 32n), Number(seed & 0xffffffffn)];
          expect(Array.from(units.words.subarray(width * i, width * (i + 1))), name).toEqual(words);
        });
        skipped += records.length - units.positions.length;
        if (records.some((record) => record.afterEos)) cutByEos++;
      }
    }
    expect(skipped).toBeGreaterThan(500);
    expect(cutByEos).toBeGreaterThan(3);
  });

  it('refuses the ids detect refuses', () => {
    const detector = createSynthidDetector({ keys: [1n], ngramLen: 2, vocabSize: 10 });
    expect(() => detector.strictUnits([1, 10])).toThrow(RangeError);
    expect(() => detector.strictUnits([1, -1])).toThrow(RangeError);
  });
});
