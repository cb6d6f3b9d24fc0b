import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createDetection,
  createWatermarker,
  createWatermarkKey,
  detect,
  log10BinomialSf,
  Scorer,
} from './index.ts';

const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
const schemeArb = fc.record({
  name: fc.constantFrom('lefthash' as const, 'selfhash' as const),
  contextWidth: fc.integer({ min: 1, max: 4 }),
  gamma: fc.constantFrom(0.1, 0.25, 0.5, 0.7),
});

describe('watermark properties', () => {
  it('green fraction of random text is γ_eff within a 1e-6 two-sided binomial bound, over random keys', () => {
    fc.assert(
      fc.property(secretArb, schemeArb, fc.integer({ min: 1, max: 2 ** 31 }), (secret, scheme, salt) => {
        const watermarker = createWatermarker(createWatermarkKey({ secret, scheme }));
        const tokens = new Uint32Array(4000);
        let state = salt;
        for (let i = 0; i < tokens.length; i++) {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0;
          tokens[i] = state % 100_000;
        }
        const scorer = new Scorer(watermarker);
        scorer.push(tokens);
        const { numScored, numGreen } = scorer.counts();
        const g = watermarker.scheme.gammaEffective;
        expect(log10BinomialSf(numGreen, numScored, g)).toBeGreaterThan(-6);
        expect(log10BinomialSf(numScored - numGreen, numScored, 1 - g)).toBeGreaterThan(-6);
      }),
      { numRuns: 40, seed: 20261122 },
    );
  });

  it('one-shot scoring equals scoring the same tokens in chunks', () => {
    fc.assert(
      fc.property(
        secretArb,
        schemeArb,
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 300 }),
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        (secret, scheme, tokens, prompt, cuts) => {
          const watermarker = createWatermarker(createWatermarkKey({ secret, scheme }), {
            specialTokenIds: [7],
          });
          const whole = new Scorer(watermarker);
          whole.addPrompt(prompt);
          const oneShot = whole.push(tokens);
          const chunked = new Scorer(watermarker);
          chunked.addPrompt(prompt);
          const statuses: number[] = [];
          let at = 0;
          for (const cut of cuts) {
            statuses.push(...chunked.push(tokens.slice(at, at + cut)).status);
            at += cut;
          }
          statuses.push(...chunked.push(tokens.slice(at)).status);
          expect(chunked.counts()).toEqual(whole.counts());
          expect(statuses).toEqual(Array.from(oneShot.status));
          expect(chunked.scoredBits()).toEqual(whole.scoredBits());
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it('different keys give independent green lists: agreement ≈ γ² + (1 − γ)²', () => {
    fc.assert(
      fc.property(secretArb, secretArb, (a, b) => {
        fc.pre(Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0);
        const first = createWatermarker(createWatermarkKey({ secret: a }));
        const second = createWatermarker(createWatermarkKey({ secret: b }));
        const trials = 20_000;
        let agree = 0;
        for (let t = 0; t < trials; t++) {
          const context = [t % 5000];
          const candidate = (t * 7919) % 100_000;
          if (first.candidateTester(context)(candidate) === second.candidateTester(context)(candidate))
            agree++;
        }
        const g = first.scheme.gammaEffective;
        const expected = g * g + (1 - g) * (1 - g);
        const sd = Math.sqrt((trials * expected * (1 - expected)) / trials ** 2);
        expect(Math.abs(agree / trials - expected)).toBeLessThan(5 * sd);
      }),
      { numRuns: 10, seed: 11 },
    );
  });

  it('a repeated phrase is scored once (dedup), and detection reports it', () => {
    const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(3) }));
    const phrase = [11, 12, 13, 14, 15, 16, 17, 18];
    const tokens = Array.from({ length: 50 }, () => phrase).flat();
    const result = detect(tokens, watermarker);
    expect(result.results[0]!.numScored).toBeLessThanOrEqual(8);
    const noDedup = detect(tokens, watermarker, { dedup: false });
    expect(noDedup.results[0]!.numScored).toBe(tokens.length - 1);
  });
});

