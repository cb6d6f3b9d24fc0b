import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRandom, type RandomSource } from '../random.ts';
import { createVllmDetector, type VllmKey, vllmPhiloxWord, vllmUniform } from './vllm.ts';
import { createVllmSampler, type VllmSamplingKey } from './vllm-sampling.ts';

/** Vectors from vLLM's own code, run on CPU by packages/core/reference/foreign/vllm_vectors.py. */
const path = new URL('../../test/vectors/foreign/vllm.json', import.meta.url);
const vectors = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;

// biome-ignore lint/suspicious/noExplicitAny: JSON vectors
type Json = any;

/**
 * torch's CPU generator (`torch.Generator().manual_seed(seed)`): MT19937 seeded with the low 32
 * bits, as at::mt19937 does.
 */
function mersenneTwister(seed: number): () => number {
  const state = new Uint32Array(624);
  state[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) {
    const previous = state[i - 1]! ^ (state[i - 1]! >>> 30);
    state[i] = (Math.imul(1812433253, previous) + i) >>> 0;
  }
  let index = 624;
  return () => {
    if (index >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (state[i]! & 0x80000000) | (state[(i + 1) % 624]! & 0x7fffffff);
        state[i] = state[(i + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      index = 0;
    }
    let y = state[index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}

/**
 * torch.randn(n, generator, dtype=float32) on CPU for n a multiple of 16: 24-bit uniforms, then
 * Box-Muller on blocks of 16 (pairs j, j + 8) in float32. torch's vectorised log/sin/cos differ from
 * these by an ulp at times (logits agree to about 2e−7), far below any gap the samplers resolve.
 */
function torchRandn(seed: number, n: number): Float32Array {
  if (n % 16 !== 0) throw new RangeError('n: a multiple of 16 (every generation case is)');
  const next = mersenneTwister(seed);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (next() & 0xffffff) * 2 ** -24;
  for (let o = 0; o < n; o += 16) {
    for (let j = 0; j < 8; j++) {
      const u1 = Math.fround(1 - data[o + j]!);
      const u2 = data[o + j + 8]!;
      const radius = Math.fround(Math.sqrt(Math.fround(-2 * Math.fround(Math.log(u1)))));
      const theta = Math.fround(Math.fround(2 * Math.PI) * u2);
      data[o + j] = radius * Math.fround(Math.cos(theta));
      data[o + j + 8] = radius * Math.fround(Math.sin(theta));
    }
  }
  return data;
}

/**
 * The uniforms torch.multinomial draws on CPU for float64 input: 53 bits of two consecutive 32-bit
 * words (first word high). With these, the sampler's exponential race is torch.multinomial's.
 */
function torchUniforms(seed: number): RandomSource {
  const next = mersenneTwister(seed);
  return {
    nextFloat: () => {
      const high = next() & 0x1fffff;
      const low = next();
      return (high * 2 ** 32 + low) * 2 ** -53;
    },
    nextUint32: () => next(),
  };
}

function softmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const x of row) max = Math.max(max, x);
  const out = Float64Array.from(row, (x) => Math.exp(x - max));
  const total = out.reduce((a, b) => a + b, 0);
  return out.map((x) => x / total);
}

function samplingKeyOf(c: Json): VllmSamplingKey {
  const key: VllmSamplingKey = {
    scheme: c.scheme,
    engineKey: BigInt(c.engineKey),
    contextWidth: c.contextWidth,
  };
  if (c.scheme !== 'sbw') key.prf = c.prf;
  if (c.scheme === 'dual_key_gumbel') key.alpha = c.alpha;
  if (c.scheme === 'red_green' || c.scheme === 'sbw') {
    key.gamma = c.gamma;
    key.delta = c.delta;
  }
  if (c.scheme === 'sbw') key.sbwScheme = c.sbwScheme;
  return key;
}

describe('torch stand-ins used to replay the vectors', () => {
  it('MT19937 gives the reference 10,000th output for seed 5489', () => {
    const next = mersenneTwister(5489);
    let value = 0;
    for (let i = 0; i < 10000; i++) value = next();
    expect(value).toBe(4123659995);
  });
});

describe('vLLM sampling replays the generations recorded in vllm.json', () => {
  const cases: Json[] = (vectors?.cases ?? []).filter((c: Json) => c.generation.kind === 'peer-watermarker');

  it('covers every scheme and both PRFs', () => {
    const combos = new Set(cases.map((c) => `${c.scheme}/${c.prf}`));
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

  for (const c of cases) {
    it(`${c.name}: every token as vLLM's watermarker sampled it`, () => {
      const spec = c.generation;
      const logits = torchRandn(spec.seed, spec.steps * spec.vocab);
      for (let i = 0; i < logits.length; i++) logits[i] = Math.fround(logits[i]! * spec.scale);
      if (spec.peak !== undefined) {
        for (let step = 0; step < spec.steps; step++) {
          const at = step * spec.vocab + spec.peak[0];
          logits[at] = Math.fround(logits[at]! + spec.peak[1]);
        }
      }
      const sampler = createVllmSampler(samplingKeyOf(c));
      // The script's sampler: torch.multinomial with its own generator, seeded with seed + 1.
      const random = torchUniforms(spec.seed + 1);
      const tokens: number[] = [];
      for (let step = 0; step < spec.steps; step++) {
        const row = logits.subarray(step * spec.vocab, (step + 1) * spec.vocab);
        tokens.push(sampler.sample(tokens, { probabilities: softmax(row) }, random).token);
      }
      expect(tokens).toEqual(c.tokens);
    });
  }
});

describe('the samplers against their definitions', () => {
  const keyOf = (scheme: VllmKey['scheme'], extra: Partial<VllmSamplingKey> = {}): VllmSamplingKey => ({
    scheme,
    engineKey: 0x1234_5678_9abc_def0n,
    ...extra,
  });

  it('gumbel: the context-folded Philox words equal vllmPhiloxWord, and the choice is the brute-force argmax', () => {
    const sampler = createVllmSampler(keyOf('gumbel'));
    const detector = createVllmDetector(keyOf('gumbel'));
    const random = createRandom(1);
    for (let trial = 0; trial < 30; trial++) {
      const history = Array.from({ length: trial % 7 }, () => random.nextUint32() % 50_000);
      const ids = Array.from(new Set(Array.from({ length: 40 }, () => random.nextUint32() % 50_000)));
      const probabilities = ids.map(() => random.nextFloat() ** 3);
      const context = sampler.contextOf(history);
      let best = -1;
      let bestKey = Number.NEGATIVE_INFINITY;
      ids.forEach((id, i) => {
        const u = detector.scoreToken(context, id).uniforms[0]!;
        expect(u).toBe(vllmUniform(vllmPhiloxWord(0x1234_5678_9abc_def0n, context, id)));
        const key = Math.log(probabilities[i]!) - Math.log(-Math.log(u));
        if (key > bestKey) {
          best = id;
          bestKey = key;
        }
      });
      const sample = sampler.sample(history, { tokenIds: ids, probabilities }, createRandom(0));
      expect(sample.token).toBe(best);
      expect(sample.routedKey).toBeNull();
    }
  });

  it('gumbel: over many keys the chosen token follows p (the mark does not change the distribution)', () => {
    const probabilities = [0.5, 0.3, 0.15, 0.05];
    const counts = [0, 0, 0, 0];
    const n = 4000;
    for (let k = 0; k < n; k++) {
      const sampler = createVllmSampler({ scheme: 'gumbel', engineKey: BigInt(k) * 7919n });
      counts[sampler.sample([3, 1, 4, 1, 5], { probabilities }, createRandom(k)).token]!++;
    }
    // χ² with 3 degrees of freedom; 16.3 is its 0.999 quantile.
    const chi2 = counts.reduce(
      (sum, count, i) => sum + (count - n * probabilities[i]!) ** 2 / (n * probabilities[i]!),
      0,
    );
    expect(chi2).toBeLessThan(16.3);
  });

  it('red_green and sbw: green tokens gain e^δ, and the mask agrees with the detector', () => {
    for (const params of [
      keyOf('red_green', { gamma: 0.25, delta: 2 }),
      keyOf('sbw', { gamma: 0.5, delta: 2, sbwScheme: 'selfhash' }),
      keyOf('sbw', { gamma: 0.5, delta: 1, sbwScheme: 'lefthash', engineKey: 42n }),
    ]) {
      const sampler = createVllmSampler(params);
      const { delta: _delta, ...detectorKey } = params;
      // The generator seeds sbw lefthash with raw ids: the detector reads it with `generator` seeds.
      const detector = createVllmDetector({ ...detectorKey, sbwLefthashSeeds: 'generator' });
      const history = [11, 22, 33, 44, 55];
      const ids = Array.from({ length: 64 }, (_, i) => 1000 + 3 * i);
      const probabilities = ids.map(() => 1 / 64);
      const green = sampler.greenMask(history, { tokenIds: ids, probabilities });
      const q = sampler.watermarkedProbabilities(history, { tokenIds: ids, probabilities });
      const greens = green.reduce((a, b) => a + b, 0);
      expect(greens).toBeGreaterThan(0);
      expect(greens).toBeLessThan(64);
      ids.forEach((id, i) => {
        expect(green[i]).toBe(detector.scoreToken(sampler.contextOf(history), id).score);
      });
      const greenQ = q[green.indexOf(1)]!;
      const redQ = q[green.indexOf(0)]!;
      expect(greenQ / redQ).toBeCloseTo(Math.exp(params.delta!), 10);
      expect(greens * greenQ + (64 - greens) * redQ).toBeCloseTo(1, 12);
      for (let i = 0; i < 64; i++) expect(q[i]).toBe(green[i] === 1 ? greenQ : redQ);
    }
  });

  it('the random sampler draws each candidate with its probability', () => {
    const sampler = createVllmSampler(keyOf('red_green', { gamma: 0.5, delta: 3 }));
    const candidates = { tokenIds: [7, 8, 9, 10], probabilities: [0.4, 0.3, 0.2, 0.1] };
    const q = sampler.watermarkedProbabilities([1, 2, 3, 4], candidates);
    const random = createRandom(9);
    const counts = new Map<number, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const token = sampler.sample([1, 2, 3, 4], candidates, random).token;
      counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    const chi2 = candidates.tokenIds.reduce(
      (sum, id, i) => sum + ((counts.get(id) ?? 0) - n * q[i]!) ** 2 / (n * q[i]!),
      0,
    );
    expect(chi2).toBeLessThan(16.3);
  });

  it('dual_key_gumbel: key B routes with probability α; α = 0 and 1 draw nothing', () => {
    const candidates = { probabilities: Array.from({ length: 32 }, (_, i) => 1 / (i + 1)) };
    const sampler = createVllmSampler(keyOf('dual_key_gumbel', { alpha: 0.3 }));
    const random = createRandom(3);
    let routedB = 0;
    for (let i = 0; i < 4000; i++) if (sampler.sample([i], candidates, random).routedKey === 'b') routedB++;
    expect(Math.abs(routedB / 4000 - 0.3)).toBeLessThan(0.03);
    for (const alpha of [0, 1]) {
      const fixed = createVllmSampler(keyOf('dual_key_gumbel', { alpha }));
      const counting = createRandom(4);
      let draws = 0;
      const source: RandomSource = {
        nextFloat: () => {
          draws++;
          return counting.nextFloat();
        },
        nextUint32: () => counting.nextUint32(),
      };
      expect(fixed.sample([5], candidates, source).routedKey).toBe(alpha === 0 ? 'a' : 'b');
      expect(draws).toBe(0);
    }
  });

  it('top-p drops the tail before the Gumbel choice; single_turn dedup samples a repeated context without the mark', () => {
    const sampler = createVllmSampler(keyOf('gumbel', { contextWidth: 1 }));
    const candidates = { probabilities: [0.6, 0.3, 0.05, 0.05] };
    for (let k = 0; k < 200; k++) {
      const token = sampler.sample([k], candidates, createRandom(k), { topP: 0.85 }).token;
      expect(token === 0 || token === 1).toBe(true);
    }
    const repeated = sampler.sample([9, 9], candidates, createRandom(1), {
      deduplicateContexts: 'single_turn',
    });
    expect(repeated.watermarked).toBe(false);
    const fresh = sampler.sample([8, 9], candidates, createRandom(1), { deduplicateContexts: 'single_turn' });
    expect(fresh.watermarked).toBe(true);
  });

  it('refuses bad input, naming the parameter and never the key', () => {
    expect(() => createVllmSampler(keyOf('gumbel', { delta: 2 }))).toThrow(/^delta/);
    expect(() => createVllmSampler(keyOf('red_green', { delta: 0 }))).toThrow(/^delta/);
    expect(() => createVllmSampler({ scheme: 'gumbel', engineKey: 2n ** 64n })).toThrow(/engineKey/);
    const sampler = createVllmSampler(keyOf('gumbel'));
    const random = createRandom(0);
    expect(() => sampler.sample([1], { probabilities: [0.5, -0.1] }, random)).toThrow(/probabilities\[1\]/);
    expect(() => sampler.sample([1], { probabilities: [0, 0] }, random)).toThrow(/probabilities/);
    expect(() => sampler.sample([1.5], { probabilities: [1] }, random)).toThrow(/history\[0\]/);
    expect(() => sampler.sample([1], { probabilities: [1, 1], tokenIds: [3, 3] }, random)).toThrow(
      /tokenIds/,
    );
    expect(() => sampler.sample([1], { probabilities: [1] }, random, { topP: 0 })).toThrow(/topP/);
    try {
      createVllmSampler({ scheme: 'sbw', engineKey: 2n ** 63n + 12345n });
    } catch (error) {
      expect(String(error)).not.toContain('12345');
    }
  });
});
