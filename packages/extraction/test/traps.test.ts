/**
 * The traps of field notes §3–§4 on clean text (the human test split, which the embedded model never
 * saw, and text sampled from the embedded model without a watermark): none may give a false
 * `radioactive`. Each trap is also shown to be real: the naive pipeline it guards against would
 * have accused the clean corpus. Positive controls: corpora with 10% to 100% watermarked text.
 */
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createWatermarker,
  createWatermarkKey,
  DedupTape,
  deriveSubkey,
  detect,
  generateTokens,
  log10BinomialSf,
  Scorer,
  type WatermarkKey,
} from '@tracemark/core';
import { loadDefaultModel, loadHumanCorpus, logitsSource, trainNgramModel } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  fakeKeyPValues,
  fakeKeyTrials,
  IssuedWindowSet,
  kolmogorovSmirnovUniform,
  measureGreenFraction,
  runFakeKeyJob,
  type ScanDocument,
  type ScanReport,
  scanCorpus,
} from '../src/index.ts';

const tokenizer = getTokenizer('cl100k_base');
const special = tokenizer.specialTokenIds;
const cacheDir = process.env.TRACEMARK_CACHE_DIR ?? join(tmpdir(), 'tracemark-test-cache');
const keyFrom = (label: string, scheme = {}): WatermarkKey =>
  createWatermarkKey({ secret: createHash('sha256').update(label).digest(), scheme });
const trueKey = keyFrom('traps/true-key');

let human: ScanDocument[] = [];
let cleanSamples: ScanDocument[] = [];
let marked: Uint32Array[] = [];

const PROMPTS = [
  'The committee said on Tuesday that',
  'In the early years of the century,',
  'She opened the letter and read',
  'According to the annual report,',
  'The river runs through the valley where',
  'Most of the students agreed that',
  'After the game, the coach told reporters',
  'The new law requires every company to',
];

async function sample(
  key: WatermarkKey | null,
  count: number,
  tokens: number,
  seed: number,
): Promise<Uint32Array[]> {
  const model = await loadDefaultModel({ cacheDir });
  const watermarker = key === null ? null : createWatermarker(key, { specialTokenIds: special });
  const out: Uint32Array[] = [];
  for (let i = 0; i < count; i++) {
    const ids: number[] = [];
    for await (const { token } of generateTokens({
      source: logitsSource(model),
      prompt: tokenizer.encode(PROMPTS[i % PROMPTS.length]!),
      maxTokens: tokens,
      watermarker,
      temperature: 1,
      topP: 0.95,
      seed: seed + i,
    })) {
      ids.push(token);
    }
    out.push(Uint32Array.from(ids));
  }
  return out;
}

beforeAll(async () => {
  const documents = await loadHumanCorpus({ split: 'test' });
  human = documents.map((d) => ({ source: d.id, tokens: tokenizer.encodeFast(d.text) }));
  cleanSamples = (await sample(null, 14, 150, 1000)).map((tokens, i) => ({
    source: `clean-sample-${i}`,
    tokens,
  }));
  marked = await sample(trueKey, 16, 150, 2000);
}, 120_000);

const scan = (
  documents: readonly ScanDocument[],
  keys: readonly WatermarkKey[],
  extra = {},
): Promise<ScanReport> => scanCorpus({ documents, keys, specialTokenIds: special, fakeKeys: 50, ...extra });

/** What a naive pipeline does: score each document on its own (no corpus-wide dedup) and add up. */
function perDocumentLog10P(documents: readonly ScanDocument[], key: WatermarkKey): number {
  const watermarker = createWatermarker(key, { specialTokenIds: special });
  let scored = 0;
  let green = 0;
  for (const document of documents) {
    const result = detect(document.tokens, watermarker, { includeStatus: false }).results[0]!;
    scored += result.numScored;
    green += result.numGreen;
  }
  return log10BinomialSf(green, scored, key.scheme.gammaEffective);
}

