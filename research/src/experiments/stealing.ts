/**
 * The stealing experiment (issue 15, first part): adversaries who learn the watermark from outputs
 * they harvest (watermark stealing, Jovanović et al. 2024, https://arxiv.org/abs/2402.19361).
 *
 * 1. Harvest. Per scheme, a gateway (`startServer`, embedded model) serves an attacker account that
 *    sends varied chat prompts; the answers are re-tokenized. Budgets are prefixes of that harvest.
 * 2. Estimate, as the paper does: per context view (the h preceding tokens for LeftHash(h) and
 *    Gumbel(h); for SelfHash(h), whose seed hangs on one token of the window, the token alone and each
 *    preceding token of the window, "partial contexts"), the log ratio of the token's frequency in the
 *    harvest to its frequency in an unwatermarked base (the human corpus' train split, on which the
 *    embedded model was trained), counted when the pair occurs at least `minCount` times.
 * 3. Spoof: the unwatermarked embedded model samples with a bias β toward estimated-green tokens; the
 *    detector's verdict at FPR 1e-4 (core `detect`) decides success. Queries for 50% success are read
 *    off the budget curve (log-linear interpolation).
 * 4. Scrub: held-out answers are rewritten token by token: a token the estimate calls green is
 *    resampled from the unwatermarked model biased away from estimated-green tokens; beside it, a blind
 *    rewrite of as many random positions. A student n-gram model trained on scrubbed (or raw) answers
 *    mixed with human text is sampled and scanned (one dedup tape, exact binomial or Gamma tail).
 * 5. Per-account keys (LeftHash(1), the default): the same total harvest from 10 and 100 accounts,
 *    each marked under its own sub-key (core `deriveAccountKey`), generated in-process with the
 *    gateway's sampler (the gateway has no per-account keys yet); the estimate pools them. Detection
 *    tests the service key and every sub-key with Holm. Attribution: held-out texts of random accounts
 *    against the service key and `costKeys` sub-keys; the time per document is the detection cost.
 * 6. The spoofing-artefact test (core `spoofTest`, learnability = bigram counts of the human train
 *    split; for SelfHash unigram counts, since its attacker learns colours through the token alone): its rejection rate at 1% on genuine answers, on human text and on accepted spoofs.
 *
 * Every random choice derives from a text label.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createNgramCounts,
  createRandom,
  createWatermarker,
  createWatermarkKey,
  DedupTape,
  deriveAccountKey,
  detect,
  gumbelLog10PValue,
  holmAdjustLog10,
  log10BinomialSf,
  type NgramCounts,
  type SchemeParams,
  Scorer,
  serializeKeyFile,
  spoofTest,
  type Watermarker,
  type WatermarkKey,
} from '@tracemark/core';
import { formatChatPrompt, resolveConfig, startServer } from '@tracemark/gateway';
import { loadDefaultModel, loadHumanCorpus, type NgramModel, trainNgramModel } from '@tracemark/lm';
import { promptPairs, shuffled, tokenizedDocuments, tokenizer } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { type GenerationJob, generateMany, MAX_CANDIDATES } from '../generation.ts';
import { secretFor, seedFor } from '../labels.ts';
import {
  type ExperimentContext,
  fixed,
  integer,
  reportHeader,
  writeResult,
  writeSummary,
} from '../report.ts';
import { GUMBEL_DEFAULT } from '../schemes.ts';
import { median } from '../statistics.ts';

export interface StealingScheme {
  readonly name: 'lefthash' | 'selfhash' | 'gumbel';
  readonly contextWidth: number;
  /** Harvested tokens (the largest budget for this scheme). */
  readonly harvestTokens: number;
}

export interface StealingConfig {
  readonly schemes: readonly StealingScheme[];
  /** Harvest budgets in tokens (those up to a scheme's harvestTokens are evaluated). */
  readonly budgets: readonly number[];
  readonly answerMaxTokens: number;
  /** Held-out genuine answers per scheme (scrub targets, the spoof test's genuine texts). */
  readonly targets: number;
  readonly spoofTexts: number;
  readonly spoofLength: number;
  /** β: the logit bias toward an estimated-green token of full confidence. */
  readonly spoofStrength: number;
  /** A (context, token) pair counts when harvested at least this often. */
  readonly minCount: number;
  /** Student: answer tokens (raw or scrubbed) mixed with human text to `studentTokens`. */
  readonly studentAnswerTokens: number;
  readonly studentTokens: number;
  readonly studentSamples: number;
  readonly studentSampleLength: number;
  /** Per-account keys: account counts (the harvest total is the shared key's `accountHarvestTokens`). */
  readonly accounts: readonly number[];
  readonly accountHarvestTokens: number;
  /** Sub-keys tested per document in the attribution and cost measurement, and documents timed. */
  readonly costKeys: number;
  readonly costDocuments: number;
  /**
   * Attribution on mixed corpora, under the largest per-account setting: for each m, `mixedTrials`
   * corpora, each with `mixedAnswersPerAccount` fresh answers of m random accounts among
   * `mixedHumanDocuments` human texts cut to an answer's length.
   */
  readonly mixedAccounts: readonly number[];
  readonly mixedTrials: number;
  readonly mixedAnswersPerAccount: number;
  readonly mixedHumanDocuments: number;
  /** Human train documents for the base distribution and the learnability counts (null: all). */
  readonly humanDocuments: number | null;
}

const SCHEMES_FULL: readonly StealingScheme[] = [
  { name: 'lefthash', contextWidth: 1, harvestTokens: 100_000 },
  { name: 'lefthash', contextWidth: 2, harvestTokens: 100_000 },
  { name: 'lefthash', contextWidth: 4, harvestTokens: 100_000 },
  { name: 'selfhash', contextWidth: 4, harvestTokens: 100_000 },
  { name: 'gumbel', contextWidth: 4, harvestTokens: 100_000 },
];

export const FULL_CONFIG: StealingConfig = {
  schemes: SCHEMES_FULL,
  budgets: [300, 1_000, 3_000, 10_000, 30_000, 100_000],
  answerMaxTokens: 200,
  targets: 40,
  spoofTexts: 40,
  spoofLength: 200,
  spoofStrength: 4,
  minCount: 2,
  studentAnswerTokens: 30_000,
  studentTokens: 150_000,
  studentSamples: 60,
  studentSampleLength: 100,
  accounts: [10, 100],
  accountHarvestTokens: 30_000,
  costKeys: 10_000,
  costDocuments: 20,
  mixedAccounts: [1, 3, 10],
  mixedTrials: 10,
  mixedAnswersPerAccount: 3,
  mixedHumanDocuments: 10,
  humanDocuments: null,
};

export const QUICK_CONFIG: StealingConfig = {
  schemes: [
    { name: 'lefthash', contextWidth: 1, harvestTokens: 3_000 },
    { name: 'gumbel', contextWidth: 4, harvestTokens: 1_000 },
  ],
  budgets: [1_000, 3_000],
  answerMaxTokens: 100,
  targets: 4,
  spoofTexts: 6,
  spoofLength: 100,
  spoofStrength: 4,
  minCount: 2,
  studentAnswerTokens: 2_000,
  studentTokens: 10_000,
  studentSamples: 6,
  studentSampleLength: 60,
  accounts: [10],
  accountHarvestTokens: 2_000,
  costKeys: 200,
  costDocuments: 3,
  mixedAccounts: [1, 3],
  mixedTrials: 2,
  mixedAnswersPerAccount: 2,
  mixedHumanDocuments: 4,
  humanDocuments: 300,
};

