import { readFileSync } from 'node:fs';
import { createRandom, createWatermarker, createWatermarkKey, type WatermarkKey } from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { type AnyDocumentResult, createTextDetector, type VllmKeyResult } from './detector.ts';
import { InputError } from './errors.ts';
import { vllmAlternative } from './vllm-detection.ts';
import { createVllmWatermarkKey, type VllmKeyOptions, type VllmWatermarkKey } from './vllm-keys.ts';

interface VectorDetection {
  detectionKey: string;
  dedup: boolean;
  numScored: number;
  score: number;
  peerFormulaLog10: number | null;
  exactLog10: number;
}
interface VectorCase {
  name: string;
  scheme: 'gumbel' | 'dual_key_gumbel' | 'red_green' | 'sbw';
  prf: string;
  engineKey: string;
  contextWidth: number;
  alpha?: number;
  gamma?: number;
  delta?: number;
  sbwScheme?: 'selfhash' | 'lefthash';
  shipped: 'main' | 'early' | 'branch' | 'composed';
  /** `peak`: a model that favours one token, so the text repeats itself. */
  generation: { kind: string; peak?: unknown };
  tokens: number[];
  detections: VectorDetection[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../core/test/vectors/foreign/vllm.json', import.meta.url), 'utf8'),
) as { cases: VectorCase[] };
/** Cases vLLM shipped (composed ones are refused as keys). */
const shipped = vectors.cases.filter((c) => c.shipped !== 'composed');
const marked = shipped.filter((c) => c.generation.kind === 'peer-watermarker');

function keyOf(c: VectorCase, change: Partial<VllmKeyOptions> = {}): VllmWatermarkKey {
  return createVllmWatermarkKey({
    scheme: c.scheme,
    engineKey: BigInt(c.engineKey),
    prf: c.prf as 'philox',
    contextWidth: c.contextWidth,
    ...(c.alpha === undefined ? {} : { alpha: c.alpha }),
    ...(c.gamma === undefined ? {} : { gamma: c.gamma }),
    ...(c.delta === undefined ? {} : { delta: c.delta }),
    ...(c.sbwScheme === undefined ? {} : { sbwScheme: c.sbwScheme }),
    ...change,
  });
}

const own = (c: VectorCase, dedup = true): VectorDetection =>
  c.detections.find((d) => d.detectionKey === c.engineKey && d.dedup === dedup)!;

/** Relative closeness of two log10 p-values, for tails down to 10^−1200. */
function expectLog10Close(actual: number, expected: number, label: string): void {
  expect(Math.abs(actual - expected), label).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)));
}