describe('clean text is never radioactive', () => {
  it('human text and unwatermarked model samples, 6 true keys × 6 fake-key seeds: no false positive, uniform fake keys', async () => {
    const corpus = [...human, ...cleanSamples];
    const pooled: number[] = [];
    for (let i = 0; i < 6; i++) {
      const key = keyFrom(`traps/clean/${i}`);
      const report = await scan(corpus, [key], { fakeKeySeed: `traps/seed/${i}` });
      const result = report.keys[0]!;
      expect(report.verdict, report.reason).not.toBe('radioactive');
      expect(result.calibration.uniform, `seed ${i}: KS p = ${result.calibration.ksPValue}`).toBe(true);
      expect(result.log10PAdjusted).toBeGreaterThan(-6);
      expect(result.numScored).toBeGreaterThan(90_000);
    }
    // The fake keys' randomized p-values pooled over the seeds: 300 draws, still uniform.
    const tape = await tapeOf(corpus, trueKey);
    for (let i = 0; i < 6; i++) {
      const seed = `traps/seed/${i}`;
      const counts = runFakeKeyJob({ ...jobBase(tape, seed), seed, first: 0, count: 50 });
      pooled.push(...fakeKeyPValues([counts], trueKey.scheme.gammaEffective, `traps/seed/${i}`).randomized);
    }
    expect(kolmogorovSmirnovUniform(pooled).pValue).toBeGreaterThan(1e-3);
  }, 60_000);

  it('a SelfHash(3) key: clean text is not radioactive and its fake keys are uniform', async () => {
    const key = keyFrom('traps/selfhash', { name: 'selfhash', contextWidth: 3 });
    const report = await scanCorpus({
      documents: [...human.slice(0, 120), ...cleanSamples],
      keys: [key],
      specialTokenIds: special,
      fakeKeys: 25,
    });
    expect(report.verdict).not.toBe('radioactive');
    expect(report.keys[0]!.calibration.uniform).toBe(true);
  }, 60_000);
});

/** The evaluation tape of a corpus, through the library's own reading pass. */
async function tapeOf(documents: readonly ScanDocument[], key: WatermarkKey) {
  const { EvidenceTape } = await import('../src/evidence-tape.ts');
  const tape = new EvidenceTape(
    { scheme: key.scheme.name, contextWidth: key.scheme.contextWidth },
    special,
    null,
  );
  for (const document of documents) tape.add(document.tokens, document.prompt);
  return tape.finish().tape;
}

const jobBase = (tape: Awaited<ReturnType<typeof tapeOf>>, seed: string) => ({
  trials: fakeKeyTrials(
    tape,
    {
      name: trueKey.scheme.name,
      contextWidth: trueKey.scheme.contextWidth,
      gamma: trueKey.scheme.gamma,
      delta: 2,
    },
    trueKey.tokenizer,
    seed,
  ),
  threshold: trueKey.scheme.threshold,
  accelerate: true,
});

describe('trap: repeated boilerplate', () => {
  it('one watermarked paragraph repeated in 150 human documents is scored once, so the corpus is not radioactive', async () => {
    const boilerplate = marked[0]!;
    const documents = human.slice(0, 150).map((d) => {
      const tokens = new Uint32Array(boilerplate.length + d.tokens.length);
      tokens.set(boilerplate);
      tokens.set(d.tokens as Uint32Array, boilerplate.length);
      return { source: d.source, tokens };
    });
    const report = await scan(documents, [trueKey]);
    expect(report.verdict, report.reason).not.toBe('radioactive');
    expect(report.keys[0]!.log10P).toBeGreaterThan(-4);
    // The trap is real: scored document by document, the repeats would add up to an accusation.
    expect(perDocumentLog10P(documents, trueKey)).toBeLessThan(-20);
  }, 60_000);
});