const FPR = 1e-4;
/** Sub-keys whose watermarkers are held at once in the cost measurement. */
const COST_CHUNK = 500;
const SPOOF_TEST_LEVEL = 0.01;
const LOG10_LEVEL = Math.log10(SPOOF_TEST_LEVEL);

const schemeLabel = (scheme: { name: string; contextWidth: number }): string =>
  `${scheme.name === 'lefthash' ? 'LeftHash' : scheme.name === 'selfhash' ? 'SelfHash' : 'gumbel'}(${scheme.contextWidth})`;

const schemeParams = (scheme: StealingScheme): SchemeParams =>
  scheme.name === 'gumbel'
    ? { name: 'gumbel', contextWidth: scheme.contextWidth }
    : { name: scheme.name, contextWidth: scheme.contextWidth, gamma: 0.25, delta: 2 };

// ---------------------------------------------------------------------------------------------------
// Harvest

const TOPICS = [
  'the history of',
  'how to make',
  'the economics of',
  'a story about',
  'the science of',
  'an argument for',
  'the geography of',
  'a letter about',
  'the rules of',
  'a review of',
  'the future of',
  'a day in',
];
const SUBJECTS = [
  'rivers',
  'bread',
  'railways',
  'a lighthouse',
  'volcanoes',
  'libraries',
  'mountain villages',
  'the harvest',
  'chess',
  'an old film',
  'copper mines',
  'gardens',
  'sailing ships',
  'the post office',
  'bees',
  'winter',
  'a market town',
  'the courts',
  'radio',
  'a family farm',
];

function chatPrompts(count: number, label: string): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = seedFor(`stealing/${label}/prompt/${i}`);
    return `Write ${TOPICS[n % TOPICS.length]} ${SUBJECTS[Math.floor(n / 64) % SUBJECTS.length]} (${label} ${i}).`;
  });
}

interface Harvest {
  readonly answers: Uint32Array[];
  readonly tokens: number;
  readonly requests: number;
  readonly seconds: number;
}

