import { readFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { int32Digest } from './int32-digest.test-helper.ts';
import {
  createTransformersKgwDetector,
  resolveTransformersKgwParams,
  type TransformersKgwParams,
  type TransformersSeedingScheme,
  transformersKgwBias,
} from './transformers-kgw.ts';

interface PeerDetection {
  numScored: number;
  numGreen: number;
  z: number;
  pValue: number;
}

interface DetectionVector {
  positions?: number[];
  greenFlags?: number[];
  greenFlagsSha256?: string;
  peer: { plain: PeerDetection; ignoreRepeated: PeerDetection };
  distinctNgrams: { numScored: number; numGreen: number };
  greenlistSize: number;
  references: {
    exactLog10: number | null;
    exactDistinctLog10: number | null;
    peerFormulaLog10: number | null;
  };
}

interface CaseBase {
  name: string;
  scheme: TransformersSeedingScheme;
  vocabSize: number;
  contextWidth: number;
  hashKey: string;
  gamma: number;
  delta: number;
  tokens: number[];
  bosTokenId?: number;
  detection: DetectionVector;
}

interface GenerationCase extends CaseBase {
  prompt: number[];
  steps: {
    context: number[];
    biasedCount: number;
    biasedSha256: string;
    candidates?: number[];
    candidateLogits?: number[];
    biased?: number[];
    logits?: number[];
    processed?: number[];
  }[];
  greenlists: {
    input: number[];
    size: number;
    sha256: string;
    head: number[];
    greenlist?: number[];
    generatorSeed: string;
  }[];
}

const vectors = JSON.parse(
  readFileSync(new URL('../../test/vectors/foreign/transformers.json', import.meta.url), 'utf8'),
) as { cases: GenerationCase[]; detections: CaseBase[]; invalid: { case: string; raises: string | null }[] };

function paramsOf(entry: CaseBase): TransformersKgwParams {
  return {
    seedingScheme: entry.scheme,
    hashKey: BigInt(entry.hashKey),
    gamma: entry.gamma,
    delta: entry.delta,
    contextWidth: entry.contextWidth,
    vocabSize: entry.vocabSize,
  };
}

function expectLog10Close(actual: number, expected: number | null, relative = 1e-9): void {
  if (expected === null) {
    expect(actual).toBe(Number.NEGATIVE_INFINITY);
    return;
  }
  expect(Number.isFinite(actual)).toBe(true);
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(relative * Math.max(1, Math.abs(expected)));
}

const allCases: CaseBase[] = [...vectors.cases, ...vectors.detections];

describe('transformers KGW: green lists', () => {
  it('reproduces _get_greenlist_ids and the generator seed for every sampled input', () => {
    let checked = 0;
    for (const entry of vectors.cases) {
      const detector = createTransformersKgwDetector(paramsOf(entry));
      for (const sample of entry.greenlists) {
        const green = detector.greenList(sample.input);
        expect(green.length).toBe(sample.size);
        expect(Array.from(green.subarray(0, 8))).toEqual(sample.head);
        expect(int32Digest(green)).toBe(sample.sha256);
        if (sample.greenlist) expect(Array.from(green)).toEqual(sample.greenlist);
        expect(detector.fullSeed(sample.input).toString()).toBe(sample.generatorSeed);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(30);
  });

  it('lefthash depends on the last id only; the context width does not change it', () => {
    const base = { vocabSize: 1000, hashKey: 7n } as const;
    const narrow = createTransformersKgwDetector({ ...base, contextWidth: 1 });
    const wide = createTransformersKgwDetector({ ...base, contextWidth: 4 });
    expect(Array.from(wide.greenList([9, 8, 7, 3]))).toEqual(Array.from(narrow.greenList([3])));
  });

  it('green fraction is γ over random contexts', () => {
    const detector = createTransformersKgwDetector({
      vocabSize: 5000,
      seedingScheme: 'selfhash',
      contextWidth: 2,
    });
    let green = 0;
    const trials = 2000;
    for (let i = 0; i < trials; i++) {
      if (detector.isGreen([(i * 7919) % 5000, (i * 104729) % 5000], (i * 104729) % 5000)) green++;
    }
    // Bin(2000, 0.25): sd 19.4; ±5 sd
    expect(Math.abs(green - 500)).toBeLessThan(100);
  });
});

describe('transformers KGW: the processor’s bias', () => {
  it('changes exactly the logits transformers changes, float32 for float32', () => {
    let full = 0;
    let sets = 0;
    for (const entry of vectors.cases) {
      const detector = createTransformersKgwDetector(paramsOf(entry));
      for (const step of entry.steps) {
        if (step.logits && step.processed) {
          const logits = Float32Array.from(step.logits);
          const out = detector.bias(step.context, logits);
          expect(out).toBeInstanceOf(Float32Array);
          expect(Array.from(out)).toEqual(step.processed);
          expect(Array.from(logits)).toEqual(step.logits);
          full++;
          continue;
        }
        // Large vocabularies: only the set of changed ids was recorded (and, for selfhash, the top candidates).
        const logits = new Float32Array(entry.vocabSize).fill(-50);
        if (step.candidates && step.candidateLogits) {
          step.candidates.forEach((id, i) => {
            logits[id] = step.candidateLogits![i]!;
          });
        }
        const out = detector.bias(step.context, logits);
        const changed: number[] = [];
        for (let i = 0; i < out.length; i++) if (out[i] !== logits[i]) changed.push(i);
        expect(changed.length).toBe(step.biasedCount);
        expect(int32Digest(Int32Array.from(changed))).toBe(step.biasedSha256);
        if (step.biased) expect(changed).toEqual(step.biased);
        sets++;
      }
    }
    expect(full).toBeGreaterThanOrEqual(6);
    expect(sets).toBeGreaterThanOrEqual(40);
  });

  it('float64 logits get δ in double; a row shorter than the width is left alone', () => {
    const params = { vocabSize: 1000, delta: 0.1, contextWidth: 2 } as const;
    const logits = new Float64Array(1000).fill(0.3);
    const out = transformersKgwBias(params, [1, 2], logits);
    const green = new Set(createTransformersKgwDetector(params).greenList([2]));
    for (let i = 0; i < 1000; i++) expect(out[i]).toBe(green.has(i) ? 0.3 + 0.1 : 0.3);
    expect(Array.from(transformersKgwBias(params, [1], logits))).toEqual(Array.from(logits));
  });
});

describe('transformers KGW: detection', () => {
  it('scores the positions transformers scores, with its green flags, count, z and p-value', () => {
    for (const entry of allCases) {
      const detector = createTransformersKgwDetector(paramsOf(entry));
      const options = entry.bosTokenId === undefined ? {} : { bosTokenId: entry.bosTokenId };
      const result = detector.detect(entry.tokens, { ...options, dedup: 'none' });
      const { plain, ignoreRepeated } = entry.detection.peer;
      expect(result.numScored, entry.name).toBe(plain.numScored);
      expect(result.score, entry.name).toBe(plain.numGreen);
      if (entry.detection.greenFlags) {
        expect(result.positions).toEqual(entry.detection.positions);
        expect(result.greenFlags).toEqual(entry.detection.greenFlags);
      } else {
        expect(bytesToHex(sha256(Uint8Array.from(result.greenFlags)))).toBe(entry.detection.greenFlagsSha256);
      }
      expect(result.z).toBe(plain.z);
      // transformers' own double, reproduced; −Infinity where it is 0
      if (plain.pValue === 0) expect(result.peerLog10PValue).toBe(Number.NEGATIVE_INFINITY);
      else expectLog10Close(result.peerLog10PValue, Math.log10(plain.pValue));
      expectLog10Close(result.peerFormulaLog10PValue, entry.detection.references.peerFormulaLog10);
      expectLog10Close(result.log10PValue, entry.detection.references.exactLog10);
      // ignore_repeated_ngrams=True changes nothing in transformers (spec §6)
      expect(ignoreRepeated.numScored).toBe(plain.numScored);
    }
  });

  it('dedup context counts each distinct n-gram once, as ignore_repeated_ngrams is documented to', () => {
    let differs = 0;
    for (const entry of allCases) {
      const detector = createTransformersKgwDetector(paramsOf(entry));
      const options = entry.bosTokenId === undefined ? {} : { bosTokenId: entry.bosTokenId };
      const result = detector.detect(entry.tokens, { ...options, dedup: 'context' });
      expect(result.numScored, entry.name).toBe(entry.detection.distinctNgrams.numScored);
      expect(result.score, entry.name).toBe(entry.detection.distinctNgrams.numGreen);
      expectLog10Close(result.log10PValue, entry.detection.references.exactDistinctLog10);
      if (result.numScored !== entry.detection.peer.plain.numScored) differs++;
    }
    expect(differs).toBeGreaterThanOrEqual(4);
  });

  it('far tails are finite where transformers reports 0, and match mpmath', () => {
    const long = vectors.cases.find((entry) => entry.tokens.length > 1000)!;
    expect(long.detection.peer.plain.pValue).toBe(0);
    const result = createTransformersKgwDetector(paramsOf(long)).detect(long.tokens);
    expect(result.log10PValue).toBeLessThan(-1000);
    expectLog10Close(result.log10PValue, long.detection.references.exactLog10);
    expectLog10Close(result.peerFormulaLog10PValue, long.detection.references.peerFormulaLog10);
    expect(result.peerLog10PValue).toBe(Number.NEGATIVE_INFINITY);
  });

  it('strict dedup keys on (generator seed, token): lefthash at width 2 scores (previous, token) pairs once', () => {
    const entry = vectors.detections.find((d) => d.name === 'repeat-lefthash-h2')!;
    const detector = createTransformersKgwDetector(paramsOf(entry));
    const strict = detector.detect(entry.tokens, { dedup: 'strict' });
    const pairs = new Set<string>();
    for (let i = 2; i < entry.tokens.length; i++) pairs.add(`${entry.tokens[i - 1]},${entry.tokens[i]}`);
    expect(strict.numScored).toBe(pairs.size);
    expect(strict.numScored).toBeLessThan(detector.detect(entry.tokens, { dedup: 'context' }).numScored);
  });

  it('scores nothing where transformers refuses (fewer than width + 1 tokens)', () => {
    const detector = createTransformersKgwDetector({ vocabSize: 1000, contextWidth: 4 });
    const result = detector.detect([1, 2, 3, 4]);
    expect(result.numScored).toBe(0);
    expect(result.log10PValue).toBe(0);
    expect(vectors.invalid.find((v) => v.case.startsWith('detect 4 tokens'))!.raises).toBe('ValueError');
    expect(detector.detect([1, 2, 3, 4, 5]).numScored).toBe(1);
  });
});

describe('transformers KGW: the green-list cache', () => {
  // ids from a small alphabet, so contexts repeat and a small cache evicts
  const randomIds = (count: number, alphabet: number, vocabSize: number, state: { x: number }) =>
    Array.from({ length: count }, () => {
      state.x = (Math.imul(state.x, 1103515245) + 12345) >>> 0;
      return ((state.x >>> 8) % alphabet) * Math.floor(vocabSize / alphabet);
    });

  it('changes no result: no cache, a one-list cache and the default agree with the ordered green lists', () => {
    const vocabSize = 5003;
    const state = { x: 7 };
    for (const [seedingScheme, contextWidth] of [
      ['lefthash', 1],
      ['lefthash', 2],
      ['selfhash', 1],
      ['selfhash', 3],
    ] as const) {
      const params = { seedingScheme, contextWidth, vocabSize, hashKey: 0xfedcba9876n, gamma: 0.3 };
      const oneList = Math.ceil(vocabSize / 32) * 4;
      const detectors = [0, oneList, undefined].map((bytes) =>
        createTransformersKgwDetector(params, bytes === undefined ? {} : { greenListCacheBytes: bytes }),
      );
      const reference = createTransformersKgwDetector(params, { greenListCacheBytes: 0 });
      for (let round = 0; round < 3; round++) {
        const ids = randomIds(120, 9, vocabSize, state);
        const flags = [];
        // the scored n-grams: contextWidth ids and the token (selfhash: the token is the window's last)
        const size = seedingScheme === 'selfhash' ? contextWidth : contextWidth + 1;
        for (let end = size; end <= ids.length; end++) {
          const window = seedingScheme === 'selfhash' ? ids.slice(0, end) : ids.slice(0, end - 1);
          flags.push(reference.greenList(window).includes(ids[end - 1]!) ? 1 : 0);
        }
        for (const dedup of ['none', 'strict', 'context'] as const) {
          const [first, ...others] = detectors.map((detector) => detector.detect(ids, { dedup }));
          for (const other of others) expect(other).toEqual(first);
          if (dedup === 'none') expect(first!.greenFlags).toEqual(flags);
        }
      }
    }
  });

  it('refuses a cache size that is not a non-negative number', () => {
    for (const bad of [-1, Number.NaN, '64' as unknown as number]) {
      expect(() => createTransformersKgwDetector({ vocabSize: 100 }, { greenListCacheBytes: bad })).toThrow(
        /greenListCacheBytes/,
      );
    }
  });
});

describe('transformers KGW: bad input', () => {
  const secret = 987654321987654321n;

  it('ids outside [0, vocabSize) are a RangeError that does not show the key', () => {
    const detector = createTransformersKgwDetector({ vocabSize: 1000, hashKey: secret });
    for (const ids of [
      [1, 1000],
      [-1, 2],
      [1.5, 2],
    ]) {
      let error: unknown;
      try {
        detector.detect(ids);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(RangeError);
      expect(String((error as Error).message)).not.toContain(secret.toString());
    }
    expect(() => detector.bias([5000], new Float64Array(1000))).toThrow(RangeError);
    expect(() => detector.bias([5], new Float64Array(999))).toThrow(RangeError);
  });

  it('keys and parameters transformers refuses are refused, naming the parameter and not the key', () => {
    const cases: [TransformersKgwParams, string][] = [
      [{ vocabSize: 1000, hashKey: 1n << 64n }, 'hashKey'],
      [{ vocabSize: 1000, hashKey: -(1n << 63n) - 1n }, 'hashKey'],
      [{ vocabSize: 1000, hashKey: 1n << 63n, seedingScheme: 'selfhash' }, 'hashKey'],
      [{ vocabSize: 1000, gamma: 1 }, 'gamma'],
      [{ vocabSize: 1000, gamma: 0 }, 'gamma'],
      [{ vocabSize: 1000, contextWidth: 0 }, 'contextWidth'],
      [{ vocabSize: 214_748_364 }, 'vocabSize'],
      [{ vocabSize: 1000, seedingScheme: 'minhash' as TransformersSeedingScheme }, 'seedingScheme'],
    ];
    for (const [params, name] of cases) {
      expect(() => resolveTransformersKgwParams(params)).toThrow(name);
      try {
        resolveTransformersKgwParams(params);
      } catch (error) {
        expect((error as Error).message).not.toContain(String(params.hashKey ?? 'none'));
      }
    }
    // what transformers raises for the same inputs, from its own code
    const raised = Object.fromEntries(vectors.invalid.map((v) => [v.case, v.raises]));
    expect(raised['hashing_key 2^64']).toBe('RuntimeError');
    expect(raised['selfhash hashing_key 2^63 (first green list)']).toBe('RuntimeError');
    expect(raised['hashing_key -2^63 lefthash']).toBe(null);
    expect(() => resolveTransformersKgwParams({ vocabSize: 1000, hashKey: -(1n << 63n) })).not.toThrow();
  });

  it('selfhash generation needs 40 candidates, as transformers does', () => {
    const detector = createTransformersKgwDetector({ vocabSize: 39, seedingScheme: 'selfhash' });
    expect(() => detector.bias([1], new Float64Array(39))).toThrow(RangeError);
    expect(
      Object.fromEntries(vectors.invalid.map((v) => [v.case, v.raises]))['selfhash vocab 39 (generation)'],
    ).toBe('IndexError');
  });
});
