import { describe, expect, it } from 'vitest';
import { createDetection, detect } from './detect.ts';
import { generateAll } from './generate.ts';
import {
  GUMBEL_NOISE_MAX,
  gumbelChoice,
  gumbelLog10PValue,
  gumbelLogPValue,
  gumbelWindowScan,
} from './gumbel.ts';
import { createWatermarkKey, KeyFileError, parseKeyFile, serializeKeyFile } from './keys.ts';
import { createRandom } from './random.ts';
import { sampleToken, stepStrength } from './sampling.ts';
import { createScheme } from './scheme.ts';
import { createWatermarker } from './watermarker.ts';

const secret = (fill: number) => new Uint8Array(32).fill(fill);
const gumbelMarker = (fill = 1, contextWidth = 4) =>
  createWatermarker(createWatermarkKey({ secret: secret(fill), scheme: { name: 'gumbel', contextWidth } }));

/** A small deterministic model: logits from the last two tokens. */
function toyModel(vocabulary: number, spread: number) {
  return {
    nextLogits(context: Uint32Array): Float32Array {
      const a = context[context.length - 1] ?? 0;
      const b = context[context.length - 2] ?? 0;
      const random = createRandom(a * 7919 + b * 104729 + 1);
      const logits = new Float32Array(vocabulary);
      for (let x = 0; x < vocabulary; x++) logits[x] = spread * random.nextFloat() ** 3;
      return logits;
    },
  };
}

describe('keyed choice', () => {
  it('is distortion-free: over many seeds each candidate wins with its probability', () => {
    const tokens = [5, 9, 2, 40];
    const logits = [1.5, 0.5, 0, -1];
    const weights = logits.map((v) => Math.exp(v / 0.9));
    const total = weights.reduce((a, b) => a + b);
    const random = createRandom(3);
    const draws = 20_000;
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < draws; i++) {
      const u = new Map(tokens.map((t) => [t, random.nextFloat()]));
      counts[gumbelChoice(tokens, logits, 0.9, (t) => u.get(t)!).index]!++;
    }
    counts.forEach((count, j) => {
      const p = weights[j]! / total;
      expect(Math.abs(count - draws * p)).toBeLessThan(5 * Math.sqrt(draws * p * (1 - p)));
    });
  });

  it('skips exactly: the lazy choice equals evaluating every candidate', () => {
    const random = createRandom(11);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(random.nextFloat() * 300);
      const tokens = Array.from({ length: n }, (_, i) => i * 3 + 1);
      const spread = [1, 10, 100, 1000][trial % 4]!;
      const logits = tokens.map(() => Math.fround(random.nextFloat() * spread));
      const u = new Map(tokens.map((t) => [t, Math.floor(random.nextFloat() * 2 ** 52) / 2 ** 52]));
      const temperature = [0.05, 0.5, 1, 3][trial % 4]!;
      const lazy = gumbelChoice(tokens, logits, temperature, (t) => u.get(t)!);
      const max = Math.max(...logits);
      let best = 0;
      let bestKey = Number.NEGATIVE_INFINITY;
      tokens.forEach((t, j) => {
        const key = (logits[j]! - max) / temperature - Math.log(-Math.log(u.get(t)!));
        if (key > bestKey) {
          bestKey = key;
          best = j;
        }
      });
      expect(lazy.index).toBe(best);
      if (spread >= 1000 && temperature <= 0.5) expect(lazy.uniformsEvaluated).toBeLessThan(n + 1);
    }
    expect(GUMBEL_NOISE_MAX).toBeCloseTo(Math.log(2 ** 52), 9);
  });

  it('evaluates only the kept candidates under top-k', () => {
    const logits = new Float32Array(50_000).map((_, i) => Math.sin(i));
    const result = sampleToken(logits, [1, 2, 3, 4], createRandom(1), {
      watermarker: gumbelMarker(),
      topK: 40,
    });
    expect(result.membershipTests).toBeLessThanOrEqual(40);
    expect(result.gumbelKey).toBe(0);
  });

  it('is unmarked at T = 0 and without a window', () => {
    const logits = Float32Array.from([0, 3, 1]);
    expect(
      sampleToken(logits, [1, 2, 3, 4], createRandom(1), { watermarker: gumbelMarker(), temperature: 0 }),
    ).toEqual({
      token: 1,
      membershipTests: 0,
      gumbelKey: null,
    });
    expect(sampleToken(logits, [1], createRandom(1), { watermarker: gumbelMarker() }).gumbelKey).toBeNull();
  });
});

