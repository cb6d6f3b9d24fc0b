import { describe, expect, it } from 'vitest';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  generateAll,
  type LogitsSource,
  sampleToken,
  stepStrength,
  watermarkLogits,
  watermarkLogitsInto,
} from './index.ts';
import { sortByLogitDescending } from './sampling.ts';

const logits = Float32Array.from([2.0, 1.5, 1.2, 0.3, -0.5, -1.0, -3.0, 0.9]);
const context = [5];

function exactDistribution(biased: Float32Array, temperature: number): number[] {
  const max = Math.max(...biased);
  const weights = Array.from(biased, (v) => Math.exp((v - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

function frequencies(draw: () => number, n: number, size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (let i = 0; i < n; i++) counts[draw()]!++;
  return counts.map((c) => c / n);
}

describe('logits processor', () => {
  for (const scheme of [
    { name: 'lefthash' as const, contextWidth: 1 },
    { name: 'selfhash' as const, contextWidth: 2 },
  ]) {
    const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(9), scheme }));
    it(`${scheme.name}: adds δ exactly to green candidates and never mutates its input`, () => {
      const before = logits.slice();
      const out = watermarkLogits(watermarker, context, logits);
      expect(logits).toEqual(before);
      const test = watermarker.candidateTester(context);
      for (let x = 0; x < logits.length; x++) {
        expect(out[x]).toBeCloseTo(logits[x]! + (test(x) === 1 ? watermarker.scheme.delta : 0), 6);
      }
      const sparse = watermarkLogits(watermarker, context, {
        ids: Uint32Array.of(3, 1),
        logits: Float32Array.of(0.3, 1.5),
      });
      expect(sparse.logits[0]).toBeCloseTo(out[3]!, 6);
      expect(sparse.logits[1]).toBeCloseTo(out[1]!, 6);
      const inPlace = logits.slice();
      watermarkLogitsInto(watermarker, context, inPlace, inPlace);
      expect(inPlace).toEqual(out);
    });
  }
});

describe('exact sampling from the watermarked distribution', () => {
  const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(4) }));
  const n = 60_000;
  for (const temperature of [1, 0.7, 0.25]) {
    it(`temperature ${temperature} (${Math.exp(2 / temperature) <= 64 ? 'rejection' : 'Gumbel-max'})`, () => {
      const q = exactDistribution(watermarkLogits(watermarker, context, logits), temperature);
      const random = createRandom(temperature * 1000);
      const observed = frequencies(
        () => sampleToken(logits, context, random, { temperature, watermarker }).token,
        n,
        logits.length,
      );
      q.forEach((p, x) => {
        const sd = Math.sqrt((p * (1 - p)) / n);
        expect(Math.abs(observed[x]! - p)).toBeLessThan(5 * sd + 1e-9);
      });
    });
  }

  it('greedy picks the argmax of the biased logits', () => {
    const biased = watermarkLogits(watermarker, context, logits);
    const best = biased.indexOf(Math.max(...biased));
    expect(sampleToken(logits, context, createRandom(1), { temperature: 0, watermarker }).token).toBe(best);
  });

  /** Top-k / top-p of the unbiased distribution, widened to ℓ ≥ max − δ, then q over the kept set. */
  function truncatedTarget(temperature: number, topK: number, topP: number): number[] {
    const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
    const unbiased = exactDistribution(logits, temperature);
    let keep = topK > 0 ? topK : order.length;
    const mass = order.slice(0, keep).reduce((sum, x) => sum + unbiased[x]!, 0);
    let running = 0;
    for (let j = 0; j < keep; j++) {
      running += unbiased[order[j]!]!;
      if (topP < 1 && running >= topP * mass) {
        keep = j + 1;
        break;
      }
    }
    const reach = logits[order[0]!]! - watermarker.scheme.delta;
    while (keep < order.length && logits[order[keep]!]! >= reach) keep++;
    const kept = new Set(order.slice(0, keep));
    const biased = watermarkLogits(watermarker, context, logits);
    const weights = Array.from(biased, (v, x) => (kept.has(x) ? Math.exp(v / temperature) : 0));
    const total = weights.reduce((a, b) => a + b, 0);
    return weights.map((w) => w / total);
  }

  for (const [temperature, topK, topP] of [
    [1, 2, 1],
    [0.7, 0, 0.5],
    [0.1, 0, 0.9],
    [1, 3, 0.8],
  ] as const) {
    it(`top-k ${topK} / top-p ${topP} at T ${temperature} truncate the watermarked distribution, exactly`, () => {
      const target = truncatedTarget(temperature, topK, topP);
      const random = createRandom(Math.round(topK * 1000 + topP * 100 + temperature * 10));
      const observed = frequencies(
        () => sampleToken(logits, context, random, { temperature, topK, topP, watermarker }).token,
        n,
        logits.length,
      );
      target.forEach((p, x) => {
        const sd = Math.sqrt((p * (1 - p)) / n);
        expect(Math.abs(observed[x]! - p)).toBeLessThan(5 * sd + 1e-9);
      });
      const strength = stepStrength(logits, context, { temperature, topK, topP, watermarker });
      const test = watermarker.candidateTester(context);
      const green = target.reduce((sum, p, x) => sum + (test(x) === 1 ? p : 0), 0);
      expect(strength.greenProbability).toBeCloseTo(green, 12);
    });
  }

  it('a tiny top-p keeps every candidate the bias could lift to the top, so the mark survives it', () => {
    const biased = watermarkLogits(watermarker, context, logits);
    const best = biased.indexOf(Math.max(...biased));
    const reach = Math.max(...logits) - watermarker.scheme.delta;
    const random = createRandom(8);
    for (let i = 0; i < 200; i++) {
      const { token } = sampleToken(logits, context, random, { topP: 1e-9, watermarker });
      expect(logits[token]!).toBeGreaterThanOrEqual(reach);
      expect(sampleToken(logits, context, random, { temperature: 1e-9, topP: 0.3, watermarker }).token).toBe(
        best,
      );
    }
    // Without a watermark a tiny top-p is greedy, as usual.
    expect(sampleToken(logits, context, random, { topP: 1e-9, watermarker: null }).token).toBe(0);
    expect(stepStrength(logits, context, { temperature: 0, watermarker }).greenProbability).toBe(
      watermarker.candidateTester(context)(best) === 1 ? 1 : 0,
    );
  });

  it('stepStrength matches the green frequency of sampling without truncation', () => {
    const test = watermarker.candidateTester(context);
    for (const temperature of [1, 0.25]) {
      const q = exactDistribution(watermarkLogits(watermarker, context, logits), temperature);
      const green = q.reduce((sum, p, x) => sum + (test(x) === 1 ? p : 0), 0);
      const strength = stepStrength(logits, context, { temperature, watermarker });
      expect(strength.greenProbability).toBeCloseTo(green, 12);
      const p = exactDistribution(logits, temperature);
      const z = (0.75 * (Math.exp(2) - 1)) / (1 + (Math.exp(2) - 1) * 0.25);
      expect(strength.spikeEntropy).toBeCloseTo(
        p.reduce((sum, x) => sum + x / (1 + z * x), 0),
        12,
      );
    }
    expect(stepStrength(logits, context, { watermarker: null })).toEqual({
      greenProbability: 0,
      spikeEntropy: 0,
    });
  });

  it('evaluates few memberships per step over a 100k vocabulary', () => {
    const big = new Float32Array(100_000);
    const random = createRandom(5);
    for (let i = 0; i < big.length; i++) big[i] = Math.log(random.nextFloat() + 1e-9);
    let tests = 0;
    for (let step = 0; step < 200; step++) {
      tests += sampleToken(big, [step], random, { watermarker }).membershipTests;
    }
    expect(tests / 200).toBeLessThan(10);
  });
});