describe('vLLM keys on token ids vLLM marked (packages/core/test/vectors/foreign/vllm.json)', () => {
  it.each(marked.filter((c) => c.sbwScheme !== 'lefthash').map((c) => [c.name, c] as const))(
    '%s: watermarked, with the exact and vLLM p-values of the vectors',
    (_name, c) => {
      const expected = own(c);
      const result = createTextDetector({ keys: [keyOf(c)], vllmDedup: 'context' }).detectTokens(c.tokens);
      const detail = result.keys[0] as VllmKeyResult;
      expect(result.verdict).toBe(expected.exactLog10 <= -4 ? 'watermarked' : 'insufficient');
      expect(result.tokensToSettle).toBe(result.verdict === 'watermarked' ? 0 : Number.POSITIVE_INFINITY);
      // The default, strict, is the same but for sbw, where it scores each (seed, token) pair once: on
      // text that repeats itself over a 16-token vocabulary that leaves too few tokens to decide.
      const strict = createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens);
      expect(strict.dedup).toBe('strict');
      const numbers = (r: AnyDocumentResult) => [r.verdict, r.numScored, r.score, r.log10P, r.peerLog10P];
      if (c.scheme !== 'sbw') expect(numbers(strict)).toEqual(numbers(result));
      else if (c.generation.peak === undefined) expect(strict.verdict).toBe(result.verdict);
      else expect(strict.verdict).not.toBe('not_watermarked');
      expect(result.numTokens).toBe(c.tokens.length);
      expect(result.numScored).toBe(expected.numScored);
      expect(result.score).toBeCloseTo(expected.score, 8);
      expectLog10Close(result.log10P, expected.exactLog10, 'exact');
      if (expected.peerFormulaLog10 !== null)
        expectLog10Close(result.peerLog10P!, expected.peerFormulaLog10, 'vLLM');
      expect(result.log10PAdjusted).toBe(result.log10P);
      expect(result.scheme).toBe(`vllm:${c.scheme}`);
      expect(result.dedup).toBe('context');
      expect(detail.keyId).toBe(result.keyId);
      if (c.scheme === 'gumbel' || c.scheme === 'dual_key_gumbel') {
        expect(result.numGreen).toBeNull();
        expect(result.greenFraction).toBeNull();
      } else {
        expect(result.numGreen).toBe(Math.round(expected.score));
      }
    },
  );

  it("sbw lefthash: vLLM's detector seeds do not find the engine's marks; the generator's do", () => {
    for (const c of marked.filter((x) => x.sbwScheme === 'lefthash')) {
      const detectorSeeds = createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens);
      expect(detectorSeeds.verdict, c.name).not.toBe('watermarked');
      expectLog10Close(detectorSeeds.log10P, own(c).exactLog10, c.name);
      const generatorSeeds = createTextDetector({
        keys: [keyOf(c, { sbwLefthashSeeds: 'generator' })],
      }).detectTokens(c.tokens);
      expect(generatorSeeds.verdict, c.name).toBe('watermarked');
    }
  });

  it('--dedup none and context reproduce the vectors with and without vLLM deduplication', () => {
    for (const c of shipped) {
      for (const dedup of [true, false]) {
        const expected = c.detections.find((d) => d.detectionKey === c.engineKey && d.dedup === dedup);
        if (expected === undefined) continue;
        const result = createTextDetector({
          keys: [keyOf(c)],
          vllmDedup: dedup ? 'context' : 'none',
        }).detectTokens(c.tokens);
        expect(result.numScored, c.name).toBe(expected.numScored);
        expectLog10Close(result.log10P, expected.exactLog10, c.name);
        expect(result.dedup).toBe(dedup ? 'context' : 'none');
      }
    }
  });

  it('strict never scores more than context', () => {
    for (const c of shipped) {
      const detect = (vllmDedup: 'context' | 'strict') =>
        createTextDetector({ keys: [keyOf(c)], vllmDedup }).detectTokens(c.tokens).numScored;
      expect(detect('strict'), c.name).toBeLessThanOrEqual(detect('context'));
    }
  });

  it('a session fed in chunks equals one call', () => {
    const c = marked[0]!;
    const detector = createTextDetector({ keys: [keyOf(c)] });
    const session = detector.session({ source: 'chunks' });
    for (let at = 0; at < c.tokens.length; at += 7) session.pushTokens(c.tokens.slice(at, at + 7));
    expect(session.finish()).toEqual(detector.detectTokens(c.tokens, { source: 'chunks' }));
  });

  it('a dual key of tiny α (any α vLLM accepts) is scored, near the α = 0 key on the same marks', () => {
    const c = marked.find((x) => x.scheme === 'dual_key_gumbel' && x.alpha === 0)!;
    const zero = createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens);
    expect(zero.verdict).toBe('watermarked');
    // At α = 1e−6 the exact tail's mixture would have needed more than 10^8 terms (it was refused).
    for (const alpha of [1e-4, 1e-6, 1e-9]) {
      const result = createTextDetector({ keys: [keyOf(c, { alpha })] }).detectTokens(c.tokens);
      expect(result.verdict, `α ${alpha}`).toBe('watermarked');
      // The score moves by about α·n from α = 0's, and so does ln p (the Gamma hazard is below 1).
      expect(Math.abs(result.log10P - zero.log10P), `α ${alpha}`).toBeLessThan(2 * alpha * c.tokens.length);
    }
  });

  it('--fpr sets the verdict: a p-value above a tiny α is insufficient', () => {
    const c = marked[0]!;
    const result = createTextDetector({ keys: [keyOf(c)], fpr: 1e-120 }).detectTokens(c.tokens);
    expect(result.verdict).toBe('insufficient');
    expect(result.fpr).toBe(1e-120);
  });
});