describe('exact tails', () => {
  it('dual, n = 1: the hypoexponential closed form', () => {
    const alpha = 0.3;
    const scheme = createScheme({ name: 'dual_gumbel', alpha });
    for (const s of [0.1, 1, 5, 30, 200]) {
      const a = 1 - alpha;
      const b = alpha;
      const closed = Math.log((a * Math.exp(-s / a) - b * Math.exp(-s / b)) / (a - b));
      expect(gumbelLogPValue(scheme, 1, s)).toBeCloseTo(closed, 10);
    }
  });
  it('stays finite far below 1e-308 and is 0 for n = 0', () => {
    const gumbel = createScheme({ name: 'gumbel' });
    expect(gumbelLog10PValue(gumbel, 1000, 5000)).toBeLessThan(-1000);
    expect(gumbelLog10PValue(gumbel, 0, 0)).toBe(0);
    expect(() => gumbelLog10PValue(createScheme(), 1, 1)).toThrow(TypeError);
  });
});

describe('generation and detection', () => {
  it('finds its own mark, not another key, streaming equal to one-shot, windows and Holm', async () => {
    const watermarker = gumbelMarker(2);
    const source = toyModel(300, 6);
    const prompt = [7, 8, 9, 10, 11];
    const tokens = await generateAll({ source, prompt, maxTokens: 150, watermarker, seed: 5, topP: 0.95 });
    const marked = detect(tokens, watermarker, { prompt });
    expect(marked.verdict).toBe('watermarked');
    expect(marked.results[0]!.log10P).toBeLessThan(-8);
    const session = createDetection(watermarker, { prompt });
    for (let at = 0; at < tokens.length; at += 13) session.push(tokens.subarray(at, at + 13));
    expect(session.finish()).toEqual(marked);
    const other = detect(tokens, gumbelMarker(3), { prompt });
    expect(other.verdict).toBe('insufficient');
    expect(other.tokensToSettle).toBe(Number.POSITIVE_INFINITY);
    const green = createWatermarker(createWatermarkKey({ secret: secret(2) }));
    const both = detect(tokens, [green, watermarker], { prompt, window: true });
    expect(both.matchedKeyId).toBe(watermarker.keyId);
    expect(both.results[1]!.window!.windowsSearched).toBeGreaterThan(1);
    expect(both.results[1]!.log10PAdjusted).toBeGreaterThanOrEqual(both.results[1]!.window!.log10PCorrected);
    // Windowed: a marked passage inside unmarked text is found.
    const unmarked = await generateAll({ source, prompt, maxTokens: 400, watermarker: null, seed: 6 });
    const mixed = Uint32Array.from([...unmarked.slice(0, 200), ...tokens, ...unmarked.slice(200)]);
    const windowed = detect(mixed, watermarker, { prompt, window: true }).results[0]!;
    expect(windowed.window!.startToken).toBeGreaterThanOrEqual(150);
    expect(windowed.window!.endToken).toBeLessThanOrEqual(400);
    const scan = gumbelWindowScan(new Float64Array([5, 5, 5]), watermarker.scheme, 16);
    expect(scan.windowsSearched).toBe(1);
  });

  it('repeated contexts: skip keeps the text more diverse than mark', async () => {
    const source = toyModel(40, 3);
    const watermarker = gumbelMarker(4, 1);
    const distinct = (tokens: Uint32Array) =>
      new Set(Array.from(tokens.slice(1), (t, i) => `${tokens[i]},${t}`)).size;
    let skip = 0;
    let mark = 0;
    for (let seed = 0; seed < 6; seed++) {
      const options = { source, prompt: [seed + 1], maxTokens: 120, watermarker, seed };
      skip += distinct(await generateAll({ ...options, repeatedContexts: 'skip' }));
      mark += distinct(await generateAll({ ...options, repeatedContexts: 'mark' }));
    }
    expect(skip).toBeGreaterThan(mark);
  });

  it('dual key: routing by gumbelKey, both keys detected', async () => {
    const key = createWatermarkKey({ secret: secret(9), scheme: { name: 'dual_gumbel', alpha: 0.3 } });
    const watermarker = createWatermarker(key);
    const source = toyModel(300, 6);
    for (const gumbelKey of [0, 1] as const) {
      const tokens = await generateAll({
        source,
        prompt: [1, 2, 3, 4],
        maxTokens: 200,
        watermarker,
        seed: 2,
        gumbelKey,
      });
      expect(detect(tokens, watermarker, { prompt: [1, 2, 3, 4] }).verdict).toBe('watermarked');
    }
  });
});