describe('trap: prompts that contain watermarked text', () => {
  /** A model that quotes its prompt (watermarked text) before going on with human text. */
  const echoing = (crossDocument: boolean): ScanDocument[] =>
    marked.slice(0, 12).map((prompt, i) => {
      const quoted = crossDocument ? marked[(i + 1) % 12]! : prompt.subarray(prompt.length - 100);
      const rest = human[i]!.tokens as Uint32Array;
      const tokens = new Uint32Array(quoted.length + rest.length);
      tokens.set(quoted);
      tokens.set(rest, quoted.length);
      return { source: `echo-${i}`, tokens, prompt };
    });

  it("a completion that echoes its own prompt: the prompt's pairs are excluded", async () => {
    const documents = echoing(false);
    const report = await scan(documents, [trueKey]);
    expect(report.verdict, report.reason).not.toBe('radioactive');
    expect(report.keys[0]!.tape.numExcludedByPrompt).toBeGreaterThan(500);
    // The trap is real: without the prompts the echoes look like radioactivity.
    const withoutPrompts = await scan(
      documents.map(({ source, tokens }) => ({ source, tokens })),
      [trueKey],
    );
    expect(withoutPrompts.verdict).toBe('radioactive');
  }, 60_000);

  it("a completion that echoes a later document's prompt: excluded too (global exclusion)", async () => {
    const documents = echoing(true);
    const report = await scan(documents, [trueKey]);
    expect(report.verdict, report.reason).not.toBe('radioactive');
    expect(report.keys[0]!.log10P).toBeGreaterThan(-4);
    // The spec's streaming rule alone (a prompt excludes only what follows it) would score the echo
    // of document 12's prompt in document 11 … and of every next prompt: a strong false signal.
    const watermarker = createWatermarker(trueKey, { specialTokenIds: special });
    const tape = new DedupTape();
    let scored = 0;
    let green = 0;
    for (const document of documents) {
      const scorer = new Scorer(watermarker, { tape });
      scorer.addPrompt(document.prompt!);
      const counts = scorer.push(document.tokens);
      scored += counts.numScored;
      green += counts.numGreen;
    }
    expect(log10BinomialSf(green, scored, trueKey.scheme.gammaEffective)).toBeLessThan(-8);
  }, 60_000);
});

describe('trap: many keys tried', () => {
  it('20 epoch keys on clean text: Holm keeps every adjusted p-value honest; no key is radioactive', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => deriveSubkey(keyFrom('traps/master'), `epoch/${i}`));
    const report = await scan([...human, ...cleanSamples], keys, { fakeKeys: 20 });
    expect(report.verdict).not.toBe('radioactive');
    const raw = Math.min(...report.keys.map((k) => k.log10P));
    const adjusted = Math.min(...report.keys.map((k) => k.log10PAdjusted));
    expect(adjusted).toBeCloseTo(Math.min(0, raw + Math.log10(20)), 9);
  }, 60_000);

  it('the true key among 20 epochs is found, and matched, in a half-watermarked corpus', async () => {
    const keys = [
      ...Array.from({ length: 19 }, (_, i) => deriveSubkey(keyFrom('traps/master'), `epoch/${i}`)),
      trueKey,
    ];
    const documents = [
      ...marked.map((tokens, i) => ({ source: `marked-${i}`, tokens })),
      ...human.slice(0, 8),
    ];
    const report = await scan(documents, keys, { fakeKeys: 20 });
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(trueKey.keyId);
    expect(report.keys.filter((k) => k.verdict === 'radioactive').map((k) => k.keyId)).toEqual([
      trueKey.keyId,
    ]);
  }, 60_000);
});

describe('trap: a (window, token) filter', () => {
  it('the supervised (window-only) filter keeps clean text clean; a pair filter would have accused it', async () => {
    const issued = await IssuedWindowSet.fromOutputs(marked, {
      schemes: [trueKey.scheme],
      specialTokenIds: special,
    });
    const clean = [...human, ...cleanSamples];
    const report = await scan(clean, [trueKey], { issuedWindows: issued });
    expect(report.supervised).toBe(true);
    expect(report.verdict, report.reason).not.toBe('radioactive');
    expect(report.keys[0]!.tape.numFilteredOut).toBeGreaterThan(0);
    // The trap is real: keep only the clean positions whose (previous token, token) pair occurs in
    // the issued outputs, as a pair filter would, and the clean text turns green.
    const issuedPairs = new Set<string>();
    for (const output of marked)
      for (let i = 1; i < output.length; i++) issuedPairs.add(`${output[i - 1]},${output[i]}`);
    const watermarker = createWatermarker(trueKey, { specialTokenIds: special });
    const seed = new Uint32Array(2);
    const seen = new Set<string>();
    let scored = 0;
    let green = 0;
    for (const { tokens } of clean) {
      for (let i = 1; i < tokens.length; i++) {
        const pair = `${tokens[i - 1]},${tokens[i]}`;
        if (!issuedPairs.has(pair) || seen.has(pair) || !watermarker.seedAt(tokens, i, seed)) continue;
        seen.add(pair);
        scored++;
        if (watermarker.isGreen(seed[0]!, seed[1]!, tokens[i]!)) green++;
      }
    }
    expect(green / scored).toBeGreaterThan(0.4);
    expect(log10BinomialSf(green, scored, 0.25)).toBeLessThan(-6);
  }, 60_000);
});

