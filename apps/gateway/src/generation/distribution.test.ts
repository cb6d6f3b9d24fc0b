import { createRandom, createWatermarker, createWatermarkKey, stepStrength } from '@tracemark/core';
import { getTokenizer } from '@tracemark/tokenizers';
import { describe, expect, it } from 'vitest';
import {
  acceptAmongDrafts,
  acceptDraft,
  chainOutcomes,
  draftDistributions,
  draftSelection,
  reportedLogprobs,
  sampleTarget,
  verifyChain,
} from './distribution.ts';
import { TextAssembler } from './text-assembler.ts';

const watermarker = createWatermarker(createWatermarkKey({ secret: new Uint8Array(32).fill(7) }));
const candidates = {
  ids: Uint32Array.from({ length: 12 }, (_, i) => 1000 + 37 * i),
  logits: Float32Array.from({ length: 12 }, (_, i) => -0.3 * i - 1),
};
const context = [42, 43];

function drawFrom(weights: Float64Array, random: ReturnType<typeof createRandom>): number {
  let target = random.nextFloat();
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i]!;
    if (target < 0) return i;
  }
  return weights.length - 1;
}

describe('speculative acceptance of an upstream draft', () => {
  it.each([
    [1, 1],
    [0.7, 0.9],
    [1.3, 0.6],
  ])('follows the watermarked target q exactly (T = %s, top-p = %s)', (temperature, topP) => {
    const distributions = draftDistributions(candidates, context, { watermarker, temperature, topP });
    const random = createRandom(1234);
    const counts = new Float64Array(candidates.ids.length);
    const trials = 200_000;
    for (let t = 0; t < trials; t++) {
      const draft = candidates.ids[drawFrom(distributions.p, random)]!;
      const { token } = acceptDraft(distributions, draft, random);
      counts[candidates.ids.indexOf(token)]!++;
    }
    let chiSquare = 0;
    let cells = 0;
    for (let i = 0; i < counts.length; i++) {
      const expected = distributions.q[i]! * trials;
      if (expected === 0) {
        expect(counts[i]).toBe(0);
        continue;
      }
      chiSquare += (counts[i]! - expected) ** 2 / expected;
      cells++;
    }
    // 99.9th percentile of chi-square with ≤ 11 degrees of freedom is 31.3.
    expect(chiSquare).toBeLessThan(31.3);
    expect(cells).toBeGreaterThan(1);
  });

  it.each([
    [0.7, 1, 4, 0],
    [0.7, 0.9, 8, 0],
    [1, 1, 3, 2],
    [0.7, 1, 16, 0],
    [0.7, 0.9, 64, 1],
    [1.3, 1, 2, 0],
  ])(
    'several independent drafts (T = %s, top-p = %s, %s drafts, %s top-k entries without an id) still give q exactly',
    (temperature, topP, count, unmappedCount) => {
      // Unmapped entries: the upstream can draw them (p has their mass) but q never takes them.
      const unmapped = Array.from({ length: unmappedCount }, (_, i) => -0.5 - 0.4 * i);
      const distributions = draftDistributions(
        candidates,
        context,
        { watermarker, temperature, topP },
        unmapped,
      );
      const full = draftDistributions(
        {
          ids: Uint32Array.from([...candidates.ids, 1, 2].slice(0, 12 + unmappedCount)),
          logits: Float32Array.from([...candidates.logits, ...unmapped]),
        },
        context,
        { watermarker: null, temperature, topP: 1 },
      ).p;
      expect(distributions.p.reduce((a, b) => a + b, 0)).toBeCloseTo(
        1 - full.slice(12).reduce((a, b) => a + b, 0),
        6,
      );
      const random = createRandom(99);
      const counts = new Float64Array(candidates.ids.length);
      let accepted = 0;
      const trials = 100_000;
      for (let t = 0; t < trials; t++) {
        const drafts = Array.from({ length: count }, () => {
          const index = drawFrom(full, random);
          return index < 12 ? candidates.ids[index]! : null;
        });
        const outcome = acceptAmongDrafts(distributions, drafts, random);
        if (outcome.draftIndex >= 0) {
          expect(outcome.token).toBe(drafts[outcome.draftIndex]);
          accepted++;
        }
        counts[candidates.ids.indexOf(outcome.token)]!++;
      }
      let chiSquare = 0;
      for (let i = 0; i < counts.length; i++) {
        const expected = distributions.q[i]! * trials;
        if (expected === 0) {
          expect(counts[i]).toBe(0);
          continue;
        }
        chiSquare += (counts[i]! - expected) ** 2 / expected;
      }
      expect(chiSquare).toBeLessThan(31.3);
      // More drafts, more acceptance: above what one draft gets (the overlap of p and q).
      const overlap = Array.from(distributions.q, (q, i) => Math.min(q, distributions.p[i]!)).reduce(
        (a, b) => a + b,
        0,
      );
      expect(accepted / trials).toBeGreaterThan(overlap + 0.05);
      // and as often as the selection's overlap with q says (4 standard errors)
      const { selected } = draftSelection(distributions, count);
      const expected = Array.from(distributions.q, (q, i) => Math.min(q, selected[i]!)).reduce(
        (a, b) => a + b,
        0,
      );
      expect(Math.abs(accepted / trials - expected)).toBeLessThan(
        4 * Math.sqrt((expected * (1 - expected)) / trials) + 1e-9,
      );
    },
  );

  it('two groups (green and red): accepts as often as any exact method can, above recursive rejection', () => {
    const distributions = draftDistributions(candidates, context, { watermarker, temperature: 0.7, topP: 1 });
    const green = Array.from(candidates.ids, (id) => watermarker.candidateTester(context)(id) === 1);
    const mass = (values: Float64Array, want: boolean) =>
      values.reduce((sum, value, i) => sum + (green[i] === want ? value : 0), 0);
    const [pGreen, pRed, qGreen, qRed] = [
      mass(distributions.p, true),
      mass(distributions.p, false),
      mass(distributions.q, true),
      mass(distributions.q, false),
    ];
    expect(qGreen).toBeGreaterThan(pGreen);
    for (const count of [1, 2, 3, 5, 16]) {
      const { selected } = draftSelection(distributions, count);
      const overlap = Array.from(distributions.q, (q, i) => Math.min(q, selected[i]!)).reduce(
        (a, b) => a + b,
        0,
      );
      // For any set S, an accepted token outside S was drawn, or one in S was: P ≤ q(S^c) + 1 − p(S^c)^n;
      // S = green and S = red give the two bounds, and the least of them is reached.
      const bound = Math.min(1, qRed + 1 - pRed ** count, qGreen + 1 - pGreen ** count);
      expect(overlap).toBeCloseTo(bound, 12);
      // recursive rejection accepts a green draft after a rejection, never a red one
      const overlapOne = Math.min(qGreen, pGreen) + Math.min(qRed, pRed);
      const recursive = overlapOne + (1 - overlapOne) * (1 - pRed ** (count - 1));
      if (count >= 2) expect(overlap).toBeGreaterThan(recursive);
    }
  });

  it('q boosts green candidates by e^(δ/T) relative to p, and drops what top-p drops', () => {
    const { p, q } = draftDistributions(candidates, context, { watermarker, temperature: 1, topP: 1 });
    const test = watermarker.candidateTester(context);
    const ratios = Array.from(candidates.ids, (id, i) => ({ green: test(id) === 1, ratio: q[i]! / p[i]! }));
    const green = ratios.filter((r) => r.green).map((r) => r.ratio);
    const red = ratios.filter((r) => !r.green).map((r) => r.ratio);
    expect(green.length).toBeGreaterThan(0);
    expect(red.length).toBeGreaterThan(0);
    for (const g of green) expect(g / red[0]!).toBeCloseTo(Math.exp(watermarker.scheme.delta), 6);
    const truncated = draftDistributions(candidates, context, { watermarker, temperature: 1, topP: 0.3 });
    expect(truncated.q.at(-1)).toBe(0);
  });

  it('greedy: accepts the draft only when it is the watermarked argmax', () => {
    const distributions = draftDistributions(candidates, context, { watermarker, temperature: 0, topP: 1 });
    const best = candidates.ids[distributions.q.indexOf(1)]!;
    const random = createRandom(1);
    // A greedy upstream drafts its own argmax; it stands only if the watermark does not move the argmax.
    const drafted = candidates.ids[distributions.p.indexOf(1)]!;
    expect(acceptDraft(distributions, drafted, random)).toEqual({ token: best, accepted: drafted === best });
    const unboosted = draftDistributions(candidates, context, { watermarker: null, temperature: 0, topP: 1 });
    expect(acceptDraft(unboosted, drafted, random)).toEqual({ token: drafted, accepted: true });
    expect(sampleTarget(distributions, random)).toBe(best);
  });

  it.each([
    [1, 1],
    [0.7, 0.3],
    [0.05, 0.9],
    [1.5, 0.05],
  ])('q is the distribution core samples from: same green mass (T = %s, top-p = %s)', (temperature, topP) => {
    const { q } = draftDistributions(candidates, context, { watermarker, temperature, topP });
    const test = watermarker.candidateTester(context);
    const green = Array.from(candidates.ids).reduce((sum, id, i) => sum + (test(id) === 1 ? q[i]! : 0), 0);
    const core = stepStrength(candidates, context, { watermarker, temperature, topP });
    expect(green).toBeCloseTo(core.greenProbability, 9);
    expect(q.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('a draft outside the candidates is resampled', () => {
    const distributions = draftDistributions(candidates, context, { watermarker, temperature: 1, topP: 1 });
    const outcome = acceptDraft(distributions, 999_999, createRandom(3));
    expect(outcome.accepted).toBe(false);
    expect(candidates.ids).toContain(outcome.token);
  });

  it('reported logprobs are a normalized distribution over the candidates', () => {
    const reported = reportedLogprobs(candidates, context, watermarker, candidates.ids[0]!, 12);
    const total = reported.top.reduce((sum, entry) => sum + Math.exp(entry.logprob), 0);
    expect(total).toBeCloseTo(1, 6);
    expect(reported.top[0]!.logprob).toBeGreaterThanOrEqual(reported.top[1]!.logprob);
  });
});

describe('block verification of a chain of drafts', () => {
  // A three-token vocabulary whose p and q depend on the whole prefix (fixed, drawn once per prefix).
  const V = 3;
  function chainModel(seed: number) {
    const random = createRandom(seed);
    const table = new Map<string, { ids: Uint32Array; p: Float64Array; q: Float64Array }>();
    const draw = () => {
      const values = Float64Array.from({ length: V }, () => random.nextFloat() + 0.05);
      const total = values.reduce((a, b) => a + b, 0);
      return values.map((v) => v / total);
    };
    return (prefix: readonly number[]) => {
      const key = prefix.join(',');
      if (!table.has(key)) table.set(key, { ids: Uint32Array.from([0, 1, 2]), p: draw(), q: draw() });
      return table.get(key)!;
    };
  }
  const qPath = (at: ReturnType<typeof chainModel>, path: readonly number[]) =>
    path.reduce((product, token, i) => product * at(path.slice(0, i)).q[token]!, 1);
  /** Tokens per chain token by token: the first k drafts are kept with probability Π min(p, q), summed. */
  const tokenByTokenLength = (at: ReturnType<typeof chainModel>, length: number): number => {
    const walk = (prefix: number[], probability: number): number => {
      if (prefix.length === length) return probability;
      const { p, q } = at(prefix);
      let sum = probability;
      for (let x = 0; x < V; x++) sum += walk([...prefix, x], probability * Math.min(p[x]!, q[x]!));
      return sum;
    };
    return walk([], 1);
  };

  it.each([1, 2, 3])(
    'with %s drafts, the tokens it returns, continued from q, follow q exactly (chi-square over whole paths)',
    (length) => {
      const at = chainModel(40 + length);
      const random = createRandom(7 + length);
      const counts = new Map<string, number>();
      const trials = 40_000;
      let emitted = 0;
      for (let t = 0; t < trials; t++) {
        const drafts: number[] = [];
        for (let i = 0; i < length; i++) drafts.push(drawFrom(at(drafts).p, random));
        const steps = Array.from({ length: length + 1 }, (_, k) => at(drafts.slice(0, k)));
        const { tokens, kept } = verifyChain(steps, drafts, random);
        expect(tokens.slice(0, kept)).toEqual(drafts.slice(0, kept));
        expect(tokens).toHaveLength(kept + 1);
        emitted += tokens.length;
        const path = [...tokens];
        while (path.length < length + 1) path.push(drawFrom(at(path).q, random));
        counts.set(path.join(','), (counts.get(path.join(',')) ?? 0) + 1);
      }
      let chiSquare = 0;
      let cells = 0;
      const paths = (size: number): number[][] =>
        size === 0 ? [[]] : paths(size - 1).flatMap((path) => [0, 1, 2].map((token) => [...path, token]));
      for (const path of paths(length + 1)) {
        const expected = qPath(at, path) * trials;
        chiSquare += ((counts.get(path.join(',')) ?? 0) - expected) ** 2 / expected;
        cells++;
      }
      // 99.9th percentiles of chi-square with 8, 26 and 80 degrees of freedom: 26.1, 54.1, 124.8
      expect(chiSquare).toBeLessThan({ 9: 26.1, 27: 54.1, 81: 124.8 }[cells]!);
      expect(emitted / trials).toBeGreaterThan(tokenByTokenLength(at, length) - 0.01);
    },
  );

  it('exactly: over every chain of drafts, its tokens continued from q give q (200 models, 1–3 drafts)', () => {
    let worst = 0;
    let blockTokens = 0;
    let tokenTokens = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const at = chainModel(1000 + seed);
      for (let length = 1; length <= 3; length++) {
        // P[the emitted tokens are e] summed over every chain of drafts
        const emitted = new Map<string, number>();
        const visit = (drafts: number[], probability: number) => {
          if (drafts.length < length) {
            const { p } = at(drafts);
            for (let x = 0; x < V; x++) visit([...drafts, x], probability * p[x]!);
            return;
          }
          const steps = Array.from({ length: length + 1 }, (_, k) => at(drafts.slice(0, k)));
          const { kept, next } = chainOutcomes(steps, drafts);
          for (let tau = 0; tau <= length; tau++) {
            const total = next[tau]!.reduce((a, b) => a + b, 0);
            for (let x = 0; x < V; x++) {
              const key = [...drafts.slice(0, tau), x].join(',');
              const share = (probability * kept[tau]! * next[tau]![x]!) / total;
              emitted.set(key, (emitted.get(key) ?? 0) + share);
              if (length === 3) blockTokens += share * (tau + 1);
            }
          }
        };
        visit([], 1);
        // every path of length + 1 tokens: Σ over its prefixes e of P[e] · q(the rest | e) = q(path)
        const paths = (size: number): number[][] =>
          size === 0 ? [[]] : paths(size - 1).flatMap((path) => [0, 1, 2].map((token) => [...path, token]));
        for (const path of paths(length + 1)) {
          let total = 0;
          for (let end = 1; end <= length + 1; end++) {
            const share = emitted.get(path.slice(0, end).join(',')) ?? 0;
            total += share * (qPath(at, path) / qPath(at, path.slice(0, end)));
          }
          worst = Math.max(worst, Math.abs(total - qPath(at, path)));
        }
        if (length === 3) tokenTokens += tokenByTokenLength(at, length);
      }
    }
    expect(worst).toBeLessThan(1e-12);
    // and it keeps more than token by token: 2.85 against 2.59 tokens per chain of 3 here
    expect(blockTokens / 200).toBeGreaterThan(tokenTokens / 200 + 0.1);
  });

  it('a draft without an id here is never kept, nor anything after it', () => {
    const at = chainModel(9);
    const random = createRandom(3);
    for (let t = 0; t < 2000; t++) {
      const steps = [at([]), at([1]), at([1, 2])];
      const { tokens, kept } = verifyChain(steps, [1, null], random);
      expect(kept).toBeLessThanOrEqual(1);
      expect(tokens.every((token) => token !== null && token >= 0 && token < V)).toBe(true);
    }
    expect(() => verifyChain([at([])], [1], random)).toThrow(/one step more/);
  });
});

describe('text assembly', () => {
  const tokenizer = getTokenizer('cl100k_base');
  const feed = (text: string, stops: string[]) => {
    const assembler = new TextAssembler(tokenizer, stops);
    let shown = '';
    let stopped = false;
    for (const token of tokenizer.encode(text)) {
      const step = assembler.push(token);
      shown += step.delta;
      if (step.stopped) {
        stopped = true;
        break;
      }
    }
    if (!stopped) shown += assembler.finish().delta;
    return { shown, stopped, text: assembler.text };
  };

  it('never shows a stop sequence, even one split across tokens', () => {
    expect(feed('Hello world. Goodbye.', ['. G'])).toEqual({
      shown: 'Hello world',
      stopped: true,
      text: 'Hello world',
    });
    expect(feed('abc END def', ['END'])).toMatchObject({ shown: 'abc ', stopped: true });
  });

  it('holds back a partial character until it is complete', () => {
    const text = 'naïve café 日本語 🎉 done';
    expect(feed(text, [])).toEqual({ shown: text, stopped: false, text });
  });

  it('flushes a held prefix of a stop sequence when generation ends', () => {
    expect(feed('the end', ['end of story'])).toEqual({ shown: 'the end', stopped: false, text: 'the end' });
  });
});
