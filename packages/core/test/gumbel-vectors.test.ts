/** The Gumbel-max schemes against packages/core/test/vectors/gumbel.json (generate_gumbel_vectors.py). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { detect } from '../src/detect.ts';
import { logGammaSf, logWeightedGammaSf } from '../src/foreign/gamma-tail.ts';
import { generateAll } from '../src/generate.ts';
import { GUMBEL_NOISE_MAX, gumbelLog10PValue, gumbelScore, gumbelUniform } from '../src/gumbel.ts';
import { createWatermarkKey, deriveGumbelPrfKeys } from '../src/keys.ts';
import { createRandom } from '../src/random.ts';
import { sampleToken } from '../src/sampling.ts';
import { createScheme, type GumbelSchemeName } from '../src/scheme.ts';
import { DedupTape, Scorer } from '../src/scoring.ts';
import { createSipHasher } from '../src/siphash.ts';
import { createWatermarker, type Watermarker } from '../src/watermarker.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/gumbel.json', import.meta.url), 'utf8'));
const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const halves = (text: string): [number, number] => [
  Number.parseInt(text.slice(0, 8), 16),
  Number.parseInt(text.slice(8), 16),
];
const LN10 = Math.LN10;
/** Scores go through the platform's log1p, which may differ from the generator's in the last bit. */
const expectClose = (got: number, want: number, relative = 1e-15) =>
  expect(Math.abs(got - want)).toBeLessThanOrEqual(relative * Math.abs(want));

function watermarkerFor(
  secret: string,
  name: GumbelSchemeName,
  contextWidth: number,
  alpha: number,
  special: readonly number[] = [],
): Watermarker {
  const scheme = name === 'dual_gumbel' ? { name, contextWidth, alpha } : { name, contextWidth };
  return createWatermarker(createWatermarkKey({ secret: hex(secret), scheme }), {
    specialTokenIds: special,
  });
}

describe('gumbel.json: keys and uniforms', () => {
  it('noise bound', () => {
    expect(GUMBEL_NOISE_MAX).toBe(vectors.noiseMax);
  });
  it.each(vectors.keys.map((c: { secret: string }) => [c.secret.slice(0, 8), c]))('PRF keys %s', (_s, c) => {
    const keys = deriveGumbelPrfKeys(hex(c.secret));
    expect(toHex(keys.a)).toBe(c.keyA);
    expect(toHex(keys.b)).toBe(c.keyB);
  });
  it('word → uniform', () => {
    for (const c of vectors.words) expect(gumbelUniform(...halves(c.word))).toBe(c.uniform);
  });
  it.each(vectors.uniforms.map((c: { seed: string; token: number }, i: number) => [i, c.seed, c.token, c]))(
    'uniform %i (seed %s, token %i)',
    (_i, _seed, _token, c) => {
      const keys = deriveGumbelPrfKeys(hex(c.secret));
      const [seedHigh, seedLow] = halves(c.seed);
      for (const [key, word, uniform, score] of [
        [keys.a, c.wordA, c.uniformA, c.scoreA],
        [keys.b, c.wordB, c.uniformB, c.scoreB],
      ] as const) {
        const hasher = createSipHasher(key);
        const message = new Uint8Array(12);
        const view = new DataView(message.buffer);
        view.setUint32(0, seedLow, true);
        view.setUint32(4, seedHigh, true);
        view.setUint32(8, c.token, true);
        hasher.bytes(message);
        expect(
          hasher.out[0]!.toString(16).padStart(8, '0') + hasher.out[1]!.toString(16).padStart(8, '0'),
        ).toBe(word);
        expect(gumbelUniform(hasher.out[0]!, hasher.out[1]!)).toBe(uniform);
        expectClose(gumbelScore(uniform), score);
      }
      const dual = watermarkerFor(c.secret, 'dual_gumbel', 1, 0.1);
      expect(dual.uniform(seedHigh, seedLow, c.token, 0)).toBe(c.uniformA);
      expect(dual.uniform(seedHigh, seedLow, c.token, 1)).toBe(c.uniformB);
      const single = watermarkerFor(c.secret, 'gumbel', 1, 0);
      expectClose(single.tokenScore(seedHigh, seedLow, c.token), c.scoreA);
    },
  );
});