describe('tokenScores', () => {
  it('gives tokenScore of every unit, in WebAssembly and on the scalar path, gumbel and dual_gumbel', () => {
    const random = createRandom(7);
    // Past one WebAssembly call's units (16,384), with seeds and tokens over the whole 32-bit range.
    const count = 40_000;
    const units = new Uint32Array(3 * count);
    for (let i = 0; i < units.length; i++) units[i] = Math.floor(random.nextFloat() * 2 ** 32);
    for (const scheme of [
      { name: 'gumbel', contextWidth: 2 },
      { name: 'dual_gumbel', contextWidth: 3, alpha: 0.3 },
    ] as const) {
      const key = createWatermarkKey({ secret: secret(3), scheme });
      for (const accelerate of [true, false]) {
        const watermarker = createWatermarker(key, { accelerate });
        const out = new Float64Array(count + 1).fill(-1);
        watermarker.tokenScores(units, count, out);
        for (let i = 0; i < count; i++) {
          const expected = watermarker.tokenScore(units[3 * i + 1]!, units[3 * i]!, units[3 * i + 2]!);
          if (out[i] !== expected) expect(out[i], `${scheme.name} unit ${i}`).toBe(expected);
        }
        expect(out[count]).toBe(-1);
      }
    }
  });

  it('refuses units that do not fit, and green-list keys', () => {
    const watermarker = gumbelMarker();
    expect(() => watermarker.tokenScores(new Uint32Array(5), 2, new Float64Array(2))).toThrow(
      /2 units do not fit 5 words/,
    );
    expect(() => watermarker.tokenScores(new Uint32Array(6), 2, new Float64Array(1))).toThrow(/or 1 scores/);
    const green = createWatermarker(createWatermarkKey({ secret: secret(1) }));
    expect(() => green.tokenScores(new Uint32Array(3), 1, new Float64Array(1))).toThrow(/no uniforms/);
  });
});

describe('keys and refusals', () => {
  it('key files round-trip; old green-list files read as before', () => {
    for (const scheme of [
      { name: 'gumbel' as const },
      { name: 'dual_gumbel' as const, alpha: 0.25, contextWidth: 2 },
    ]) {
      const key = createWatermarkKey({ secret: secret(5), scheme });
      expect(parseKeyFile(serializeKeyFile(key)).scheme).toEqual(key.scheme);
    }
    const old = serializeKeyFile(createWatermarkKey({ secret: secret(5), scheme: { gamma: 0.5, delta: 1 } }));
    expect(JSON.parse(old).scheme).toEqual({ name: 'lefthash', contextWidth: 1, gamma: 0.5, delta: 1 });
    const withExtra = old.replace('"delta": 1', '"delta": 1, "alpha": 0.3');
    expect(parseKeyFile(withExtra).scheme.alpha).toBe(0);
    const gumbelFile = serializeKeyFile(
      createWatermarkKey({ secret: secret(5), scheme: { name: 'gumbel' } }),
    );
    expect(() =>
      parseKeyFile(gumbelFile.replace('"contextWidth": 4', '"contextWidth": 4, "gamma": 0.25')),
    ).toThrow(KeyFileError);
    // Refused whatever the value: δ = 0 and α = 0 are what the scheme object reports, not what a file may hold.
    for (const extra of ['"delta": 0', '"alpha": 0', '"gamma": null']) {
      expect(() =>
        parseKeyFile(gumbelFile.replace('"contextWidth": 4', `"contextWidth": 4, ${extra}`)),
      ).toThrow(/does not apply to the gumbel scheme/);
    }
    expect(() => createScheme({ name: 'dual_gumbel', alpha: 1 })).toThrow(/scheme\.alpha/);
    expect(() => createScheme({ name: 'lefthash', alpha: 0.1 })).toThrow(/scheme\.alpha/);
  });

  it('green-list entry points refuse a Gumbel key by name', () => {
    const watermarker = gumbelMarker();
    expect(() => watermarker.isGreen(0, 0, 1)).toThrow(/no green list/);
    expect(() => watermarker.candidateTester([1, 2, 3, 4])).toThrow(/no green list/);
    expect(() => stepStrength(new Float32Array(3), [1, 2, 3, 4], { watermarker })).toThrow(TypeError);
    expect(() => detect([1, 2, 3], watermarker, { alternativeGreenFraction: 0.5 })).toThrow(
      /no green fraction/,
    );
    const green = createWatermarker(createWatermarkKey({ secret: secret(1) }));
    expect(() => green.uniform(0, 0, 1)).toThrow(/no uniforms/);
    try {
      watermarker.isGreen(0, 0, 1);
    } catch (error) {
      expect((error as Error).message).not.toContain('01'.repeat(32));
    }
  });
});