/** The attacker's account on a real gateway: answers until `tokens` are harvested, plus held-out targets. */
async function harvestThroughGateway(
  key: WatermarkKey,
  tokens: number,
  targets: number,
  config: StealingConfig,
  label: string,
  work: string,
): Promise<{ harvest: Harvest; targets: Uint32Array[] }> {
  const keyFile = join(work, `key-${label}.json`);
  writeFileSync(keyFile, serializeKeyFile(key));
  const gateway = await startServer(
    resolveConfig(
      { port: 0, host: '127.0.0.1', dataDir: join(work, `gateway-${label}`), keyFile },
      { ...process.env },
    ),
    { logger: false, handleSignals: false },
  );
  try {
    const post = async <T>(path: string, bearer: string, body: unknown): Promise<T> => {
      const response = await fetch(`${gateway.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };
    const { key: attacker } = await post<{ key: string }>('/v1/admin/keys', gateway.firstStart.devApiKey!, {
      scopes: ['generate'],
      account: 'attacker',
      name: 'attacker',
      rateLimitPerMinute: 100_000,
      dailyTokenQuota: 100_000_000,
    });
    const ask = async (prompt: string, seed: number): Promise<Uint32Array> => {
      const completion = await post<{ choices: { message: { content: string } }[] }>(
        '/v1/chat/completions',
        attacker,
        {
          model: 'tracemark-ngram',
          messages: [{ role: 'user', content: prompt }],
          max_tokens: config.answerMaxTokens,
          temperature: 1,
          seed,
        },
      );
      return tokenizer().encodeFast(completion.choices[0]!.message.content);
    };
    const started = performance.now();
    const answers: Uint32Array[] = [];
    let harvested = 0;
    // Batches of 4 concurrent requests; answers kept in request order (the seed is the request's own).
    const prompts = chatPrompts(Math.ceil((2 * tokens) / config.answerMaxTokens) + 16, `attacker/${label}`);
    let next = 0;
    while (harvested < tokens && next < prompts.length) {
      const batch = prompts
        .slice(next, next + 4)
        .map((prompt, j) => ask(prompt, seedFor(`stealing/${label}/seed/${next + j}`) % 2 ** 31));
      next += batch.length;
      for (const answer of await Promise.all(batch)) {
        if (harvested >= tokens) break;
        answers.push(answer);
        harvested += answer.length;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const heldOut: Uint32Array[] = [];
    const targetPrompts = chatPrompts(targets, `target/${label}`);
    for (let i = 0; i < targetPrompts.length; i += 4) {
      const batch = targetPrompts
        .slice(i, i + 4)
        .map((prompt, j) => ask(prompt, seedFor(`stealing/${label}/target-seed/${i + j}`) % 2 ** 31));
      heldOut.push(...(await Promise.all(batch)));
    }
    return { harvest: { answers, tokens: harvested, requests: answers.length, seconds }, targets: heldOut };
  } finally {
    await gateway.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// The attacker's estimate

type View = (tokens: ArrayLike<number>, index: number) => string[];

/** The context views the attacker counts for a scheme (it knows the scheme and h, as in the paper). */
function viewsOf(scheme: StealingScheme): View {
  const h = scheme.contextWidth;
  if (scheme.name === 'selfhash') {
    // The seed is (anchor, token): the anchor is the token itself or one of the h − 1 before it.
    return (tokens, index) => {
      const keys = ['self'];
      for (let j = 1; j < h && index - j >= 0; j++) keys.push(`p${tokens[index - j]}`);
      return keys;
    };
  }
  return (tokens, index) => {
    if (index < h) return [];
    let key = String(tokens[index - h]);
    for (let j = index - h + 1; j < index; j++) key += `,${tokens[j]}`;
    return [key];
  };
}

interface Counts {
  readonly pairs: Map<string, Map<number, number>>;
  readonly totals: Map<string, number>;
}

function emptyCounts(): Counts {
  return { pairs: new Map(), totals: new Map() };
}

function addDocument(
  counts: Counts,
  view: View,
  tokens: ArrayLike<number>,
  only?: ReadonlySet<string>,
): void {
  for (let i = 0; i < tokens.length; i++) {
    for (const key of view(tokens, i)) {
      if (only !== undefined && !only.has(key)) continue;
      let inner = counts.pairs.get(key);
      if (inner === undefined) counts.pairs.set(key, (inner = new Map()));
      const token = tokens[i]!;
      inner.set(token, (inner.get(token) ?? 0) + 1);
      counts.totals.set(key, (counts.totals.get(key) ?? 0) + 1);
    }
  }
}

/** Human counts of the context views that occur in `answers` (the base distribution). */
function baseCounts(view: View, answers: readonly Uint32Array[], human: readonly Uint32Array[]): Counts {
  const harvested = emptyCounts();
  for (const answer of answers) addDocument(harvested, view, answer);
  const needed = new Set(harvested.pairs.keys());
  const base = emptyCounts();
  for (const document of human) addDocument(base, view, document, needed);
  return base;
}

/** Green-confidence scores in [0, 1] for (context view, token) pairs, from frequency ratios. */
class Estimate {
  private readonly harvest = emptyCounts();
  private readonly unigram: Map<number, number>;
  private readonly unigramTotal: number;

  /** `base`: the human counts of (at least) every context view the answers hold ({@link baseCounts}). */
  constructor(
    readonly view: View,
    answers: readonly Uint32Array[],
    private readonly base: Counts,
    humanUnigram: { counts: Map<number, number>; total: number },
    private readonly minCount: number,
  ) {
    for (const answer of answers) addDocument(this.harvest, view, answer);
    this.unigram = humanUnigram.counts;
    this.unigramTotal = humanUnigram.total;
  }

  /** Dirichlet-smoothed base probability of `token` in context `key` (prior: the unigram, weight 10). */
  private baseProbability(key: string, token: number): number {
    const prior = ((this.unigram.get(token) ?? 0) + 0.5) / (this.unigramTotal + 0.5 * 100_000);
    const inner = this.base.pairs.get(key);
    const total = this.base.totals.get(key) ?? 0;
    return ((inner?.get(token) ?? 0) + 10 * prior) / (total + 10);
  }

  /** Score of one view: min(1, ln(p_harvest / p_base) / ln 4) when harvested ≥ minCount times, else 0. */
  private viewScore(key: string, token: number): number | null {
    const inner = this.harvest.pairs.get(key);
    if (inner === undefined) return null;
    const count = inner.get(token) ?? 0;
    if (count < this.minCount) return 0;
    const ratio = count / this.harvest.totals.get(key)! / this.baseProbability(key, token);
    return Math.max(0, Math.min(1, Math.log(ratio) / Math.log(4)));
  }

  /** The mean over the views that were harvested at all; 0 when none was. */
  score(tokens: ArrayLike<number>, index: number, candidate: number): number {
    let sum = 0;
    let seen = 0;
    // The view of position `index` with `candidate` in it: views read tokens before index only,
    // except SelfHash's "self", which is the candidate itself.
    for (const key of this.view(tokens, index)) {
      const value = this.viewScore(key, candidate);
      if (value === null) continue;
      sum += value;
      seen++;
    }
    return seen === 0 ? 0 : sum / seen;
  }
}

/** Samples one token from the unwatermarked model with logit bias `bias(candidate)`. */
function sampleBiased(
  model: NgramModel,
  context: Uint32Array,
  random: ReturnType<typeof createRandom>,
  bias: (candidate: number) => number,
): number {
  const { ids, logits } = model.candidates(context, MAX_CANDIDATES);
  const weights = new Float64Array(ids.length);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < ids.length; i++) {
    weights[i] = logits[i]! + bias(ids[i]!);
    if (weights[i]! > max) max = weights[i]!;
  }
  let total = 0;
  for (let i = 0; i < ids.length; i++) total += weights[i] = Math.exp(weights[i]! - max);
  let u = random.nextFloat() * total;
  for (let i = 0; i < ids.length; i++) {
    u -= weights[i]!;
    if (u <= 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

function spoofText(
  model: NgramModel,
  estimate: Estimate,
  prompt: Uint32Array,
  length: number,
  strength: number,
  seed: number,
): Uint32Array {
  const random = createRandom(seed);
  const context = new Uint32Array(prompt.length + length);
  context.set(prompt);
  for (let step = 0; step < length; step++) {
    const at = prompt.length + step;
    const view = context.subarray(0, at);
    const withCandidate = context.subarray(0, at + 1);
    context[at] = sampleBiased(model, view, random, (candidate) => {
      withCandidate[at] = candidate;
      return strength * estimate.score(withCandidate, at, candidate);
    });
  }
  return context.slice(prompt.length);
}

/** Rewrites `text`: a token estimated green (score ≥ ½) is resampled away from estimated-green tokens. */
function scrubText(
  model: NgramModel,
  estimate: Estimate | null,
  text: Uint32Array,
  strength: number,
  seed: number,
  blindPositions?: ReadonlySet<number>,
): { tokens: Uint32Array; replaced: number } {
  const random = createRandom(seed);
  const out = Uint32Array.from(text);
  let replaced = 0;
  for (let i = 0; i < out.length; i++) {
    const replace =
      blindPositions !== undefined ? blindPositions.has(i) : estimate!.score(out, i, out[i]!) >= 0.5;
    if (!replace) continue;
    const withCandidate = out.subarray(0, i + 1);
    const original = out[i]!;
    out[i] = sampleBiased(model, out.subarray(0, i), random, (candidate) => {
      if (candidate === original) return -30;
      if (estimate === null) return 0;
      withCandidate[i] = candidate;
      return -strength * estimate.score(withCandidate, i, candidate);
    });
    replaced++;
  }
  return { tokens: out, replaced };
}

// ---------------------------------------------------------------------------------------------------
// Radioactivity of a student

interface ScanResult {
  readonly numScored: number;
  /** Green-list keys: the green count (0 for a Gumbel key). */
  readonly numGreen: number;
  readonly log10P: number;
}

/** One dedup tape over every sample (in order), prompts excluded; the exact tail of the key's test. */
function scanCorpus(
  watermarker: Watermarker,
  samples: readonly { prompt: Uint32Array; tokens: Uint32Array }[],
): ScanResult {
  const tape = new DedupTape();
  let scored = 0;
  let green = 0;
  let score = 0;
  for (const sample of samples) {
    const scorer = new Scorer(watermarker, { tape });
    scorer.addPrompt(sample.prompt);
    scorer.pushWithoutStatus(sample.tokens);
    const counts = scorer.counts();
    scored += counts.numScored;
    green += counts.numGreen;
    score += scorer.totalScore();
  }
  const scheme = watermarker.scheme;
  const log10P =
    scored === 0
      ? 0
      : scheme.family === 'gumbel'
        ? gumbelLog10PValue(scheme, scored, score)
        : log10BinomialSf(green, scored, scheme.threshold / 2 ** 32);
  return { numScored: scored, numGreen: scheme.family === 'gumbel' ? 0 : green, log10P };
}

/**
 * Attribution by sub-key on mixed corpora: each corpus holds fresh answers of m random accounts among
 * human texts cut to an answer's length, shuffled; it is scanned (one dedup tape) under the service key
 * and every account's sub-key, Holm over them; the accounts named are the sub-keys at or below the FPR
 * after adjustment.
 */
async function mixedCorpusAttribution(
  answersOf: (accounts: readonly number[], label: string) => Promise<Uint32Array[][]>,
  accountCount: number,
  watermarkers: readonly Watermarker[],
  human: readonly Uint32Array[],
  config: StealingConfig,
): Promise<MixedAttributionRow[]> {
  const empty = new Uint32Array(0);
  const rows: MixedAttributionRow[] = [];
  for (const m of config.mixedAccounts) {
    let exact = 0;
    let found = 0;
    let falseNames = 0;
    const answerTokens: number[] = [];
    for (let trial = 0; trial < config.mixedTrials; trial++) {
      const chosen = shuffled(
        Array.from({ length: accountCount }, (_, i) => i),
        `stealing/mixed/${m}/${trial}`,
      ).slice(0, m);
      const answers = (await answersOf(chosen, `mixed/${m}/${trial}`)).flat();
      answerTokens.push(answers.reduce((sum, answer) => sum + answer.length, 0));
      const humanTexts = shuffled(human, `stealing/mixed-human/${m}/${trial}`)
        .slice(0, config.mixedHumanDocuments)
        .map((document) => document.subarray(0, config.answerMaxTokens));
      const samples = shuffled([...answers, ...humanTexts], `stealing/mixed-order/${m}/${trial}`).map(
        (tokens) => ({ prompt: empty, tokens }),
      );
      const adjusted = holmAdjustLog10(watermarkers.map((w) => scanCorpus(w, samples).log10P));
      // watermarkers[0] is the service key; account a's sub-key is watermarkers[a + 1].
      const named = new Set<number>();
      adjusted.forEach((value, i) => {
        if (i > 0 && value <= Math.log10(FPR)) named.add(i - 1);
      });
      const truth = new Set(chosen);
      const hits = chosen.filter((a) => named.has(a)).length;
      found += hits;
      falseNames += [...named].filter((a) => !truth.has(a)).length;
      if (hits === m && named.size === m) exact++;
    }
    rows.push({
      accountsInCorpus: m,
      keys: watermarkers.length,
      corpora: config.mixedTrials,
      exact,
      recall: found / (m * config.mixedTrials),
      falseNames,
      medianAnswerTokens: median(answerTokens),
    });
  }
  return rows;
}

/** Holm over keys: the smallest adjusted log10 p and the key that gives it. */
function holmBest(results: readonly ScanResult[]): { log10P: number; index: number } {
  const order = results.map((r, i) => [r.log10P, i] as const).sort((a, b) => a[0] - b[0]);
  const [best, index] = order[0]!;
  return { log10P: Math.min(0, best + Math.log10(results.length)), index };
}

async function studentSamples(
  documents: Uint32Array[],
  human: readonly Uint32Array[],
  config: StealingConfig,
  prompts: readonly Uint32Array[],
  label: string,
): Promise<{ prompt: Uint32Array; tokens: Uint32Array }[]> {
  const mix: Uint32Array[] = [...documents];
  let total = documents.reduce((sum, d) => sum + d.length, 0);
  for (const document of human) {
    if (total >= config.studentTokens) break;
    const take = document.subarray(0, Math.min(document.length, config.studentTokens - total));
    mix.push(take);
    total += take.length;
  }
  const student = await trainNgramModel({
    documents: shuffled(mix, `stealing/student-mix/${label}`),
    vocabSize: tokenizer().vocabSize,
    tokenizerId: 'cl100k_base',
    order: 3,
  });
  return prompts.slice(0, config.studentSamples).map((prompt, i) => {
    const random = createRandom(seedFor(`stealing/student/${label}/${i}`));
    const context = new Uint32Array(prompt.length + config.studentSampleLength);
    context.set(prompt);
    for (let step = 0; step < config.studentSampleLength; step++) {
      const at = prompt.length + step;
      context[at] = sampleBiased(student, context.subarray(0, at), random, () => 0);
    }
    return { prompt, tokens: context.slice(prompt.length) };
  });
}

// ---------------------------------------------------------------------------------------------------
// Results

export interface BudgetRow {
  readonly tokens: number;
  readonly requests: number;
  readonly spoofSuccess: number;
  readonly spoofMedianLog10P: number;
  /** Among spoofs the detector accepts: share the spoof test rejects at 1% (null when none accepted). */
  readonly spoofTestPower: number | null;
  readonly spoofTestPowerAll: number;
}

export interface ScrubRow {
  readonly kind: 'none' | 'estimate' | 'blind';
  readonly replacedShare: number;
  readonly tpr: number;
  readonly medianLog10P: number;
}

export interface SchemeResult {
  readonly scheme: string;
  readonly harvest: {
    readonly tokens: number;
    readonly requests: number;
    readonly seconds: number;
    readonly meanAnswerTokens: number;
  };
  readonly budgets: readonly BudgetRow[];
  /** Harvested tokens and requests for 50% spoof success (log-linear interpolation); null: not reached. */
  readonly tokensFor50: number | null;
  readonly requestsFor50: number | null;
  readonly scrub: readonly ScrubRow[];
  readonly student: { readonly raw: ScanResult; readonly scrubbed: ScanResult; readonly rho: number };
  /** Spoof test on genuine held-out answers and on human text: rejection rate at 1%. */
  readonly spoofTestGenuineRate: number;
  readonly spoofTestHumanRate: number;
  readonly genuineTexts: number;
}

export interface AccountRow {
  readonly scheme: string;
  readonly accounts: number;
  readonly keys: 'shared' | 'per-account';
  readonly harvestTokens: number;
  readonly spoofSuccess: number;
  readonly scrubTpr: number;
  readonly scrubReplacedShare: number;
  /** Student radioactivity: Holm over the keys tested (the service key, and every sub-key). */
  readonly studentLog10P: number;
  readonly studentKeysTested: number;
  /** Sub-keys whose own (Holm-adjusted) student p-value is ≤ 1e-4. */
  readonly accountsNamed: number;
  /**
   * The sub-keys pooled (extraction `pooledKeyIds`: green counts summed, exact Bin(T, γ)), Holm-adjusted
   * over the keys and the pool; null with one shared key.
   */
  readonly studentPooledLog10P: number | null;
}

export interface MixedAttributionRow {
  /** Accounts whose answers are in each corpus, among `keys` − 1 sub-keys. */
  readonly accountsInCorpus: number;
  readonly keys: number;
  readonly corpora: number;
  /** Corpora whose named accounts (Holm over the keys, ≤ FPR) are exactly the accounts in it. */
  readonly exact: number;
  /** Over all corpora: accounts in them that were named, and named accounts that were not in them. */
  readonly recall: number;
  readonly falseNames: number;
  /** Median tokens of the accounts' answers in a corpus. */
  readonly medianAnswerTokens: number;
}

export interface StealingSummary {
  readonly experiment: 'stealing';
  readonly quick: boolean;
  readonly config: StealingConfig;
  readonly run: {
    readonly seconds: number;
    readonly workers: number;
    readonly loadAtStart: number;
    readonly loadAtEnd: number;
  };
  readonly schemes: readonly SchemeResult[];
  readonly accounts: readonly AccountRow[];
  /** Attribution by sub-key on mixed corpora (the largest per-account setting). */
  readonly mixedAttribution: readonly MixedAttributionRow[];
  readonly attribution: {
    readonly keys: number;
    readonly documents: number;
    readonly correct: number;
    readonly derivationSeconds: number;
    readonly secondsPerDocument: number;
  };
}

function tokensFor(rows: readonly BudgetRow[], goal = 0.5): number | null {
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    if (row.spoofSuccess < goal) continue;
    if (i === 0) return row.tokens;
    const previous = rows[i - 1]!;
    const t = (goal - previous.spoofSuccess) / (row.spoofSuccess - previous.spoofSuccess);
    return Math.round(
      Math.exp(Math.log(previous.tokens) + t * (Math.log(row.tokens) - Math.log(previous.tokens))),
    );
  }
  return null;
}

const rate = (flags: readonly boolean[]): number =>
  flags.length === 0 ? 0 : flags.filter(Boolean).length / flags.length;

// ---------------------------------------------------------------------------------------------------

export async function runStealing(context: ExperimentContext): Promise<StealingSummary> {
  const startedAt = performance.now();
  const loadAtStart = loadAverage();
  const config = context.quick ? QUICK_CONFIG : FULL_CONFIG;
  const log = context.log;
  const model = await loadDefaultModel({ tokenizerId: tokenizer().id });
  const human =
    config.humanDocuments === null
      ? shuffled(
          (await tokenizedDocuments('train')).map((d) => d.ids),
          'stealing/human',
        )
      : shuffled(await loadHumanCorpus({ split: 'train' }), 'stealing/human')
          .slice(0, config.humanDocuments)
          .map((document) => tokenizer().encodeFast(document.text));
  const humanUnigram = { counts: new Map<number, number>(), total: 0 };
  for (const document of human) {
    for (const token of document) humanUnigram.counts.set(token, (humanUnigram.counts.get(token) ?? 0) + 1);
    humanUnigram.total += document.length;
  }
  // Learnability: what the scheme's attacker counts. SelfHash's learns a token's colour through the
  // token alone (its own anchor): unigram counts; the others learn contexts: bigram counts.
  const bigrams: NgramCounts = createNgramCounts(human, 2);
  const unigrams: NgramCounts = createNgramCounts(human, 1);
  const learnabilityOf =
    (scheme: StealingScheme) =>
    (tokens: Uint32Array, index: number): number =>
      (scheme.name === 'selfhash' ? unigrams : bigrams).count(tokens, index);
  const pairs = await promptPairs(32, config.spoofLength);
  const spoofPrompts = pairs.slice(0, config.spoofTexts).map((pair) => pair.prompt);
  /** A spoofed text from `estimate` for each spoof prompt, the i-th seeded from `label`/i. */
  const spoofsFrom = (estimate: Estimate, label: string): Uint32Array[] =>
    spoofPrompts.map((prompt, i) =>
      spoofText(model, estimate, prompt, config.spoofLength, config.spoofStrength, seedFor(`${label}/${i}`)),
    );
  const humanTexts = pairs.slice(0, Math.max(config.targets, config.spoofTexts));
  const studentPrompts = pairs
    .slice(config.spoofTexts, config.spoofTexts + config.studentSamples)
    .map((p) => p.prompt);
  const work = mkdtempSync(join(tmpdir(), 'tracemark-stealing-'));
  const schemes: SchemeResult[] = [];
  const accounts: AccountRow[] = [];
  let attribution: StealingSummary['attribution'];
  let mixedAttribution: MixedAttributionRow[] = [];
  try {
    for (const scheme of config.schemes) {
      const label = schemeLabel(scheme);
      const key = createWatermarkKey({
        secret: secretFor(`stealing/${label}`),
        scheme: schemeParams(scheme),
      });
      const watermarker = createWatermarker(key);
      const { harvest, targets } = await harvestThroughGateway(
        key,
        scheme.harvestTokens,
        config.targets,
        config,
        label,
        work,
      );
      const meanAnswerTokens = harvest.tokens / Math.max(1, harvest.requests);
      log(
        `stealing: ${label}: harvested ${harvest.requests} answers, ${harvest.tokens} tokens in ${harvest.seconds.toFixed(0)} s`,
      );
      const view = viewsOf(scheme);
      const learnability = learnabilityOf(scheme);
      const base = baseCounts(view, harvest.answers, human);
      const budgets: BudgetRow[] = [];
      let largest: Estimate | null = null;
      for (const budget of config.budgets.filter((b) => b <= scheme.harvestTokens)) {
        const answers: Uint32Array[] = [];
        let used = 0;
        for (const answer of harvest.answers) {
          if (used >= budget) break;
          const take = answer.subarray(0, Math.min(answer.length, budget - used));
          answers.push(take);
          used += take.length;
        }
        const estimate = new Estimate(view, answers, base, humanUnigram, config.minCount);
        const spoofs = spoofsFrom(estimate, `stealing/spoof/${label}/${budget}`);
        const detections = spoofs.map((tokens, i) =>
          detect(tokens, watermarker, { prompt: spoofPrompts[i]!, fpr: FPR, includeStatus: false }),
        );
        const accepted = detections.map((d) => d.verdict === 'watermarked');
        const tests = spoofs.map(
          (tokens, i) =>
            spoofTest(tokens, watermarker, learnability, { prompt: spoofPrompts[i]! }).log10P <= LOG10_LEVEL,
        );
        const acceptedTests = tests.filter((_, i) => accepted[i]);
        budgets.push({
          tokens: used,
          requests: answers.length,
          spoofSuccess: rate(accepted),
          spoofMedianLog10P: median(detections.map((d) => d.results[0]!.log10P)),
          spoofTestPower: acceptedTests.length === 0 ? null : rate(acceptedTests),
          spoofTestPowerAll: rate(tests),
        });
        log(
          `stealing: ${label}: ${used} tokens (${answers.length} requests): spoof success ${rate(accepted).toFixed(2)}, spoof test ${rate(tests).toFixed(2)}`,
        );
        largest = estimate;
      }
      // Scrub the held-out answers with the largest estimate; blind: as many random positions.
      const estimate = largest!;
      const verdictOf = (tokens: Uint32Array) =>
        detect(tokens, watermarker, { fpr: FPR, includeStatus: false });
      const scrubRows: ScrubRow[] = [];
      const none = targets.map(verdictOf);
      scrubRows.push({
        kind: 'none',
        replacedShare: 0,
        tpr: rate(none.map((d) => d.verdict === 'watermarked')),
        medianLog10P: median(none.map((d) => d.results[0]!.log10P)),
      });
      const scrubbed = targets.map((text, i) =>
        scrubText(model, estimate, text, config.spoofStrength, seedFor(`stealing/scrub/${label}/${i}`)),
      );
      const scrubbedDetections = scrubbed.map((s) => verdictOf(s.tokens));
      const replacedShare =
        scrubbed.reduce((sum, s) => sum + s.replaced, 0) /
        Math.max(
          1,
          targets.reduce((sum, t) => sum + t.length, 0),
        );
      scrubRows.push({
        kind: 'estimate',
        replacedShare,
        tpr: rate(scrubbedDetections.map((d) => d.verdict === 'watermarked')),
        medianLog10P: median(scrubbedDetections.map((d) => d.results[0]!.log10P)),
      });
      const blind = targets.map((text, i) => {
        const order = shuffled(Array.from(text.keys()), `stealing/blind/${label}/${i}`);
        return scrubText(
          model,
          null,
          text,
          0,
          seedFor(`stealing/blind-sample/${label}/${i}`),
          new Set(order.slice(0, scrubbed[i]!.replaced)),
        );
      });
      const blindDetections = blind.map((s) => verdictOf(s.tokens));
      scrubRows.push({
        kind: 'blind',
        replacedShare,
        tpr: rate(blindDetections.map((d) => d.verdict === 'watermarked')),
        medianLog10P: median(blindDetections.map((d) => d.results[0]!.log10P)),
      });
      log(
        `stealing: ${label}: scrub replaced ${(100 * replacedShare).toFixed(0)}%: TPR ${scrubRows[1]!.tpr.toFixed(2)} (blind ${scrubRows[2]!.tpr.toFixed(2)})`,
      );
      // Students on raw and on scrubbed answers (the first studentAnswerTokens of the harvest).
      const studentAnswers: Uint32Array[] = [];
      let studentUsed = 0;
      for (const answer of harvest.answers) {
        if (studentUsed >= config.studentAnswerTokens) break;
        studentAnswers.push(answer);
        studentUsed += answer.length;
      }
      const scrubbedAnswers = studentAnswers.map(
        (text, i) =>
          scrubText(
            model,
            estimate,
            text,
            config.spoofStrength,
            seedFor(`stealing/scrub-student/${label}/${i}`),
          ).tokens,
      );
      const raw = scanCorpus(
        watermarker,
        await studentSamples(studentAnswers, human, config, studentPrompts, `${label}/raw`),
      );
      const clean = scanCorpus(
        watermarker,
        await studentSamples(scrubbedAnswers, human, config, studentPrompts, `${label}/scrubbed`),
      );
      log(
        `stealing: ${label}: student log10 p raw ${raw.log10P.toFixed(1)}, scrubbed ${clean.log10P.toFixed(1)}`,
      );
      // Spoof test: genuine answers and human text.
      const genuine = targets.map((text) => spoofTest(text, watermarker, learnability).log10P <= LOG10_LEVEL);
      const humanRejected = humanTexts.map(
        (pair) =>
          spoofTest(pair.continuation, watermarker, learnability, { prompt: pair.prompt }).log10P <=
          LOG10_LEVEL,
      );
      const rows = budgets;
      const tokensFor50 = tokensFor(rows);
      schemes.push({
        scheme: label,
        harvest: {
          tokens: harvest.tokens,
          requests: harvest.requests,
          seconds: harvest.seconds,
          meanAnswerTokens,
        },
        budgets: rows,
        tokensFor50,
        requestsFor50: tokensFor50 === null ? null : Math.ceil(tokensFor50 / meanAnswerTokens),
        scrub: scrubRows,
        student: { raw, scrubbed: clean, rho: Math.min(1, studentUsed / config.studentTokens) },
        spoofTestGenuineRate: rate(genuine),
        spoofTestHumanRate: rate(humanRejected),
        genuineTexts: genuine.length,
      });
    }

    // Per-account keys: every scheme with one shared key and over 10 accounts; LeftHash(1), the default,
    // also over every account count of the config, with the mixed-corpus attribution.
    const encodePrompt = (text: string) => tokenizer().encode(formatChatPrompt([{ content: text }]));
    const maxAccounts = Math.max(...config.accounts);
    const accountSchemes = config.schemes.map((scheme) => ({
      ...scheme,
      harvestTokens: config.accountHarvestTokens,
    }));
    let defaultService: WatermarkKey | null = null;
    let defaultAccountKeys: WatermarkKey[] = [];
    let defaultGenerate:
      | ((keys: readonly WatermarkKey[], tokens: number, label: string) => Promise<Uint32Array[][]>)
      | null = null;
    for (const accountScheme of accountSchemes) {
      const isDefault = accountScheme.name === 'lefthash' && accountScheme.contextWidth === 1;
      const schemeName = schemeLabel(accountScheme);
      const service = createWatermarkKey({
        secret: secretFor(isDefault ? 'stealing/service' : `stealing/service/${schemeName}`),
        scheme: schemeParams(accountScheme),
      });
      const serviceWatermarker = createWatermarker(service);
      const view = viewsOf(accountScheme);
      const accountKeys = Array.from({ length: maxAccounts }, (_, i) =>
        deriveAccountKey(service, `acct_${i}`),
      );
      if (isDefault) {
        defaultService = service;
        defaultAccountKeys = accountKeys;
      }
      const jobScheme: GenerationJob['scheme'] =
        accountScheme.name === 'gumbel'
          ? { ...GUMBEL_DEFAULT, contextWidth: accountScheme.contextWidth }
          : { name: accountScheme.name, contextWidth: accountScheme.contextWidth, gamma: 0.25, delta: 2 };
      // Labels of the default scheme are those of the runs before the other schemes were added.
      const prefix = isDefault ? '' : `${schemeName}/`;
      const generate = async (
        keys: readonly WatermarkKey[],
        tokens: number,
        label: string,
      ): Promise<Uint32Array[][]> => {
        // Answers dealt to the accounts in turn, so that every setting harvests the same total.
        const count = Math.max(keys.length, Math.ceil(tokens / config.answerMaxTokens));
        const owners = Array.from({ length: count }, (_, j) => j % keys.length);
        const prompts = chatPrompts(count, label);
        const jobs: GenerationJob[] = owners.map((a, i) => ({
          secret: keys[a]!.secret,
          scheme: jobScheme,
          prompt: encodePrompt(prompts[i]!),
          maxTokens: config.answerMaxTokens,
          temperature: 1,
          topP: 1,
          seed: seedFor(`stealing/${prefix}${label}/${i}`),
          spikeModulus: 1,
        }));
        const results = await generateMany(jobs, context.workers);
        return keys.map((_, a) => results.filter((_, i) => owners[i] === a).map((r) => r.tokens));
      };
      const accountSettings: { accounts: number; keys: AccountRow['keys'] }[] = [
        { accounts: 1, keys: 'shared' },
        ...(isDefault ? config.accounts : [Math.min(...config.accounts)]).map((accounts) => ({
          accounts,
          keys: 'per-account' as const,
        })),
      ];
      for (const setting of accountSettings) {
        const keys = setting.keys === 'shared' ? [service] : accountKeys.slice(0, setting.accounts);
        const watermarkers =
          setting.keys === 'shared'
            ? [serviceWatermarker]
            : [serviceWatermarker, ...keys.map((k) => createWatermarker(k))];
        const answers = (
          await generate(keys, config.accountHarvestTokens, `accounts/${setting.keys}/${setting.accounts}`)
        ).flat();
        const harvestTokens = answers.reduce((sum, a) => sum + a.length, 0);
        const estimate = new Estimate(
          view,
          answers,
          baseCounts(view, answers, human),
          humanUnigram,
          config.minCount,
        );
        const spoofs = spoofsFrom(
          estimate,
          `stealing/${prefix}account-spoof/${setting.keys}/${setting.accounts}`,
        );
        const spoofSuccess = rate(
          spoofs.map(
            (tokens, i) =>
              detect(tokens, watermarkers, { prompt: spoofPrompts[i]!, fpr: FPR, includeStatus: false })
                .verdict === 'watermarked',
          ),
        );
        // Scrub targets: fresh answers of the first account (its own key).
        const targets = (
          await generate(
            [keys[0]!],
            config.targets * config.answerMaxTokens,
            `accounts/targets/${setting.keys}/${setting.accounts}`,
          )
        )[0]!.slice(0, config.targets);
        const scrubbed = targets.map((text, i) =>
          scrubText(
            model,
            estimate,
            text,
            config.spoofStrength,
            seedFor(`stealing/${prefix}account-scrub/${setting.keys}/${setting.accounts}/${i}`),
          ),
        );
        const scrubTpr = rate(
          scrubbed.map(
            (s) =>
              detect(s.tokens, watermarkers, { fpr: FPR, includeStatus: false }).verdict === 'watermarked',
          ),
        );
        const scrubReplacedShare =
          scrubbed.reduce((sum, s) => sum + s.replaced, 0) /
          Math.max(
            1,
            targets.reduce((sum, t) => sum + t.length, 0),
          );
        const studentAnswers: Uint32Array[] = [];
        let used = 0;
        for (const answer of shuffled(
          answers,
          `stealing/${prefix}account-student/${setting.keys}/${setting.accounts}`,
        )) {
          if (used >= config.studentAnswerTokens) break;
          studentAnswers.push(answer);
          used += answer.length;
        }
        const samples = await studentSamples(
          studentAnswers,
          human,
          config,
          studentPrompts,
          `${prefix}accounts/${setting.keys}/${setting.accounts}`,
        );
        const scans = watermarkers.map((w) => scanCorpus(w, samples));
        const best = holmBest(scans);
        const subScans = scans.slice(1);
        const pooledLog10P =
          setting.keys === 'shared' || subScans.length < 2 || accountScheme.name === 'gumbel'
            ? null
            : log10BinomialSf(
                subScans.reduce((sum, scan) => sum + scan.numGreen, 0),
                subScans.reduce((sum, scan) => sum + scan.numScored, 0),
                watermarkers[1]!.scheme.threshold / 2 ** 32,
              );
        const studentPooledLog10P =
          pooledLog10P === null
            ? null
            : holmAdjustLog10([...scans.map((scan) => scan.log10P), pooledLog10P]).at(-1)!;
        const named = scans.filter(
          (s, i) =>
            (setting.keys === 'shared' || i > 0) && s.log10P + Math.log10(scans.length) <= Math.log10(FPR),
        ).length;
        accounts.push({
          scheme: schemeName,
          accounts: setting.accounts,
          keys: setting.keys,
          harvestTokens,
          spoofSuccess,
          scrubTpr,
          scrubReplacedShare,
          studentLog10P: best.log10P,
          studentKeysTested: scans.length,
          accountsNamed: named,
          studentPooledLog10P,
        });
        log(
          `stealing: ${schemeName}, ${setting.keys} keys, ${setting.accounts} accounts: spoof ${spoofSuccess.toFixed(2)}, scrub TPR ${scrubTpr.toFixed(2)}, student log10 p ${best.log10P.toFixed(1)} (${named} named)`,
        );
        if (isDefault && setting.keys === 'per-account' && setting.accounts === maxAccounts) {
          mixedAttribution = await mixedCorpusAttribution(
            (chosen, label) =>
              generate(
                chosen.map((a) => keys[a]!),
                chosen.length * config.mixedAnswersPerAccount * config.answerMaxTokens,
                label,
              ),
            keys.length,
            watermarkers,
            human,
            config,
          );
          for (const row of mixedAttribution)
            log(
              `stealing: mixed corpora of ${row.accountsInCorpus} accounts: ${row.exact}/${row.corpora} named exactly, recall ${row.recall.toFixed(2)}, ${row.falseNames} false names`,
            );
        }
      }
      if (isDefault) defaultGenerate = generate;
    }

    // Attribution and detection cost: the service key and costKeys sub-keys, one text per account.
    const service = defaultService!;
    const serviceWatermarker = createWatermarker(service);
    const accountKeys = defaultAccountKeys;
    const generate = defaultGenerate!;
    let t0 = performance.now();
    const costKeys = Array.from({ length: config.costKeys }, (_, i) =>
      deriveAccountKey(service, `acct_${i}`),
    );
    const derivationSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    // Watermarkers are built and dropped in chunks: 10,000 held at once take gigabytes.
    const chunks: WatermarkKey[][] = [];
    for (let i = 0; i < costKeys.length; i += COST_CHUNK) chunks.push(costKeys.slice(i, i + COST_CHUNK));
    const keyCount = costKeys.length + 1;
    const owners = Array.from(
      { length: config.costDocuments },
      (_, i) => seedFor(`stealing/owner/${i}`) % maxAccounts,
    );
    const ownerTexts = await Promise.all(
      owners.map(
        async (owner, i) =>
          (await generate([accountKeys[owner]!], config.answerMaxTokens, `owner/${i}`))[0]![0]!,
      ),
    );
    // Every key's exact p-value, chunk by chunk (watermarkers built inside the timing), then Holm
    // over all of them: the key with the smallest adjusted p at or below the FPR names the account.
    const log10Ps = ownerTexts.map(() => [] as number[]);
    t0 = performance.now();
    for (let i = 0; i < ownerTexts.length; i++) {
      log10Ps[i]!.push(
        detect(ownerTexts[i]!, serviceWatermarker, { fpr: FPR, includeStatus: false }).results[0]!.log10P,
      );
    }
    for (const chunk of chunks) {
      const watermarkers = chunk.map((key) => createWatermarker(key));
      for (let i = 0; i < ownerTexts.length; i++) {
        const detection = detect(ownerTexts[i]!, watermarkers, { fpr: FPR, includeStatus: false });
        for (const result of detection.results) log10Ps[i]!.push(result.log10P);
      }
    }
    const secondsPerDocument = (performance.now() - t0) / 1000 / Math.max(1, ownerTexts.length);
    let correct = 0;
    for (let i = 0; i < ownerTexts.length; i++) {
      const adjusted = holmAdjustLog10(log10Ps[i]!);
      let best = 0;
      for (let k = 1; k < adjusted.length; k++) if (adjusted[k]! < adjusted[best]!) best = k;
      // Index 0 is the service key; index k ≥ 1 is account k − 1.
      if (adjusted[best]! <= Math.log10(FPR) && best - 1 === owners[i]) correct++;
    }
    attribution = {
      keys: keyCount,
      documents: ownerTexts.length,
      correct,
      derivationSeconds,
      secondsPerDocument,
    };
    log(
      `stealing: attribution ${correct}/${ownerTexts.length} among ${keyCount} keys, ${secondsPerDocument.toFixed(2)} s per document`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const summary: StealingSummary = {
    experiment: 'stealing',
    quick: context.quick,
    config,
    run: {
      seconds: (performance.now() - startedAt) / 1000,
      workers: context.workers,
      loadAtStart,
      loadAtEnd: loadAverage(),
    },
    schemes,
    accounts,
    mixedAttribution,
    attribution,
  };
  await writeSummary(context.outDir, 'stealing', summary);
  await writeResult(context.outDir, 'stealing.md', renderStealing(summary, context, startedAt, loadAtStart));
  return summary;
}

const percent = (value: number) => `${(100 * value).toFixed(0)}%`;

export function renderStealing(
  summary: StealingSummary,
  context: ExperimentContext,
  startedAt: number,
  loadAtStart: number,
): string {
  const config = summary.config;
  const markdown = reportHeader(
    context,
    'Watermark stealing: spoofing, scrubbing, per-account keys',
    'every key, prompt and sampler seed derives from a text label (research/src/labels.ts, prefix `stealing/`)',
    startedAt,
    loadAtStart,
  );
  markdown.paragraph(
    `The attacker of Jovanović et al. 2024 (https://arxiv.org/abs/2402.19361) against the real gateway: one account harvests chat answers of up to ${config.answerMaxTokens} tokens; the estimate is the frequency ratio of each (context, token) pair in the harvest against the human train split (SelfHash: partial contexts), pairs seen at least ${config.minCount} times. Spoof: the unwatermarked embedded model with a bias of up to β = ${config.spoofStrength} toward estimated-green tokens, ${config.spoofTexts} texts of ${config.spoofLength} tokens after 32-token human prompts; success = the detector's verdict \`watermarked\` at FPR ${FPR} (exact test, dedup). All schemes γ = 0.25, δ = 2 (gumbel: no γ, δ).`,
  );
  markdown.heading(2, 'Spoofing against the harvest budget');
  const rows: (string | number)[][] = [];
  for (const scheme of summary.schemes) {
    for (const row of scheme.budgets) {
      rows.push([
        scheme.scheme,
        integer(row.tokens),
        integer(row.requests),
        percent(row.spoofSuccess),
        fixed(row.spoofMedianLog10P, 1),
        row.spoofTestPower === null ? '—' : percent(row.spoofTestPower),
        percent(row.spoofTestPowerAll),
      ]);
    }
  }
  markdown.table(
    [
      'scheme',
      'harvested tokens',
      'requests',
      'spoof success (watermarked at 1e-4)',
      'median log10 p of spoofs',
      'spoof test rejects (accepted spoofs, 1%)',
      'spoof test rejects (all spoofs, 1%)',
    ],
    rows,
  );
  markdown.heading(2, 'Harvest needed for 50% spoof success');
  markdown.table(
    ['scheme', 'harvested tokens', 'requests', 'largest budget tried'],
    summary.schemes.map((s) => [
      s.scheme,
      s.tokensFor50 === null ? `> ${integer(s.harvest.tokens)}` : integer(s.tokensFor50),
      s.requestsFor50 === null ? `> ${integer(s.harvest.requests)}` : integer(s.requestsFor50),
      integer(s.harvest.tokens),
    ]),
  );
  markdown.heading(2, 'Scrubbing with the largest estimate');
  markdown.paragraph(
    `${config.targets} held-out answers per scheme. "estimate": every token the estimate calls green (score ≥ ½) is resampled from the unwatermarked model, away from estimated-green tokens; "blind": as many positions chosen at random, resampled from the model. Student: a trigram model on ${integer(config.studentTokens)} tokens (the first ${integer(config.studentAnswerTokens)} harvested tokens, raw or scrubbed, the rest human text), ${config.studentSamples} samples of ${config.studentSampleLength} tokens scanned with one dedup tape.`,
  );
  markdown.table(
    [
      'scheme',
      'rewrite',
      'tokens replaced',
      'TPR at 1e-4',
      'median log10 p',
      'student log10 p (raw → scrubbed)',
    ],
    summary.schemes.flatMap((s) =>
      s.scrub.map((row) => [
        s.scheme,
        row.kind,
        percent(row.replacedShare),
        fixed(row.tpr, 2),
        fixed(row.medianLog10P, 1),
        row.kind === 'estimate'
          ? `${fixed(s.student.raw.log10P, 1)} → ${fixed(s.student.scrubbed.log10P, 1)} (ρ = ${fixed(s.student.rho, 2)})`
          : '',
      ]),
    ),
  );
  markdown.heading(2, 'The spoofing-artefact test (core spoofTest)');
  markdown.paragraph(
    'Fisher exact test of "marked tokens concentrate on common bigrams" (learnability: bigram counts of the human train split, for SelfHash unigram counts; common = above the median of the text). Level 1%. Rejection rates on genuine held-out answers and on human continuations (size), and on spoofs (power, in the budget table).',
  );
  markdown.table(
    ['scheme', 'genuine answers rejected', 'human text rejected', 'texts'],
    summary.schemes.map((s) => [
      s.scheme,
      percent(s.spoofTestGenuineRate),
      percent(s.spoofTestHumanRate),
      s.genuineTexts,
    ]),
  );
  markdown.heading(2, 'Per-account keys');
  markdown.paragraph(
    `Per scheme, the same total harvest (${integer(config.accountHarvestTokens)} tokens) from one shared key or from ${Math.min(...config.accounts)} accounts under their own sub-keys (core \`deriveAccountKey\`; LeftHash(1), the default, also over ${config.accounts.join(' and ')} accounts), generated in-process with the gateway's sampler. Detection tests the service key and every sub-key (Holm); the pooled column tests the sub-keys as one (their green counts summed over the keys, exact Bin(T, γ); \`tracemark scan --account-keys\`), one more test in the Holm family. Student: ${integer(config.studentAnswerTokens)} harvested tokens in ${integer(config.studentTokens)}.`,
  );
  markdown.table(
    [
      'scheme',
      'keys',
      'accounts',
      'spoof success',
      'scrub TPR (replaced)',
      'student log10 p (Holm)',
      'keys tested',
      'sub-keys significant',
      'student log10 p, sub-keys pooled (Holm with the pool)',
    ],
    summary.accounts.map((row) => [
      row.scheme,
      row.keys,
      row.accounts,
      percent(row.spoofSuccess),
      `${fixed(row.scrubTpr, 2)} (${percent(row.scrubReplacedShare)})`,
      fixed(row.studentLog10P, 1),
      row.studentKeysTested,
      row.keys === 'shared' ? '—' : row.accountsNamed,
      row.studentPooledLog10P === null ? '—' : fixed(row.studentPooledLog10P, 1),
    ]),
  );
  markdown.heading(2, 'Attribution by sub-key on mixed corpora');
  markdown.paragraph(
    `Under the ${Math.max(...config.accounts)}-account setting: each corpus holds ${config.mixedAnswersPerAccount} fresh answers of each of m random accounts among ${config.mixedHumanDocuments} human texts cut to ${config.answerMaxTokens} tokens, shuffled; it is scanned (one dedup tape, exact binomial tail) under the service key and every sub-key, Holm over them, and the accounts named are the sub-keys at or below ${FPR} after adjustment.`,
  );
  markdown.table(
    [
      'accounts in the corpus',
      'keys tested',
      'corpora',
      'named exactly',
      'accounts found',
      'false names',
      'median marked tokens per corpus',
    ],
    summary.mixedAttribution.map((row) => [
      row.accountsInCorpus,
      integer(row.keys),
      row.corpora,
      `${row.exact}/${row.corpora}`,
      percent(row.recall),
      row.falseNames,
      integer(row.medianAnswerTokens),
    ]),
  );
  const a = summary.attribution;
  markdown.heading(2, 'Attribution and detection cost');
  markdown.bullets([
    `${a.documents} answers of ${config.answerMaxTokens} tokens from random accounts among the first ${Math.max(...config.accounts)}, tested against ${integer(a.keys)} keys (the service key and ${integer(a.keys - 1)} account sub-keys, Holm): ${a.correct} of ${a.documents} named their account.`,
    `Deriving ${integer(a.keys - 1)} sub-keys: ${fixed(a.derivationSeconds, 2)} s; detection against all ${integer(a.keys)} keys, building their watermarkers ${COST_CHUNK} at a time included (holding 10,000 at once took over 10 GB in a first run): ${fixed(a.secondsPerDocument, 2)} s per document (one thread, under the load above).`,
  ]);
  return markdown.toString();
}