/** Never `watermarked`: the outcome for every mismatch between key and text. */
function expectNotWatermarked(result: AnyDocumentResult, label: string): void {
  expect(result.verdict, label).not.toBe('watermarked');
  expect(result.log10PAdjusted, label).toBeGreaterThan(-4);
}

describe('bad input: never a false watermarked', () => {
  it('a wrong engine key', () => {
    for (const c of marked) {
      const limit = c.scheme === 'sbw' ? 1n << 63n : c.prf === 'hmac-sha256-v1' ? 1n << 256n : 1n << 64n;
      const engineKey = BigInt(c.engineKey);
      const wrong = engineKey + 1n < limit ? engineKey + 1n : engineKey - 1n;
      expectNotWatermarked(
        createTextDetector({ keys: [keyOf(c, { engineKey: wrong })] }).detectTokens(c.tokens),
        c.name,
      );
    }
  });

  it('a wrong context width (sbw selfhash aside: see the next test)', () => {
    for (const c of marked.filter((x) => x.sbwScheme !== 'selfhash')) {
      for (const width of [c.contextWidth - 1, c.contextWidth + 1]) {
        if (width < 1) continue;
        expectNotWatermarked(
          createTextDetector({ keys: [keyOf(c, { contextWidth: width })] }).detectTokens(c.tokens),
          `${c.name} width ${width}`,
        );
      }
    }
  });

  it('sbw selfhash at a neighbouring width finds the same engine key: a true mark, not a false one', () => {
    // Its seed is a minimum over the window (spec §6.4): widths w and w ± 1 share most minima, so
    // the text does carry a mark of that engine key at the other width too.
    const c = marked.find((x) => x.name === 'sbw-selfhash-k42-w4')!;
    const other = createTextDetector({ keys: [keyOf(c, { contextWidth: 3 })] }).detectTokens(c.tokens);
    expect(other.verdict).toBe('watermarked');
    expect(other.log10P).toBeGreaterThan(
      createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens).log10P,
    );
  });

  it("sbw with context deduplication (vLLM's detector) flags repeated tokens; strict does not", () => {
    // selfhash at width 1 seeds with the token alone: a text that repeats a green token is "marked"
    // under vLLM's rule, for any key. Find a key under which token 11 is green, then repeat it.
    const repeated = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? 11 : 12 + (i % 40)));
    let engineKey = 1n;
    const key = () => createVllmWatermarkKey({ scheme: 'sbw', engineKey, contextWidth: 1 });
    while (createTextDetector({ keys: [key()], vllmDedup: 'none' }).detectTokens([11]).score !== 1)
      engineKey++;
    const vllmRule = createTextDetector({ keys: [key()], vllmDedup: 'context' }).detectTokens(repeated);
    const strict = createTextDetector({ keys: [key()] }).detectTokens(repeated);
    expect(vllmRule.log10P).toBeLessThan(strict.log10P);
    expect(strict.numScored).toBeLessThan(vllmRule.numScored);
    expect(strict.verdict).not.toBe('watermarked');
  });

  it('another scheme or PRF with the same engine key', () => {
    for (const c of marked.filter((x) => x.scheme === 'gumbel' && x.prf === 'philox')) {
      const others: Partial<VllmKeyOptions>[] = [
        { scheme: 'red_green' },
        { scheme: 'dual_key_gumbel' },
        ...(BigInt(c.engineKey) < 1n << 63n ? [{ scheme: 'sbw' as const }] : []),
        { prf: 'hmac-sha256-v1' },
      ];
      for (const other of others) {
        expectNotWatermarked(
          createTextDetector({ keys: [keyOf(c, other)] }).detectTokens(c.tokens),
          `${c.name} as ${JSON.stringify(other)}`,
        );
      }
    }
  });

  /** Token ids whose every scored position is green under a tracemark key, as a strong tracemark mark. */
  function tracemarkMarked(key: WatermarkKey, length: number): number[] {
    const watermarker = createWatermarker(key);
    const random = createRandom(5);
    const ids = [random.nextUint32() % 100_000];
    while (ids.length < length) {
      const test = watermarker.candidateTester(ids);
      let candidate = random.nextUint32() % 100_000;
      while (test(candidate) === 0) candidate = random.nextUint32() % 100_000;
      ids.push(candidate);
    }
    return ids;
  }
  const tracemarkKey = createWatermarkKey({ secret: new Uint8Array(32).fill(3) });
  const tracemarkIds = tracemarkMarked(tracemarkKey, 200);

  it('a vLLM key on tracemark-marked text, and a tracemark key on vLLM-marked text', () => {
    expect(createTextDetector({ keys: [tracemarkKey] }).detectTokens(tracemarkIds).verdict).toBe(
      'watermarked',
    );
    for (const c of marked) {
      expectNotWatermarked(createTextDetector({ keys: [keyOf(c)] }).detectTokens(tracemarkIds), c.name);
      expectNotWatermarked(createTextDetector({ keys: [tracemarkKey] }).detectTokens(c.tokens), c.name);
    }
  });

  it('ids outside the vocabulary are an error naming the position', () => {
    const c = marked[0]!;
    const shippedTokenizer = createTextDetector({ keys: [keyOf(c)] });
    const outside = [...c.tokens, 100_277];
    expect(() => shippedTokenizer.detectTokens(outside)).toThrow(
      expect.objectContaining({
        code: 'TM_ERR_INVALID_TOKENS',
        message: expect.stringMatching(/tokens\[96\]/),
      }),
    );
    const modelTokenizer = createTextDetector({
      keys: [keyOf(c, { tokenizer: 'vector/vocab-128', vocabSize: 128 })],
    });
    expect(modelTokenizer.detectTokens(c.tokens).verdict).toBe('watermarked');
    expect(() => modelTokenizer.detectTokens([...c.tokens, 128])).toThrow(
      expect.objectContaining({ code: 'TM_ERR_INVALID_TOKENS' }),
    );
    const anyVocabulary = createTextDetector({ keys: [keyOf(c, { tokenizer: 'vector/unsized' })] });
    for (const bad of [-1, 1.5, 2 ** 31, Number.NaN]) {
      expect(() => anyVocabulary.detectTokens([1, 2, bad])).toThrow(InputError);
    }
    expect(() => shippedTokenizer.session().pushTokens([5, -3])).toThrow(InputError);
  });

  it('text for a key bound to a tokenizer tracemark does not ship is refused; its token ids are read', () => {
    const c = marked[0]!;
    const key = keyOf(c, { tokenizer: 'meta-llama/Llama-3.1-8B' });
    const detector = createTextDetector({ keys: [key] });
    expect(detector.tokenizer).toBeNull();
    expect(detector.explain(c.tokens)).toBeNull();
    const expected = `key ${key.keyId} is bound to tokenizer "meta-llama/Llama-3.1-8B"; give token ids (JSONL field of ids) or a key bound to one of cl100k_base, o200k_base, gpt2`;
    expect(() => detector.detectText('some text')).toThrow(
      expect.objectContaining({ code: 'TM_ERR_TOKENIZER_UNAVAILABLE', message: expected }),
    );
    expect(() => detector.session().pushText('some text')).toThrow(InputError);
    expect(detector.detectTokens(c.tokens).verdict).toBe('watermarked');
    expect(detector.detectTokens(c.tokens).tokenizer).toBe('meta-llama/Llama-3.1-8B');
  });

  it('keys bound to different tokenizers are refused together; a tracemark key needs a shipped one', () => {
    const c = marked[0]!;
    expect(() =>
      createTextDetector({ keys: [keyOf(c), keyOf(c, { tokenizer: 'meta-llama/Llama-3.1-8B' })] }),
    ).toThrow(expect.objectContaining({ code: 'TM_ERR_TOKENIZER_MISMATCH' }));
    expect(() =>
      createTextDetector({ keys: [tracemarkKey, keyOf(c, { tokenizer: 'meta-llama/Llama-3.1-8B' })] }),
    ).toThrow(expect.objectContaining({ code: 'TM_ERR_TOKENIZER_MISMATCH' }));
  });

  it('windowed search finds a marked passage inside unmarked ids, corrected for the windows searched', () => {
    const gumbel = marked.find((c) => c.scheme === 'gumbel' && c.tokens.length >= 64)!;
    const random = createRandom(7);
    const filler = (n: number) => Array.from({ length: n }, () => Math.floor(random.nextFloat() * 100_000));
    const passage = gumbel.tokens.slice(0, 64);
    const ids = [...filler(600), ...passage, ...filler(600)];
    const key = keyOf(gumbel);
    const whole = createTextDetector({ keys: [key] }).detectTokens(ids);
    const windowed = createTextDetector({ keys: [key], window: true }).detectTokens(ids);
    const window = windowed.window!;
    expect(window.windowsSearched).toBeGreaterThan(1);
    // The best window lies on the passage (context windows reach w − 1 tokens into it).
    expect(window.startToken).toBeGreaterThanOrEqual(600 - 16);
    expect(window.endToken).toBeLessThan(664 + 16);
    expect(window.log10PCorrected).toBeCloseTo(
      Math.min(0, window.log10P + Math.log10(window.windowsSearched)),
      9,
    );
    expect(windowed.log10PAdjusted).toBe(window.log10PCorrected);
    expect(window.log10PCorrected).toBeLessThan(whole.log10P);
    // The whole tape is one of the windows: without a better window the corrected p is W × the whole p.
    const plain = createTextDetector({ keys: [key], window: true }).detectTokens(filler(300));
    expect(plain.verdict).not.toBe('watermarked');
  });
});