describe('generation', () => {
  const vocab = 2000;
  const source: LogitsSource = {
    nextLogits(ctx) {
      const out = new Float32Array(vocab);
      const last = ctx.length > 0 ? ctx[ctx.length - 1]! : 0;
      for (let x = 0; x < vocab; x++) out[x] = -Math.abs(((x * 31 + last * 17) % vocab) / 200);
      return out;
    },
  };
  const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(2) }));

  it('watermarked output is detected; the control is not; the same seed gives the same text', async () => {
    const prompt = [1, 2, 3];
    const marked = await generateAll({ source, prompt, maxTokens: 200, watermarker, seed: 42 });
    const again = await generateAll({ source, prompt, maxTokens: 200, watermarker, seed: 42 });
    expect(again).toEqual(marked);
    const control = await generateAll({ source, prompt, maxTokens: 200, watermarker: null, seed: 42 });
    const found = detect(marked, watermarker, { prompt });
    expect(found.verdict).toBe('watermarked');
    expect(found.results[0]!.log10P).toBeLessThan(-6);
    expect(detect(control, watermarker, { prompt }).verdict).not.toBe('watermarked');
  });

  it('stops at a stop token and honours an abort signal', async () => {
    const controller = new AbortController();
    controller.abort();
    const none = await generateAll({
      source,
      prompt: [1],
      maxTokens: 50,
      watermarker,
      signal: controller.signal,
    });
    expect(none.length).toBe(0);
  });
});

describe('the order of top-k and top-p', () => {
  it("is the comparator's: descending logit, the earlier index first on ties (property)", () => {
    const random = createRandom(41);
    const special = [0, -0, 1, -1, Number.POSITIVE_INFINITY, 3.4e38, -3.4e38, 1e-45, -1e-45, 0.5];
    for (let round = 0; round < 300; round++) {
      const size = 1 + (random.nextUint32() % 400);
      // few distinct values, so that ties are common, or any float
      const values = Float32Array.from({ length: size }, () =>
        random.nextFloat() < 0.3
          ? special[random.nextUint32() % special.length]!
          : random.nextFloat() < 0.5
            ? (random.nextUint32() % 7) - 3
            : (random.nextFloat() - 0.5) * 1e6,
      );
      const candidates = Array.from({ length: size }, (_, i) => i).filter(() => random.nextFloat() < 0.9);
      const expected = [...candidates].sort((a, b) => values[b]! - values[a]! || a - b);
      const sorted = [...candidates];
      sortByLogitDescending(sorted, values);
      expect(sorted).toEqual(expected);
    }
  });

  it('reads the logits of a view into a larger buffer', () => {
    const buffer = new Float32Array([9, 1, 3, 3, -2, 9]);
    const view = buffer.subarray(1, 5);
    const candidates = [0, 1, 2, 3];
    sortByLogitDescending(candidates, view);
    expect(candidates).toEqual([1, 2, 0, 3]);
  });
});
