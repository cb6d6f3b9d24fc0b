/**
 * Verdicts (spec §5.2) and the document verdict under several keys (spec §5.4): δ = 0 keys,
 * tokensToSettle against a brute-force reading of its definition, and which key a document reports.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_TOKENS_TO_SETTLE, windowCount } from '../src/detect.ts';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  type Detection,
  decideVerdict,
  detect,
  log10BinomialCdf,
  log10BinomialSf,
  type RandomSource,
  type ResolvedVerdictOptions,
  resolveVerdictOptions,
  type SchemeParams,
  type Watermarker,
  windowScan,
} from '../src/index.ts';

const VOCABULARY = 100_000;

const watermarkerOf = (label: string, scheme: SchemeParams = {}): Watermarker =>
  createWatermarker(createWatermarkKey({ secret: createHash('sha256').update(label).digest(), scheme }));

function randomTokens(random: RandomSource, length: number): number[] {
  return Array.from({ length }, () => random.nextUint32() % VOCABULARY);
}

/** A text whose every scored token is green under `watermarker` (LeftHash or SelfHash alike). */
function greenTokens(watermarker: Watermarker, random: RandomSource, length: number): number[] {
  const tokens = [random.nextUint32() % VOCABULARY];
  while (tokens.length < length) {
    const test = watermarker.candidateTester(tokens);
    let candidate = random.nextUint32() % VOCABULARY;
    while (test(candidate) === 0) candidate = random.nextUint32() % VOCABULARY;
    tokens.push(candidate);
  }
  return tokens;
}

/**
 * tokensToSettle read straight from its definition (spec §5.2): the first T' > T at which
 * k1(T') ≥ k0(T') − 1, with k0 at level α/(m·W(T')), every T' visited, W from the window search itself.
 */
function bruteForceTokensToSettle(
  T: number,
  gamma: number,
  options: ResolvedVerdictOptions,
  keysTested: number,
  minWindow: number | null,
): number {
  for (let next = T + 1; next <= T + MAX_TOKENS_TO_SETTLE; next++) {
    const windows =
      minWindow === null ? 1 : windowScan(new Uint8Array(next), gamma, minWindow).windowsSearched;
    const level = Math.log10(options.fpr / keysTested) - Math.log10(windows);
    // k0: the smallest k with P0[X ≥ k] at the level; k1: the largest k with P1[X ≤ k] ≤ β.
    let lo = 0;
    let hi = next + 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log10BinomialSf(mid, next, gamma) <= level) hi = mid;
      else lo = mid + 1;
    }
    const k0 = lo;
    lo = -1;
    hi = next;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (log10BinomialCdf(mid, next, options.alternative!) <= Math.log10(options.missRate)) lo = mid;
      else hi = mid - 1;
    }
    const k1 = lo;
    if (k1 >= k0 - 1) return next - T;
  }
  return Number.POSITIVE_INFINITY;
}

describe('W(T), the number of windows searched', () => {
  it.each([1, 3, 16])('equals what windowScan visits, minWindow %i, T = 0 … 700', (minWindow) => {
    for (let T = 0; T <= 700; T++) {
      expect(windowCount(T, minWindow), `T = ${T}`).toBe(
        windowScan(new Uint8Array(T), 0.25, minWindow).windowsSearched,
      );
    }
  });
});