describe('gumbel.json: keyed choice', () => {
  it.each(vectors.sampling.map((c: { scheme: string }, i: number) => [i, c.scheme, c]))(
    'choice %i (%s)',
    (_i, _s, c) => {
      const watermarker = watermarkerFor(c.secret, c.scheme, c.contextWidth, 0.1, c.special);
      const logits = Float32Array.from(c.logits, (v: number | null) =>
        v === null ? Number.NEGATIVE_INFINITY : v,
      );
      for (const v of c.logits) if (v !== null) expect(Math.fround(v)).toBe(v);
      const result = sampleToken(logits, c.context, createRandom(7), {
        watermarker,
        temperature: c.temperature,
        topK: c.topK,
        topP: c.topP,
        gumbelKey: c.key,
      });
      if (c.token === null) {
        // Not marked (no eligible window): an ordinary draw from the kept candidates.
        expect(result.gumbelKey).toBeNull();
        expect(c.kept).toContain(result.token);
      } else {
        expect(result.token).toBe(c.token);
        expect(result.gumbelKey).toBe(c.key);
        expect(result.membershipTests).toBeLessThanOrEqual(c.kept.length);
        // The choice needs the seed the reference used.
        const seed = new Uint32Array(2);
        expect(watermarker.contextSeed(c.context, seed)).toBe(true);
        expect(seed[0]!.toString(16).padStart(8, '0') + seed[1]!.toString(16).padStart(8, '0')).toBe(c.seed);
      }
    },
  );
});

describe('gumbel.json: generations (toy model)', () => {
  it.each(vectors.generation.map((c: { scheme: string }, i: number) => [i, c.scheme, c]))(
    'generation %i (%s)',
    async (_i, _s, c) => {
      const model = createSipHasher(hex(c.modelKey));
      const source = {
        nextLogits(context: Uint32Array): Float32Array {
          const previous = context[context.length - 1]!;
          const logits = new Float32Array(c.vocabulary);
          for (let x = 0; x < c.vocabulary; x++) {
            // LE32(previous) || LE32(x): one 8-byte block.
            const high = model.twoBlocks(x, previous, 0, 0, 8);
            logits[x] = (6 * (high >>> 8)) / 2 ** 24;
          }
          return logits;
        },
      };
      const tokens = await generateAll({
        source,
        prompt: c.prompt,
        maxTokens: c.tokens.length,
        watermarker: watermarkerFor(c.secret, c.scheme, c.contextWidth, c.alpha),
        temperature: c.temperature,
        topK: c.topK,
        topP: c.topP,
        gumbelKey: c.key,
        repeatedContexts: 'mark',
        seed: 1,
      });
      expect(Array.from(tokens)).toEqual(c.tokens);
    },
  );
});

describe('gumbel.json: detection', () => {
  it.each(
    vectors.detect.map((c: { scheme: string; tokens: number[] }, i: number) => [
      i,
      c.scheme,
      c.tokens.length,
      c,
    ]),
  )('detect %i (%s, %i tokens)', (_i, _s, _n, c) => {
    const watermarker = watermarkerFor(c.secret, c.scheme, c.contextWidth, c.alpha, c.special);
    const result = detect(c.tokens, watermarker, {
      ...(c.prompt === null ? {} : { prompt: c.prompt }),
      dedup: c.dedup,
    }).results[0]!;
    expect(result.status).toEqual(c.status);
    expect(result.numScored).toBe(c.numScored);
    expectClose(result.score!, c.score, 1e-13);
    const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-300, Math.abs(b));
    if (c.log10P === 0) expect(Math.abs(result.log10P)).toBeLessThan(1e-15);
    else expect(relative(result.log10P, c.log10P)).toBeLessThan(1e-9);
    // Scores by position, through the streaming scorer with a shared tape, chunk by chunk.
    const scorer = new Scorer(watermarker, { dedup: c.dedup, tape: new DedupTape() });
    if (c.prompt !== null) scorer.addPrompt(c.prompt);
    for (let at = 0; at < c.tokens.length; at += 7) scorer.push(c.tokens.slice(at, at + 7));
    const scores = scorer.scoredScores();
    expect(scores.length).toBe(c.scores.length);
    c.scores.forEach((want: number, i: number) => {
      expectClose(scores[i]!, want);
    });
  });
});

describe('gumbel.json: exact tails', () => {
  const gumbel = createScheme({ name: 'gumbel' });
  it.each(vectors.tails.gumbel.map((c: { n: number; score: number }) => [c.n, c.score, c]))(
    'Q(%i, %d)',
    (_n, _s, c) => {
      expect(Math.abs(gumbelLog10PValue(gumbel, c.n, c.score) - c.log10Sf)).toBeLessThanOrEqual(
        1e-10 * Math.abs(c.log10Sf),
      );
      expect(logGammaSf(c.n, c.score) / LN10).toBeCloseTo(c.log10Sf, 6);
    },
  );
  it.each(
    vectors.tails.dual.map((c: { n: number; alpha: number; score: number }) => [c.n, c.alpha, c.score, c]),
  )('dual n %i α %d S %d', (_n, _a, _s, c) => {
    const scheme = createScheme({ name: 'dual_gumbel', alpha: c.alpha });
    const got = gumbelLog10PValue(scheme, c.n, c.score);
    expect(Math.abs(got - c.log10Sf)).toBeLessThanOrEqual(1e-10 * Math.abs(c.log10Sf));
    expect(logWeightedGammaSf(c.n, 1 - c.alpha, c.alpha, c.score) / LN10).toBeCloseTo(got, 12);
  });
});