describe('positive controls', () => {
  it('corpora with 10%, 25%, 50% and 100% watermarked text are radioactive; the dose estimate rises with the share', async () => {
    const issuedGreen = await measureGreenFraction(marked, trueKey, special);
    expect(issuedGreen.greenFraction).toBeGreaterThan(0.45);
    const markedTokens = marked.reduce((sum, m) => sum + m.length, 0);
    const doses: number[] = [];
    for (const share of [0.1, 0.25, 0.5, 1]) {
      const documents: ScanDocument[] = marked.map((tokens, i) => ({ source: `marked-${i}`, tokens }));
      let humanTokens = 0;
      for (const document of human) {
        if (humanTokens >= (markedTokens * (1 - share)) / share) break;
        documents.push(document);
        humanTokens += document.tokens.length;
      }
      const report = await scan(documents, [trueKey], {
        issuedGreenFractions: new Map([[trueKey.keyId, issuedGreen.greenFraction]]),
      });
      const result = report.keys[0]!;
      expect(report.verdict, `${share}: ${report.reason}`).toBe('radioactive');
      expect(result.calibration.rank).toBe(1);
      expect(result.topDocuments[0]!.source).toMatch(/^marked-/);
      expect(result.passages[0]!.start.source).toMatch(/^marked-/);
      doses.push(result.dose!.estimate);
    }
    for (let i = 1; i < doses.length; i++) expect(doses[i]!).toBeGreaterThan(doses[i - 1]!);
    expect(doses[3]!).toBeGreaterThan(0.8);
  }, 60_000);

  it('a corpus built from issued outputs: the supervised filter keeps their signal and drops unrelated text', async () => {
    const issuedOutputs = marked.slice(0, 8);
    const issued = await IssuedWindowSet.fromOutputs(issuedOutputs, {
      schemes: [trueKey.scheme],
      specialTokenIds: special,
    });
    const unrelated: ScanDocument[] = [];
    for (let i = 0, total = 0; total < 8000; i++) {
      unrelated.push(human[i]!);
      total += human[i]!.tokens.length;
    }
    const documents = [
      ...issuedOutputs.map((tokens, i) => ({ source: `copied-${i}`, tokens })),
      ...unrelated,
    ];
    const supervised = await scan(documents, [trueKey], { issuedWindows: issued });
    const unsupervised = await scan(documents, [trueKey]);
    expect(supervised.verdict).toBe('radioactive');
    expect(supervised.keys[0]!.effect).toBeGreaterThan(unsupervised.keys[0]!.effect);
    expect(supervised.keys[0]!.tape.numFilteredOut).toBeGreaterThan(0);
  }, 60_000);

  it('a student model trained on a mix with 21% watermarked text is radioactive; one trained on the clean part is not', async () => {
    const cleanTraining = human.slice(100, 125).map((d) => d.tokens);
    const verdicts: string[] = [];
    for (const training of [[...marked, ...cleanTraining], cleanTraining]) {
      const student = await trainNgramModel({
        documents: training,
        vocabSize: tokenizer.vocabSize,
        tokenizerId: 'cl100k_base',
        order: 2,
      });
      const outputs: ScanDocument[] = [];
      for (let i = 0; i < 40; i++) {
        const ids: number[] = [];
        for await (const { token } of generateTokens({
          source: logitsSource(student, 64),
          prompt: tokenizer.encode('The'),
          maxTokens: 150,
          watermarker: null,
          seed: 5000 + i,
        })) {
          ids.push(token);
        }
        outputs.push({ source: `student-${i}`, tokens: Uint32Array.from(ids) });
      }
      const issued = await IssuedWindowSet.fromOutputs(marked, {
        schemes: [trueKey.scheme],
        specialTokenIds: special,
      });
      for (const options of [{}, { issuedWindows: issued }]) {
        verdicts.push((await scan(outputs, [trueKey], options)).verdict);
      }
    }
    expect(verdicts.slice(0, 2)).toEqual(['radioactive', 'radioactive']);
    expect(verdicts.slice(2)).not.toContain('radioactive');
  }, 60_000);
});