describe('several keys', () => {
  it('Holm-corrects and names the key that matched; ties go to the smaller raw p-value', () => {
    const keys = [1, 2, 3].map((fill) =>
      createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(fill) })),
    );
    const marked = keys[1]!;
    // A sequence built greedily to be green under the second key only.
    const tokens: number[] = [1];
    for (let i = 0; i < 120; i++) {
      const test = marked.candidateTester(tokens);
      let candidate = (i * 7919) % 50_000;
      while (test(candidate) !== 1) candidate++;
      tokens.push(candidate);
    }
    const result = detect(tokens, keys);
    expect(result.verdict).toBe('watermarked');
    expect(result.matchedKeyId).toBe(marked.keyId);
    const second = result.results[1]!;
    expect(second.log10PAdjusted).toBeCloseTo(second.log10P + Math.log10(3), 9);
    const single = detect(tokens, marked);
    expect(single.results[0]!.log10P).toBe(second.log10P);
  });

  it('streaming detection equals one-shot detection', () => {
    const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(8) }));
    const tokens = Array.from({ length: 500 }, (_, i) => (i * 104729) % 3001);
    const oneShot = detect(tokens, watermarker, { prompt: [5, 6, 7], window: true });
    const session = createDetection(watermarker, { prompt: [5, 6, 7], window: true });
    for (let at = 0; at < tokens.length; at += 37) session.push(tokens.slice(at, at + 37));
    expect(session.finish()).toEqual(oneShot);
  });
});

describe('accelerated and scalar paths agree', () => {
  it.each([
    ['lefthash', 1],
    ['lefthash', 2],
    ['lefthash', 4],
    ['selfhash', 1],
    ['selfhash', 4],
  ] as const)('%s with context width %i: the same seeds and green bits at every position', (name, width) => {
    const key = createWatermarkKey({
      secret: new Uint8Array(32).fill(7),
      scheme: { name, contextWidth: width, gamma: 0.25 },
    });
    const fast = createWatermarker(key);
    const slow = createWatermarker(key, { accelerate: false });
    const tokens = new Uint32Array(5000);
    for (let i = 0; i < tokens.length; i++) tokens[i] = (Math.imul(i + 1, 2654435761) >>> 0) % 200_000;
    const batch = fast.batch(tokens, 0, tokens.length);
    expect(batch).not.toBeNull();
    const seed = new Uint32Array(2);
    for (let i = width; i < tokens.length; i++) {
      slow.seedAt(tokens, i, seed);
      expect([batch!.seeds[2 * i + 1], batch!.seeds[2 * i]], `position ${i}`).toEqual([seed[0], seed[1]]);
      expect(batch!.greens[i] === 1, `position ${i}`).toBe(slow.isGreen(seed[0]!, seed[1]!, tokens[i]!));
    }
  });

  it('across batch boundaries, with special tokens, for every scheme', () => {
    fc.assert(
      fc.property(secretArb, schemeArb, fc.integer({ min: 1, max: 2 ** 30 }), (secret, scheme, salt) => {
        const key = createWatermarkKey({ secret, scheme });
        const fast = new Scorer(createWatermarker(key, { specialTokenIds: [3, 99_999] }));
        const slow = new Scorer(createWatermarker(key, { specialTokenIds: [3, 99_999], accelerate: false }));
        const tokens = new Uint32Array(40_000);
        let state = salt;
        for (let i = 0; i < tokens.length; i++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
          tokens[i] = state % 5 === 0 ? 3 : state % 2000;
        }
        fast.addPrompt(tokens.subarray(0, 50));
        slow.addPrompt(tokens.subarray(0, 50));
        expect(fast.push(tokens).status).toEqual(slow.push(tokens).status);
        expect(fast.counts()).toEqual(slow.counts());
      }),
      { numRuns: 6, seed: 99 },
    );
  });
});