describe('verdicts (docs/spec/foreign-vllm.md §10) and Holm across key kinds', () => {
  const nulls = shipped.filter((c) => c.generation.kind === 'uniform-random');

  it('Gumbel schemes are never not_watermarked: uniform random ids are insufficient, tokensToSettle Infinity', () => {
    for (const c of nulls.filter((x) => x.scheme === 'gumbel' || x.scheme === 'dual_key_gumbel')) {
      const result = createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens);
      expect(result.verdict, c.name).toBe('insufficient');
      expect(result.tokensToSettle, c.name).toBe(Number.POSITIVE_INFINITY);
    }
  });

  it('red_green and sbw rule a mark of strength δ out on random ids; with δ = 0 they do not', () => {
    for (const c of nulls.filter((x) => x.scheme === 'red_green' || x.scheme === 'sbw')) {
      expect(createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens).verdict, c.name).toBe(
        'not_watermarked',
      );
      const flat = createTextDetector({ keys: [keyOf(c, { delta: 0 })] }).detectTokens(c.tokens);
      expect(flat.verdict, c.name).toBe('insufficient');
      expect(flat.tokensToSettle, c.name).toBe(Number.POSITIVE_INFINITY);
    }
  });

  it('a short text under red_green is insufficient with a finite tokensToSettle', () => {
    const c = nulls.find((x) => x.scheme === 'red_green')!;
    const result = createTextDetector({ keys: [keyOf(c)] }).detectTokens(c.tokens.slice(0, 6));
    expect(result.verdict).toBe('insufficient');
    expect(Number.isFinite(result.tokensToSettle) && result.tokensToSettle > 0).toBe(true);
  });

  it('the alternative is halfway to the high-entropy green fraction, and none for δ = 0 or Gumbel', () => {
    const biased = (0.25 * Math.exp(2)) / (1 + 0.25 * (Math.exp(2) - 1));
    expect(vllmAlternative(0.25, 2)).toBeCloseTo(0.25 + (biased - 0.25) / 2, 15);
    expect(vllmAlternative(0.25, 0)).toBeNull();
    expect(vllmAlternative(null, null)).toBeNull();
  });

  it('Holm over tracemark and vLLM keys together', () => {
    const c = marked.find((x) => x.scheme === 'red_green')!;
    const vllm = keyOf(c);
    const tracemark = createWatermarkKey({ secret: new Uint8Array(32).fill(4) });
    const alone = createTextDetector({ keys: [vllm] }).detectTokens(c.tokens);
    const tracemarkAlone = createTextDetector({ keys: [tracemark] }).detectTokens(c.tokens);
    const both = createTextDetector({ keys: [tracemark, vllm] }).detectTokens(c.tokens);
    expect(both.verdict).toBe('watermarked');
    expect(both.keysTested).toBe(2);
    expect(both.keyId).toBe(vllm.keyId);
    expect(both.scheme).toBe('vllm:red_green');
    expect(both.log10PAdjusted).toBeCloseTo(alone.log10P + Math.log10(2), 12);
    expect(both.keys.map((k) => k.keyId)).toEqual([tracemark.keyId, vllm.keyId]);
    const [tracemarkResult] = both.keys;
    expect(tracemarkResult).not.toHaveProperty('scheme');
    expect(tracemarkResult!.log10P).toBe(tracemarkAlone.log10P);
    expect(tracemarkResult!.numGreen).toBe(tracemarkAlone.numGreen);
    expect(tracemarkResult!.verdict).not.toBe('watermarked');
  });

  it('a key given twice is tested once (Holm counts it once), for either kind of key', () => {
    const c = marked.find((x) => x.scheme === 'red_green')!;
    const vllm = keyOf(c);
    const tracemark = createWatermarkKey({ secret: new Uint8Array(32).fill(4) });
    for (const keys of [
      [vllm, vllm],
      [tracemark, tracemark],
      [tracemark, vllm, tracemark, vllm],
    ]) {
      const once = createTextDetector({ keys: [...new Set(keys)] }).detectTokens(c.tokens);
      const twice = createTextDetector({ keys }).detectTokens(c.tokens);
      expect(twice.keysTested).toBe(once.keysTested);
      expect(twice.log10PAdjusted).toBe(once.log10PAdjusted);
      expect(twice.keys.map((k) => k.keyId)).toEqual(once.keys.map((k) => k.keyId));
    }
  });

  it('the tracemark key is reported when it is the one that matches', () => {
    const c = marked.find((x) => x.scheme === 'gumbel')!;
    const tracemark = createWatermarkKey({ secret: new Uint8Array(32).fill(6) });
    const watermarker = createWatermarker(tracemark);
    const random = createRandom(8);
    const ids = [random.nextUint32() % 100_000];
    while (ids.length < 120) {
      const test = watermarker.candidateTester(ids);
      let candidate = random.nextUint32() % 100_000;
      while (test(candidate) === 0) candidate = random.nextUint32() % 100_000;
      ids.push(candidate);
    }
    const both = createTextDetector({ keys: [keyOf(c), tracemark] }).detectTokens(ids);
    expect(both.verdict).toBe('watermarked');
    expect(both.keyId).toBe(tracemark.keyId);
    expect(both.scheme).toBeUndefined();
    expect(typeof both.numGreen).toBe('number');
    expect((both.keys[0] as VllmKeyResult).scheme).toBe('vllm:gumbel');
  });

  it('tracemark keys alone take the unchanged path', () => {
    const tracemark = createWatermarkKey({ secret: new Uint8Array(32).fill(7) });
    const detector = createTextDetector({ keys: [tracemark] });
    expect(detector.tokenizer).not.toBeNull();
    expect(detector.detectText('A plain sentence.')).not.toHaveProperty('scheme');
  });
});