describe('tokensToSettle (spec §5.2)', () => {
  const cases: [number, number, number, number, number | null][] = [];
  for (const gamma of [0.25, 0.5])
    for (const delta of [1, 2, 4])
      for (const T of [0, 17, 60])
        for (const keysTested of [1, 3])
          for (const minWindow of [null, 16]) cases.push([gamma, delta, T, keysTested, minWindow]);
  cases.push([0.25, 0.5, 40, 1, null], [0.25, 0.5, 40, 2, 16]);

  it.each(cases)(
    'γ = %s, δ = %s, T = %i, m = %i keys, minWindow %s: equals the brute-force reading',
    (gamma, delta, T, keysTested, minWindow) => {
      const watermarker = watermarkerOf('settle', { gamma, delta });
      const options = resolveVerdictOptions(watermarker, {});
      const settle = { keysTested, ...(minWindow === null ? {} : { minWindow }) };
      // k = 0 with p = 1 is insufficient for these T unless the miss test holds; try counts near γT.
      for (const k of new Set([0, Math.floor(gamma * T), Math.min(T, Math.ceil((gamma + 0.1) * T))])) {
        const decided = decideVerdict(T, k, log10BinomialSf(k, T, gamma), gamma, options, settle);
        if (decided.verdict !== 'insufficient') {
          expect(decided.tokensToSettle).toBe(0);
          continue;
        }
        expect(decided.tokensToSettle).toBeGreaterThan(0);
        expect(decided.tokensToSettle).toBe(
          bruteForceTokensToSettle(T, gamma, options, keysTested, minWindow),
        );
      }
    },
  );

  it('after tokensToSettle more scored tokens, every green count is settled whatever the other keys show', () => {
    const watermarker = watermarkerOf('settle-promise', { gamma: 0.25, delta: 1 });
    const options = resolveVerdictOptions(watermarker, {});
    for (const keysTested of [1, 2, 5]) {
      const { tokensToSettle } = decideVerdict(10, 3, log10BinomialSf(3, 10, 0.25), 0.25, options, {
        keysTested,
      });
      const T = 10 + tokensToSettle;
      for (let k = 0; k <= T; k++) {
        // The worst Holm adjustment of one key among m is m·p (all others at p = 1).
        const worst = Math.min(0, log10BinomialSf(k, T, 0.25) + Math.log10(keysTested));
        expect(decideVerdict(T, k, worst, 0.25, options).verdict, `m = ${keysTested}, k = ${k}`).not.toBe(
          'insufficient',
        );
      }
    }
  });

  it('stays fast and finite for a weak design strength, and reports Infinity past the cap', () => {
    const started = performance.now();
    const weak = resolveVerdictOptions(watermarkerOf('weak', { delta: 0.05 }), {});
    const finite = decideVerdict(50, 12, log10BinomialSf(12, 50, 0.25), 0.25, weak);
    expect(finite.tokensToSettle).toBeGreaterThan(100_000);
    expect(Number.isFinite(finite.tokensToSettle)).toBe(true);
    const weaker = resolveVerdictOptions(watermarkerOf('weaker', { delta: 0.01 }), {});
    expect(decideVerdict(50, 12, log10BinomialSf(12, 50, 0.25), 0.25, weaker).tokensToSettle).toBe(
      Number.POSITIVE_INFINITY,
    );
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('a key with δ = 0 (spec §5.2)', () => {
  const flat = watermarkerOf('flat', { delta: 0 });
  const random = createRandom(11);

  it('has no design alternative', () => {
    expect(resolveVerdictOptions(flat, {}).alternative).toBeNull();
    expect(resolveVerdictOptions(flat, { alternativeGreenFraction: 0.4 }).alternative).toBe(0.4);
    expect(() => resolveVerdictOptions(flat, { alternativeGreenFraction: 0.25 })).toThrow(
      /alternativeGreenFraction/,
    );
  });

  it('is watermarked when p ≤ α, otherwise insufficient with tokensToSettle Infinity, never an error', () => {
    for (const length of [0, 1, 30, 400]) {
      const detection = detect(randomTokens(random, length), flat);
      expect(detection.verdict).toBe('insufficient');
      expect(detection.results[0]!.tokensToSettle).toBe(Number.POSITIVE_INFINITY);
      expect(detection.tokensToSettle).toBe(Number.POSITIVE_INFINITY);
    }
    const marked = detect(greenTokens(flat, random, 40), flat);
    expect(marked.verdict).toBe('watermarked');
    expect(marked.matchedKeyId).toBe(flat.keyId);
    expect(marked.tokensToSettle).toBe(0);
  });

  it('can still rule out an alternative the caller gives', () => {
    const detection = detect(randomTokens(random, 400), flat, { alternativeGreenFraction: 0.5 });
    expect(detection.verdict).toBe('not_watermarked');
  });
});

describe('the document verdict under several keys (spec §5.4)', () => {
  /** The invariants of §5.4 that hold for every detection. */
  function expectConsistent(detection: Detection): void {
    const reported = detection.results.find((r) => r.keyId === detection.reportedKeyId)!;
    expect(reported).toBeDefined();
    expect(reported.verdict).toBe(detection.verdict);
    const sameVerdict = detection.results.filter((r) => r.verdict === detection.verdict);
    for (const other of sameVerdict) {
      expect(
        reported.log10PAdjusted < other.log10PAdjusted ||
          (reported.log10PAdjusted === other.log10PAdjusted && reported.log10P <= other.log10P),
      ).toBe(true);
    }
    if (detection.verdict === 'insufficient') {
      expect(detection.tokensToSettle).toBe(Math.max(...sameVerdict.map((r) => r.tokensToSettle)));
      expect(detection.tokensToSettle).toBeGreaterThan(0);
    } else {
      expect(detection.tokensToSettle).toBe(0);
    }
    for (const result of detection.results) {
      expect(result.tokensToSettle > 0).toBe(result.verdict === 'insufficient');
    }
    expect(detection.matchedKeyId).toBe(detection.verdict === 'watermarked' ? detection.reportedKeyId : null);
  }

  const strong = watermarkerOf('doc-strong', { delta: 2 });
  const weak = watermarkerOf('doc-weak', { delta: 0.5 });
  const flat = watermarkerOf('doc-flat', { delta: 0 });
  const other = watermarkerOf('doc-other', { delta: 2, contextWidth: 2 });

  it('none matching, mixed verdicts: reports the strongest insufficient key, the largest tokensToSettle', () => {
    // A text that the δ = 2 key rules out while the δ = 0.5 key cannot yet, and where the ruled-out
    // key has the smaller p-value: the case where reporting "the smallest p" gave tokensToSettle 0.
    const random = createRandom(5);
    let found: Detection | null = null;
    for (let attempt = 0; attempt < 500 && found === null; attempt++) {
      const detection = detect(randomTokens(random, 60), [strong, weak]);
      const [a, b] = detection.results;
      if (
        a!.verdict === 'not_watermarked' &&
        b!.verdict === 'insufficient' &&
        a!.log10PAdjusted < b!.log10PAdjusted
      )
        found = detection;
    }
    expect(found).not.toBeNull();
    const detection = found!;
    expect(detection.verdict).toBe('insufficient');
    expect(detection.reportedKeyId).toBe(weak.keyId);
    expect(detection.tokensToSettle).toBe(detection.results[1]!.tokensToSettle);
    expect(detection.tokensToSettle).toBeGreaterThan(0);
    expectConsistent(detection);

    // With a δ = 0 key among them the document can never settle.
    const three = detect(randomTokens(random, 60), [strong, weak, flat]);
    expect(three.verdict).toBe('insufficient');
    expect(three.tokensToSettle).toBe(Number.POSITIVE_INFINITY);
    expectConsistent(three);
  });

  it('one matching: the matched key is reported, tokensToSettle 0', () => {
    const random = createRandom(6);
    const detection = detect(greenTokens(weak, random, 60), [strong, weak, flat]);
    expect(detection.verdict).toBe('watermarked');
    expect(detection.matchedKeyId).toBe(weak.keyId);
    expect(detection.reportedKeyId).toBe(weak.keyId);
    expect(detection.results[0]!.verdict).not.toBe('watermarked');
    expect(detection.results[1]!.verdict).toBe('watermarked');
    expect(detection.results[2]!.verdict).toBe('insufficient');
    expectConsistent(detection);
  });

  it('all not_watermarked: the strongest evidence among them is reported, tokensToSettle 0', () => {
    const random = createRandom(7);
    const detection = detect(randomTokens(random, 300), [strong, other]);
    expect(detection.results.map((r) => r.verdict)).toEqual(['not_watermarked', 'not_watermarked']);
    expect(detection.verdict).toBe('not_watermarked');
    const [a, b] = detection.results;
    expect(detection.reportedKeyId).toBe(
      a!.log10PAdjusted < b!.log10PAdjusted ||
        (a!.log10PAdjusted === b!.log10PAdjusted && a!.log10P <= b!.log10P)
        ? a!.keyId
        : b!.keyId,
    );
    expectConsistent(detection);
  });

  it('equal adjusted p-values: the smaller raw p wins, then the key given first', () => {
    const random = createRandom(8);
    const tokens = randomTokens(random, 120);
    // The same key twice: equal everything, so the first given is reported.
    const twice = detect(tokens, [strong, strong]);
    expect(twice.reportedKeyId).toBe(strong.keyId);
    expect(twice.results[0]!.log10PAdjusted).toBe(twice.results[1]!.log10PAdjusted);
    expectConsistent(twice);
  });

  it('holds its invariants over many random documents, 1 to 3 keys, plain and windowed', () => {
    const random = createRandom(9);
    const pool = [strong, weak, flat, other];
    for (let i = 0; i < 150; i++) {
      const keys = pool.filter(() => random.nextFloat() < 0.6);
      if (keys.length === 0) continue;
      const marked = random.nextFloat() < 0.3 ? keys[random.nextUint32() % keys.length]! : null;
      const length = random.nextUint32() % 120;
      const tokens = marked === null ? randomTokens(random, length) : greenTokens(marked, random, length + 1);
      expectConsistent(detect(tokens, keys, { window: random.nextFloat() < 0.3, includeStatus: false }));
    }
  });
});
