/**
 * Experiment `foreign`: the watermarks serving engines embed natively, as tracemark reads them. For
 * each scheme of {@link FOREIGN_SCHEMES} (a sampler that reproduces the engine's generation, and the
 * key family's scorer from @tracemark/detection, the path `tracemark detect` takes): power at 50, 100
 * and 200 tokens at FPR 1e-3 on the embedded model's distributions; the false-positive rate on human
 * text under many keys, with and without deduplication; and beside tracemark's exact p-value the
 * engine's own detector (its deduplication rule and p-value formula): where its double underflows, and
 * what it flags on repetitive text with deduplication off.
 */
import { createHash } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createRandom, type RandomSource } from '@tracemark/core';
import {
  type ForeignDedup,
  type ForeignKeyBase,
  type ForeignKeyScorer,
  foreignKeyTypeForScheme,
} from '@tracemark/detection';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { createVllmSampler } from '../../../packages/core/src/foreign/vllm-sampling.ts';
import { passagesFrom, promptPairs, tokenizedDocuments, tokenizer } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { MAX_CANDIDATES } from '../generation.ts';
import { seedFor } from '../labels.ts';
import { saveChart } from '../plot.ts';
import {
  type ExperimentContext,
  fixed,
  integer,
  type Markdown,
  reportHeader,
  rounded,
  scientific,
  writeResult,
  writeSummary,
} from '../report.ts';
import { binomialQuantile, clopperPearson, mean, median } from '../statistics.ts';

// ---------------------------------------------------------------------------------------------
// The table of schemes
// ---------------------------------------------------------------------------------------------

/** One generation step: the completion so far, the model's candidates at temperature T, a random source. */
export type StepSampler = (
  completion: readonly number[],
  candidates: { readonly tokenIds: Uint32Array; readonly probabilities: Float64Array },
  random: RandomSource,
) => number;

/**
 * One watermark scheme an engine ships: how its key is made (through the family's `keygen` path),
 * how the engine samples with it, and how the engine's own detector reads it.
 */
export interface ForeignScheme {
  /** `${kind}:${scheme}` plus a variant, unique in the table. */
  readonly id: string;
  /** How people name the engine. */
  readonly engine: string;
  /** `tracemark keygen --scheme` name. */
  readonly schemeName: string;
  /** `tracemark keygen` flags (long name without dashes → text); the rest are the engine's defaults. */
  readonly flags: Readonly<Record<string, string>>;
  /** Flags of the key the engine's own detector is modelled with, where they differ (vLLM sbw lefthash). */
  readonly engineDetectorFlags?: Readonly<Record<string, string>>;
  /** The engine detector's deduplication rule. */
  readonly engineDedup: ForeignDedup;
  /** The engine's p-value, in words, for the report. */
  readonly engineFormula: string;
  /** The engine's key (the secret `keygen` reads) for a label. */
  secret(label: string): string;
  /** The engine's generation with this key; `topP` is applied where the engine applies it. */
  sampler(key: ForeignKeyBase, topP: number): StepSampler;
}

/** A 63-bit engine key from a label (vLLM's sbw takes keys below 2^63; the others below 2^64). */
function engineKeyFor(label: string): string {
  const digest = createHash('sha256').update(`tracemark-research/v1/engine-key/${label}`).digest();
  return (digest.readBigUInt64BE(0) >> 1n).toString();
}

function vllmScheme(
  scheme: 'gumbel' | 'dual_key_gumbel' | 'red_green' | 'sbw',
  variant: string,
  flags: Readonly<Record<string, string>>,
  engineFormula: string,
  engineDetectorFlags?: Readonly<Record<string, string>>,
): ForeignScheme {
  return {
    id: `vllm:${scheme}${variant}`,
    engine: 'vLLM',
    schemeName: `vllm:${scheme}`,
    flags,
    ...(engineDetectorFlags === undefined ? {} : { engineDetectorFlags }),
    engineDedup: 'context',
    engineFormula,
    secret: engineKeyFor,
    sampler(key: ForeignKeyBase, topP: number): StepSampler {
      const k = key as ForeignKeyBase & {
        engineKey: bigint;
        prf: string;
        contextWidth: number;
        alpha: number | null;
        gamma: number | null;
        delta: number | null;
        sbwScheme: 'selfhash' | 'lefthash' | null;
      };
      const sampler = createVllmSampler({
        scheme,
        engineKey: k.engineKey,
        contextWidth: k.contextWidth,
        ...(scheme === 'sbw' ? { sbwScheme: k.sbwScheme! } : { prf: k.prf as 'philox' }),
        ...(k.alpha === null ? {} : { alpha: k.alpha }),
        ...(k.gamma === null ? {} : { gamma: k.gamma }),
        ...(k.delta === null ? {} : { delta: k.delta }),
      });
      // vLLM's default generation-side context deduplication (`single_turn`).
      const options = { topP, deduplicateContexts: 'single_turn' } as const;
      return (completion, candidates, random) =>
        sampler.sample(
          completion,
          { tokenIds: candidates.tokenIds, probabilities: candidates.probabilities },
          random,
          options,
        ).token;
    },
  };
}

/**
 * Every scheme measured. To add a family: make its key with its `ForeignKeyType` (registered in
 * packages/detection/src/foreign-registry.ts), give the engine's sampler from packages/core, and the
 * engine detector's deduplication and formula; the experiment does the rest.
 */
export const FOREIGN_SCHEMES: readonly ForeignScheme[] = Object.freeze([
  vllmScheme('gumbel', '', {}, 'Gamma(n, 1) tail Q(n, S), returned through exp (0 below ~1e-308)'),
  vllmScheme(
    'dual_key_gumbel',
    '',
    {},
    'moment-matched Gamma tail Q(n/v, S/v), v = (1 − α)² + α²; anti-conservative for α ∉ {0, ½, 1}',
  ),
  vllmScheme('red_green', '', {}, 'binomial tail at γ from an lgamma sum, returned through exp'),
  vllmScheme('sbw', '', {}, 'one-sided z-test ½·erfc(z/√2): not exact, 0 below ~1e-308'),
  vllmScheme(
    'sbw',
    '-lefthash',
    { 'sbw-scheme': 'lefthash', 'sbw-lefthash-seeds': 'generator' },
    "z-test, seeded with the hashed ids, while vLLM's generator seeds with the raw ids (spec §6.4)",
    { 'sbw-scheme': 'lefthash', 'sbw-lefthash-seeds': 'detector' },
  ),
]);

interface SchemeKeys {
  readonly key: ForeignKeyBase;
  readonly scorer: ForeignKeyScorer;
  /** The key as the engine's own detector is modelled (the same key unless engineDetectorFlags). */
  readonly engineScorer: ForeignKeyScorer;
}

const ALPHA_POWER = 1e-3;

function keysFor(scheme: ForeignScheme, label: string): SchemeKeys {
  const type = foreignKeyTypeForScheme(scheme.schemeName);
  if (type === null) throw new Error(`no key family accepts ${scheme.schemeName}`);
  const secret = scheme.secret(label);
  const flags = { ...scheme.flags, tokenizer: tokenizer().id };
  const key = type.fromKeygen(scheme.schemeName, flags, secret);
  const scorer = type.createScorer(key, ALPHA_POWER);
  const engineScorer =
    scheme.engineDetectorFlags === undefined
      ? scorer
      : type.createScorer(
          type.fromKeygen(
            scheme.schemeName,
            { ...scheme.engineDetectorFlags, tokenizer: tokenizer().id },
            secret,
          ),
          ALPHA_POWER,
        );
  return { key, scorer, engineScorer };
}

function schemeById(id: string): ForeignScheme {
  const scheme = FOREIGN_SCHEMES.find((candidate) => candidate.id === id);
  if (scheme === undefined) throw new Error(`unknown foreign scheme ${id}`);
  return scheme;
}

// ---------------------------------------------------------------------------------------------
// Jobs (run inline or on worker threads; each result depends on its job alone)
// ---------------------------------------------------------------------------------------------

interface GenerateJob {
  readonly kind: 'generate';
  /** null: no watermark (the engine's ordinary sampler). */
  readonly schemeId: string | null;
  readonly keyLabel: string;
  readonly prompt: Uint32Array;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly seed: number;
}

interface ScoreJob {
  readonly kind: 'score';
  readonly schemeId: string;
  /** Text i is scored under key keyLabels[i]. */
  readonly keyLabels: readonly string[];
  readonly texts: readonly Uint32Array[];
}

type Job = GenerateJob | ScoreJob;

interface Generated {
  readonly tokens: Uint32Array;
  /** Mean Shannon entropy (bits) of the distribution sampled from (temperature and top-p applied). */
  readonly entropyBits: number;
}

/** Per text: tracemark's exact log10 p under each dedup, and the engine detector's formula. */
interface Scored {
  readonly strict: number;
  readonly context: number;
  readonly none: number;
  readonly numScoredStrict: number;
  /** The engine's formula under its own dedup rule, and with dedup off. */
  readonly engine: number;
  readonly engineNoDedup: number;
  readonly engineNumScored: number;
}

type JobResult = Generated | Scored[];

function softmaxAt(logits: Float32Array, temperature: number): Float64Array {
  const max = logits[0]!;
  const out = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += out[i] = Math.exp((logits[i]! - max) / temperature);
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

/** Entropy in bits of the top-p nucleus (vLLM's rule: drop the tail while its mass ≤ 1 − p). */
function nucleusEntropyBits(sortedProbabilities: Float64Array, topP: number): number {
  let tail = 0;
  let keep = sortedProbabilities.length;
  while (keep > 1 && tail + sortedProbabilities[keep - 1]! <= 1 - topP) tail += sortedProbabilities[--keep]!;
  let entropy = 0;
  for (let i = 0; i < keep; i++) {
    const p = sortedProbabilities[i]! / (1 - tail);
    if (p > 0) entropy -= p * Math.log2(p);
  }
  return entropy;
}

function runGenerate(model: NgramModel, job: GenerateJob): Generated {
  const scheme = job.schemeId === null ? null : schemeById(job.schemeId);
  const step = scheme === null ? null : scheme.sampler(keysFor(scheme, job.keyLabel).key, job.topP);
  const plain =
    scheme === null
      ? createVllmSampler({ scheme: 'gumbel', engineKey: 0n }) // only its ordinary (deduplicated) path is used
      : null;
  const random = createRandom(job.seed);
  const context = new Uint32Array(job.prompt.length + job.maxTokens);
  context.set(job.prompt);
  const completion: number[] = [];
  let entropy = 0;
  for (let t = 0; t < job.maxTokens; t++) {
    const candidates = model.candidates(context.subarray(0, job.prompt.length + t), MAX_CANDIDATES);
    const probabilities = softmaxAt(candidates.logits, job.temperature);
    entropy += nucleusEntropyBits(probabilities, job.topP);
    const tokenIds = Uint32Array.from(candidates.ids);
    const token =
      step !== null
        ? step(completion, { tokenIds, probabilities }, random)
        : plainSample(plain!, tokenIds, probabilities, random, job.topP);
    completion.push(token);
    context[job.prompt.length + t] = token;
  }
  return {
    tokens: Uint32Array.from(completion),
    entropyBits: job.maxTokens === 0 ? 0 : entropy / job.maxTokens,
  };
}

/** The engine's ordinary sampler (no watermark): a repeated-context step of any vLLM sampler is one. */
function plainSample(
  sampler: ReturnType<typeof createVllmSampler>,
  tokenIds: Uint32Array,
  probabilities: Float64Array,
  random: RandomSource,
  topP: number,
): number {
  // A history whose last context already occurred makes the sampler skip the watermark: [0, 0] at width 1.
  return sampler.sample([0, 0, 0, 0, 0], { tokenIds, probabilities }, random, {
    topP,
    deduplicateContexts: 'single_turn',
  }).token;
}

function runScore(job: ScoreJob): Scored[] {
  const scheme = schemeById(job.schemeId);
  // Gumbel and red-green PRFs see the whole context: strict equals context (spec §3); computed once.
  const strictIsContext = !scheme.schemeName.endsWith(':sbw');
  return job.texts.map((text, i) => {
    const { scorer, engineScorer } = keysFor(scheme, job.keyLabels[i]!);
    const strict = scorer.score(text, 'strict');
    const context = strictIsContext ? strict : scorer.score(text, 'context');
    const none = scorer.score(text, 'none');
    const engine =
      engineScorer === scorer && scheme.engineDedup === 'context'
        ? context
        : engineScorer.score(text, scheme.engineDedup);
    const engineNone = engineScorer === scorer ? none : engineScorer.score(text, 'none');
    return {
      strict: strict.log10P,
      context: context.log10P,
      none: none.log10P,
      numScoredStrict: strict.numScored,
      engine: engine.peerLog10P ?? Number.NaN,
      engineNoDedup: engineNone.peerLog10P ?? Number.NaN,
      engineNumScored: engine.numScored,
    };
  });
}

let workerModel: Promise<NgramModel> | null = null;

function runJob(model: NgramModel | null, job: Job): JobResult {
  if (job.kind === 'generate') return runGenerate(model!, job);
  return runScore(job);
}

async function runJobs(
  jobs: readonly Job[],
  workers: number,
  onProgress?: (done: number, total: number) => void,
): Promise<JobResult[]> {
  const results: JobResult[] = new Array(jobs.length);
  const needsModel = jobs.some((job) => job.kind === 'generate');
  if (workers <= 1 || jobs.length < 2) {
    const model = needsModel ? await loadDefaultModel({ tokenizerId: tokenizer().id }) : null;
    for (let i = 0; i < jobs.length; i++) {
      results[i] = runJob(model, jobs[i]!);
      onProgress?.(i + 1, jobs.length);
    }
    return results;
  }
  let next = 0;
  let done = 0;
  const pool = Array.from({ length: Math.min(workers, jobs.length) }, () => {
    const worker = new Worker(new URL('../worker-bootstrap.mjs', import.meta.url), {
      workerData: { entry: import.meta.url, role: 'foreign-worker' },
    });
    return new Promise<void>((resolve, reject) => {
      const feed = (): void => {
        if (next >= jobs.length) {
          void worker.terminate().then(() => resolve());
          return;
        }
        const index = next++;
        worker.postMessage({ index, job: jobs[index] });
      };
      worker.on('message', (message: { index: number; result: JobResult }) => {
        results[message.index] = message.result;
        onProgress?.(++done, jobs.length);
        feed();
      });
      worker.on('error', reject);
      worker.on('exit', (code) => {
        if (code !== 0 && next < jobs.length) reject(new Error(`foreign worker exited with code ${code}`));
      });
      feed();
    });
  });
  await Promise.all(pool);
  return results;
}

// This module is also the worker threads' entry (research/src/worker-bootstrap.mjs loads it).
if (!isMainThread && (workerData as { role?: string } | null)?.role === 'foreign-worker' && parentPort) {
  const port = parentPort;
  port.on('message', (message: { index: number; job: Job }) => {
    const job = message.job;
    const modelReady =
      job.kind === 'generate'
        ? (workerModel ??= loadDefaultModel({ tokenizerId: tokenizer().id }))
        : Promise.resolve(null);
    void modelReady.then((model) => {
      port.postMessage({ index: message.index, result: runJob(model, job) });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The experiment
// ---------------------------------------------------------------------------------------------

export const FPR_LEVELS: readonly number[] = [1e-2, 1e-3, 1e-4];
/** vLLM's detectors default to p_value_threshold = 0.01; its docs' repetitive-text figures are at that level. */
const ENGINE_THRESHOLD = 1e-2;
/** log10 of the smallest positive double: an engine formula below it is returned as p = 0. */
const LOG10_MIN_DOUBLE = Math.log10(Number.MIN_VALUE);
const TRIALS_PER_KEY = 32;
const PROMPT_TOKENS = 32;

interface Plan {
  readonly temperature: number;
  readonly topP: number;
  readonly lengths: readonly number[];
  readonly generations: number;
  readonly longGenerations: number;
  readonly longTokens: number;
  readonly passageTokens: number;
  readonly passageLimit: number;
  readonly repetitiveGenerations: number;
  readonly repetitiveTemperature: number;
  readonly keysPerRepetitiveText: number;
  readonly repeatedPassages: number;
}

function planFor(quick: boolean): Plan {
  if (quick) {
    return {
      temperature: 1,
      topP: 0.95,
      lengths: [25, 50],
      generations: 4,
      longGenerations: 1,
      longTokens: 80,
      passageTokens: 50,
      passageLimit: 64,
      repetitiveGenerations: 2,
      repetitiveTemperature: 0.1,
      keysPerRepetitiveText: 4,
      repeatedPassages: 8,
    };
  }
  return {
    temperature: 1,
    topP: 0.95,
    lengths: [50, 100, 200],
    generations: 200,
    longGenerations: 16,
    longTokens: 1000,
    passageTokens: 200,
    passageLimit: Number.POSITIVE_INFINITY,
    repetitiveGenerations: 100,
    repetitiveTemperature: 0.1,
    keysPerRepetitiveText: 16,
    repeatedPassages: 400,
  };
}

export interface ForeignLevel {
  readonly alpha: number;
  readonly count: number;
  readonly rate: number;
  readonly lower: number;
  readonly upper: number;
  /** Largest count accepted: max(1.5·α·n, the 97.5% quantile of Bin(n, α)), as experiment `fpr`. */
  readonly allowed: number;
  readonly pass: boolean;
}

export interface ForeignFprRow {
  /** `tracemark` (exact tail) or `engine` (the engine's formula). */
  readonly detector: 'tracemark' | 'engine';
  readonly dedup: ForeignDedup;
  readonly trials: number;
  readonly levels: readonly ForeignLevel[];
}

export interface ForeignPowerAtLength {
  readonly length: number;
  /** tracemark: exact p ≤ 1e-3, dedup strict (its default). */
  readonly tpr: number;
  /** The engine's detector: its formula ≤ 1e-3, its dedup rule. */
  readonly engineTpr: number;
  readonly meanScored: number;
  readonly medianLog10P: number;
  readonly engineMedianLog10P: number;
}

export interface ForeignSchemeResult {
  readonly id: string;
  readonly engine: string;
  readonly schemeName: string;
  readonly parameters: Record<string, string | number | boolean>;
  readonly engineDedup: ForeignDedup;
  readonly engineFormula: string;
  readonly generations: number;
  readonly meanEntropyBits: number;
  readonly power: readonly ForeignPowerAtLength[];
  readonly long: {
    readonly generations: number;
    readonly tokens: number;
    /** Share whose engine p-value, as a double, is 0. */
    readonly engineZeroShare: number;
    readonly medianLog10P: number;
    readonly minLog10P: number;
    readonly engineMedianLog10P: number;
  };
  readonly humanFpr: readonly ForeignFprRow[];
  readonly repetitiveFpr: readonly ForeignFprRow[];
  readonly repeatedPassageFpr: readonly ForeignFprRow[];
  /** Every tracemark row with dedup (strict, context) within the binomial bound on human text. */
  readonly dedupPasses: boolean;
}

export interface ForeignSummary {
  readonly experiment: 'foreign';
  readonly quick: boolean;
  readonly temperature: number;
  readonly topP: number;
  readonly maxCandidates: number;
  readonly passageTokens: number;
  readonly humanPassages: number;
  readonly repetitiveTexts: {
    readonly generated: number;
    readonly repeatedPassages: number;
    readonly repeatShare: number;
    readonly repeatedPassageShare: number;
  };
  readonly schemes: readonly ForeignSchemeResult[];
  readonly dedupPasses: boolean;
}

function levelsOf(log10P: readonly number[], levels: readonly number[]): ForeignLevel[] {
  const n = log10P.length;
  return levels.map((alpha) => {
    const threshold = Math.log10(alpha);
    const count = log10P.filter((value) => value <= threshold).length;
    const [lower, upper] = n === 0 ? [0, 1] : clopperPearson(count, n);
    const allowed = Math.max(Math.floor(1.5 * alpha * n), binomialQuantile(n, alpha, 0.975));
    return {
      alpha,
      count,
      rate: n === 0 ? Number.NaN : count / n,
      lower,
      upper,
      allowed,
      pass: count <= allowed,
    };
  });
}

function fprRows(scored: readonly Scored[], levels: readonly number[]): ForeignFprRow[] {
  const row = (detector: 'tracemark' | 'engine', dedup: ForeignDedup, values: number[]): ForeignFprRow => ({
    detector,
    dedup,
    trials: values.length,
    levels: levelsOf(values, levels),
  });
  return [
    row(
      'tracemark',
      'strict',
      scored.map((s) => s.strict),
    ),
    row(
      'tracemark',
      'context',
      scored.map((s) => s.context),
    ),
    row(
      'tracemark',
      'none',
      scored.map((s) => s.none),
    ),
    row(
      'engine',
      'context',
      scored.map((s) => s.engine),
    ),
    row(
      'engine',
      'none',
      scored.map((s) => s.engineNoDedup),
    ),
  ];
}

/** Share of positions whose width-4 context occurred earlier in the same text. */
function repeatShare(texts: readonly Uint32Array[], width = 4): number {
  let repeated = 0;
  let total = 0;
  for (const text of texts) {
    const seen = new Set<string>();
    for (let t = 0; t < text.length; t++) {
      const key = Array.from({ length: width }, (_, i) =>
        t - width + i >= 0 ? text[t - width + i] : -1,
      ).join(',');
      if (seen.has(key)) repeated++;
      seen.add(key);
      total++;
    }
  }
  return total === 0 ? 0 : repeated / total;
}

export async function runForeign(context: ExperimentContext): Promise<ForeignSummary> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const plan = planFor(context.quick);
  const maxLength = plan.lengths[plan.lengths.length - 1]!;
  const pairs = await promptPairs(PROMPT_TOKENS, maxLength);
  const documents = await tokenizedDocuments(context.quick ? 'test' : 'all');
  const passages = passagesFrom(documents, plan.passageTokens, plan.passageLimit);
  const shortPassages = passagesFrom(documents, Math.floor(plan.passageTokens / 4), plan.repeatedPassages);
  const repeatedPassages = shortPassages.map((passage) => {
    const text = new Uint32Array(passage.length * 4);
    for (let r = 0; r < 4; r++) text.set(passage, r * passage.length);
    return text;
  });

  // 1. Generations: power, long, and unwatermarked repetitive text.
  const generateJobs: GenerateJob[] = [];
  for (const scheme of FOREIGN_SCHEMES) {
    for (let i = 0; i < plan.generations; i++) {
      generateJobs.push({
        kind: 'generate',
        schemeId: scheme.id,
        keyLabel: `foreign/${scheme.id}/key/${i}`,
        prompt: pairs[i % pairs.length]!.prompt,
        maxTokens: maxLength,
        temperature: plan.temperature,
        topP: plan.topP,
        seed: seedFor(`foreign/sample/${i}`),
      });
    }
    for (let i = 0; i < plan.longGenerations; i++) {
      generateJobs.push({
        kind: 'generate',
        schemeId: scheme.id,
        keyLabel: `foreign/${scheme.id}/long-key/${i}`,
        prompt: pairs[i % pairs.length]!.prompt,
        maxTokens: plan.longTokens,
        temperature: plan.temperature,
        topP: plan.topP,
        seed: seedFor(`foreign/long-sample/${i}`),
      });
    }
  }
  for (let i = 0; i < plan.repetitiveGenerations; i++) {
    generateJobs.push({
      kind: 'generate',
      schemeId: null,
      keyLabel: '',
      prompt: pairs[i % pairs.length]!.prompt,
      maxTokens: maxLength,
      temperature: plan.repetitiveTemperature,
      topP: 1,
      seed: seedFor(`foreign/repetitive-sample/${i}`),
    });
  }
  context.log(`foreign: ${integer(generateJobs.length)} generations, ${FOREIGN_SCHEMES.length} schemes`);
  let reported = 0;
  const progress = (stage: string) => (done: number, total: number) => {
    if (done * 10 >= (reported + 1) * total) {
      reported = Math.floor((done * 10) / total);
      context.log(`foreign: ${stage} ${done}/${total}`);
    }
  };
  const generated = (await runJobs(generateJobs, context.workers, progress('generations'))) as Generated[];
  reported = 0;
  let offset = 0;
  const bySchemePower = new Map<string, Generated[]>();
  const bySchemeLong = new Map<string, Generated[]>();
  for (const scheme of FOREIGN_SCHEMES) {
    bySchemePower.set(scheme.id, generated.slice(offset, offset + plan.generations));
    offset += plan.generations;
    bySchemeLong.set(scheme.id, generated.slice(offset, offset + plan.longGenerations));
    offset += plan.longGenerations;
  }
  const repetitive = generated.slice(offset).map((g) => g.tokens);

  // 2. Scoring: positives (prefixes), long texts, human passages, repetitive texts, on workers.
  const scoreJobs: ScoreJob[] = [];
  const chunk = <T>(items: readonly T[], size: number): T[][] =>
    Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
  const layout: { schemeId: string; part: string; count: number }[] = [];
  const addScores = (schemeId: string, part: string, texts: Uint32Array[], keyLabels: string[]) => {
    layout.push({ schemeId, part, count: texts.length });
    chunk(
      texts.map((text, i) => ({ text, key: keyLabels[i]! })),
      64,
    ).forEach((items) => {
      scoreJobs.push({
        kind: 'score',
        schemeId,
        texts: items.map((item) => item.text),
        keyLabels: items.map((item) => item.key),
      });
    });
  };
  for (const scheme of FOREIGN_SCHEMES) {
    const power = bySchemePower.get(scheme.id)!;
    for (const length of plan.lengths) {
      addScores(
        scheme.id,
        `power/${length}`,
        power.map((g) => g.tokens.subarray(0, length).slice()),
        power.map((_, i) => `foreign/${scheme.id}/key/${i}`),
      );
    }
    const long = bySchemeLong.get(scheme.id)!;
    addScores(
      scheme.id,
      'long',
      long.map((g) => g.tokens),
      long.map((_, i) => `foreign/${scheme.id}/long-key/${i}`),
    );
    addScores(
      scheme.id,
      'human',
      passages,
      passages.map((_, t) => `foreign/fpr/${scheme.id}/key/${Math.floor(t / TRIALS_PER_KEY)}`),
    );
    const repetitiveTrials = repetitive.flatMap((text) =>
      Array.from({ length: plan.keysPerRepetitiveText }, () => text),
    );
    addScores(
      scheme.id,
      'repetitive',
      repetitiveTrials,
      repetitiveTrials.map((_, t) => `foreign/repetitive/${scheme.id}/key/${t}`),
    );
    const repeatedTrials = repeatedPassages.flatMap((text) => [text, text]);
    addScores(
      scheme.id,
      'repeated-passage',
      repeatedTrials,
      repeatedTrials.map((_, t) => `foreign/repeated/${scheme.id}/key/${t}`),
    );
  }
  context.log(`foreign: ${integer(scoreJobs.length)} scoring jobs`);
  const scoredChunks = (await runJobs(scoreJobs, context.workers, progress('scoring'))) as Scored[][];
  const scoredAll = scoredChunks.flat();
  const parts = new Map<string, Scored[]>();
  let at = 0;
  for (const entry of layout) {
    parts.set(`${entry.schemeId}|${entry.part}`, scoredAll.slice(at, at + entry.count));
    at += entry.count;
  }

  const schemes: ForeignSchemeResult[] = FOREIGN_SCHEMES.map((scheme) => {
    const part = (name: string) => parts.get(`${scheme.id}|${name}`)!;
    const { key } = keysFor(scheme, 'parameters');
    const type = foreignKeyTypeForScheme(scheme.schemeName)!;
    const power = plan.lengths.map((length): ForeignPowerAtLength => {
      const scored = part(`power/${length}`);
      return {
        length,
        tpr: scored.filter((s) => s.strict <= Math.log10(ALPHA_POWER)).length / scored.length,
        engineTpr: scored.filter((s) => s.engine <= Math.log10(ALPHA_POWER)).length / scored.length,
        meanScored: mean(scored.map((s) => s.numScoredStrict)),
        medianLog10P: median(scored.map((s) => s.strict)),
        engineMedianLog10P: median(scored.map((s) => s.engine)),
      };
    });
    const long = part('long');
    const humanFpr = fprRows(part('human'), FPR_LEVELS);
    const dedupPasses = humanFpr
      .filter((row) => row.detector === 'tracemark' && row.dedup !== 'none')
      .every((row) => row.levels.every((level) => level.pass));
    return {
      id: scheme.id,
      engine: scheme.engine,
      schemeName: scheme.schemeName,
      parameters: type.parameters(key),
      engineDedup: scheme.engineDedup,
      engineFormula: scheme.engineFormula,
      generations: plan.generations,
      meanEntropyBits: mean(bySchemePower.get(scheme.id)!.map((g) => g.entropyBits)),
      power,
      long: {
        generations: long.length,
        tokens: plan.longTokens,
        engineZeroShare:
          long.length === 0
            ? Number.NaN
            : long.filter((s) => s.engine < LOG10_MIN_DOUBLE).length / long.length,
        medianLog10P: median(long.map((s) => s.strict)),
        minLog10P: Math.min(...long.map((s) => s.strict)),
        engineMedianLog10P: median(long.map((s) => s.engine)),
      },
      humanFpr,
      repetitiveFpr: fprRows(part('repetitive'), [ENGINE_THRESHOLD, 1e-3]),
      repeatedPassageFpr: fprRows(part('repeated-passage'), [ENGINE_THRESHOLD, 1e-3]),
      dedupPasses,
    };
  });

  const summary: ForeignSummary = {
    experiment: 'foreign',
    quick: context.quick,
    temperature: plan.temperature,
    topP: plan.topP,
    maxCandidates: MAX_CANDIDATES,
    passageTokens: plan.passageTokens,
    humanPassages: passages.length,
    repetitiveTexts: {
      generated: repetitive.length,
      repeatedPassages: repeatedPassages.length,
      repeatShare: repeatShare(repetitive),
      repeatedPassageShare: repeatShare(repeatedPassages),
    },
    schemes,
    dedupPasses: schemes.every((s) => s.dedupPasses),
  };
  const charts = await foreignCharts(context, summary);
  const report = reportHeader(
    context,
    'Experiment: the engines’ own watermarks, read by tracemark',
    'generation i of scheme S: engine key from SHA-256("tracemark-research/v1/engine-key/foreign/S/key/<i>") (top 63 bits), sampler seed from "foreign/sample/<i>", prompt i of the shuffled prompt list ("prompt-pairs/32/<length>"); human passage t under key "foreign/fpr/S/key/<⌊t/32⌋>"; repetitive texts: seeds "foreign/repetitive-sample/<i>", keys "foreign/repetitive/S/key/<t>" and "foreign/repeated/S/key/<t>"',
    started,
    loadAtStart,
  );
  writeForeignReport(report, summary, plan, charts);
  await writeResult(context.outDir, 'foreign.md', report.toString());
  await writeSummary(context.outDir, 'foreign', rounded(summary));
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const log10Text = (value: number) =>
  Number.isFinite(value) ? (value > -0.005 ? '0' : fixed(value, 1)) : '—';

function fprTable(report: Markdown, rows: readonly ForeignFprRow[], withCheck: boolean): void {
  const body: string[][] = [];
  for (const row of rows) {
    for (const level of row.levels) {
      body.push([
        row.detector === 'tracemark' ? 'tracemark (exact)' : 'engine formula',
        row.dedup,
        scientific(level.alpha, 1),
        `${integer(level.count)} / ${integer(row.trials)}`,
        scientific(level.rate),
        `${scientific(level.lower)} – ${scientific(level.upper)}`,
        ...(withCheck ? [integer(level.allowed), level.pass ? '✓' : '✗'] : []),
      ]);
    }
  }
  report.table(
    [
      'detector',
      'dedup',
      'α',
      'false positives',
      'FPR',
      '95% interval',
      ...(withCheck ? ['allowed', 'check'] : []),
    ],
    body,
  );
}

function writeForeignReport(
  report: Markdown,
  summary: ForeignSummary,
  plan: Plan,
  charts: readonly string[],
): void {
  const lengths = plan.lengths;
  report.paragraph(
    `**Result: with dedup, tracemark's exact p-values ${summary.dedupPasses ? 'stay within the binomial bound at every level for every scheme' : 'do NOT stay within the bound for every scheme'}** (${integer(summary.humanPassages)} human passages of ${summary.passageTokens} tokens per scheme, each under one of ${integer(Math.ceil(summary.humanPassages / TRIALS_PER_KEY))} keys). Power and the engines' own detectors per scheme below.`,
  );
  report
    .heading(2, 'Setup')
    .bullets([
      `Generator: the embedded model (\`loadDefaultModel()\`), its ${summary.maxCandidates} most probable next tokens after a ${PROMPT_TOKENS}-token human prompt (test split), temperature ${summary.temperature}, top-p ${summary.topP} applied where the engine applies it, then the engine's watermarked sampler: \`packages/core/src/foreign/vllm-sampling.ts\`, which replays all 30 generations recorded from vLLM's own code in \`packages/core/test/vectors/foreign/vllm.json\` token for token (\`vllm-sampling.test.ts\`).`,
      "The engine's context at step t is the completion's previous w tokens, −1 before its start (as vLLM's detector pads and as the vectors' harness fed vLLM's watermarkers); vLLM's generation-side context deduplication is on at its default (`single_turn`): a step whose context occurred earlier in the completion is sampled without the mark.",
      `Keys: each generation and each block of ${TRIALS_PER_KEY} human passages has its own engine key, made through the family's \`keygen\` path (\`ForeignKeyType.fromKeygen\`) and scored through its \`createScorer\`: the numbers are those of \`tracemark detect\`.`,
      "tracemark: the exact log10 p (spec foreign-vllm §6) with its default dedup (`strict`); `context` is vLLM's rule. Engine: the engine's own p-value formula (in log space, so its underflow is visible) with the engine detector's dedup rule; where the double it returns would be 0, it is counted as 0.",
      `Power: share of generations with p ≤ ${scientific(ALPHA_POWER, 1)}, at ${lengths.join(', ')} tokens (prefixes of one generation); ${plan.generations} generations per scheme. Long: ${plan.longGenerations} generations of ${plan.longTokens} tokens per scheme.`,
      `Human text: non-overlapping ${summary.passageTokens}-token passages of ${summary.quick ? 'the test split' : 'all'} of Brown and nlp-corpus (cl100k_base). A level passes when the false positives are at most max(1.5·α·n, the 97.5% quantile of Bin(n, α)), as in experiment \`fpr\`.`,
      `Repetitive text: (a) ${summary.repetitiveTexts.generated} unwatermarked generations of ${maxLengthOf(plan)} tokens at temperature ${plan.repetitiveTemperature} (the n-gram model loops: ${fixed(summary.repetitiveTexts.repeatShare * 100, 1)}% of positions repeat an earlier 4-token context), each under ${plan.keysPerRepetitiveText} keys; (b) ${summary.repetitiveTexts.repeatedPassages} human passages of ${Math.floor(summary.passageTokens / 4)} tokens repeated 4 times (${fixed(summary.repetitiveTexts.repeatedPassageShare * 100, 1)}% repeated contexts), each under 2 keys. vLLM's docs report 15–44% false positives on repetitive text with context dedup off (field notes §8); vLLM's detectors default to α = 0.01.`,
    ]);
  report.heading(2, 'Schemes');
  report.table(
    ['scheme', 'parameters (engine defaults unless given)', "engine's dedup", "engine's p-value"],
    summary.schemes.map((s) => [
      `\`${s.id}\``,
      Object.entries(s.parameters)
        .filter(([name]) => name !== 'tokenizer')
        .map(([name, value]) => `${name} ${value}`)
        .join(', '),
      s.engineDedup,
      s.engineFormula,
    ]),
  );
  report.heading(2, `Power at FPR ${scientific(ALPHA_POWER, 1)}`);
  report.paragraph(
    'TPR: tracemark (exact p, dedup strict) and the engine detector (its formula and dedup). Median log10 p of the generations beside. The entropy is that of the distribution sampled from (temperature and top-p applied), mean over steps.',
  );
  const powerRows: string[][] = [];
  for (const s of summary.schemes) {
    for (const at of s.power) {
      powerRows.push([
        `\`${s.id}\``,
        fixed(s.meanEntropyBits, 2),
        String(at.length),
        fixed(at.meanScored, 1),
        fixed(at.tpr, 3),
        fixed(at.engineTpr, 3),
        log10Text(at.medianLog10P),
        log10Text(at.engineMedianLog10P),
      ]);
    }
  }
  report.table(
    [
      'scheme',
      'entropy (bits)',
      'tokens',
      'scored (mean)',
      'TPR tracemark',
      'TPR engine',
      'median log10 p',
      'engine median',
    ],
    powerRows,
  );
  if (charts.length > 0) report.image('TPR against length', charts[1]!);
  report.heading(2, 'Long texts: where the engine reports p = 0');
  report.table(
    [
      'scheme',
      'generations × tokens',
      'engine p = 0 (as a double)',
      'tracemark median log10 p',
      'tracemark min',
      'engine median log10 p (log space)',
    ],
    summary.schemes.map((s) => [
      `\`${s.id}\``,
      `${s.long.generations} × ${s.long.tokens}`,
      fixed(s.long.engineZeroShare, 2),
      log10Text(s.long.medianLog10P),
      log10Text(s.long.minLog10P),
      log10Text(s.long.engineMedianLog10P),
    ]),
  );
  report.heading(2, 'False positives on human text');
  for (const s of summary.schemes) {
    report.heading(3, `\`${s.id}\``);
    fprTable(report, s.humanFpr, true);
  }
  report.heading(2, 'Repetitive text, dedup on and off');
  report.paragraph(
    `FPR at α = ${ENGINE_THRESHOLD} (vLLM's default threshold) and 1e-3. For gumbel, dual_key_gumbel and red_green, strict equals context (the PRF input is the whole context).`,
  );
  const repetitiveRows: string[][] = [];
  for (const s of summary.schemes) {
    for (const [text, rows] of [
      [`generated, T = ${plan.repetitiveTemperature}`, s.repetitiveFpr],
      ['passage × 4', s.repeatedPassageFpr],
    ] as const) {
      for (const row of rows) {
        repetitiveRows.push([
          `\`${s.id}\``,
          text,
          row.detector === 'tracemark' ? 'tracemark (exact)' : 'engine formula',
          row.dedup,
          integer(row.trials),
          ...row.levels.map((level) => `${fixed(level.rate * 100, 1)}%`),
        ]);
      }
    }
  }
  report.table(
    ['scheme', 'text', 'detector', 'dedup', 'trials', `FPR @ ${ENGINE_THRESHOLD}`, 'FPR @ 1e-3'],
    repetitiveRows,
  );
  report.heading(2, 'Adding a scheme');
  report.paragraph(
    "Each scheme is one entry of `FOREIGN_SCHEMES` in research/src/experiments/foreign.ts: the `keygen` scheme name and flags (the family must be registered in packages/detection/src/foreign-registry.ts), a function that returns the engine's sampler for a key (from packages/core), the engine detector's dedup rule and a line describing its p-value. Generation, scoring, tables and the plot follow.",
  );
}

function maxLengthOf(plan: Plan): number {
  return plan.lengths[plan.lengths.length - 1]!;
}

async function foreignCharts(context: ExperimentContext, summary: ForeignSummary): Promise<string[]> {
  const values = summary.schemes.flatMap((s) =>
    s.power.flatMap((at) => [
      { length: at.length, tpr: at.tpr, scheme: s.id, detector: 'tracemark (exact)' },
      { length: at.length, tpr: at.engineTpr, scheme: s.id, detector: 'engine formula' },
    ]),
  );
  return saveChart(context.outDir, 'foreign-power', {
    data: { values },
    title: `TPR at FPR ${scientific(ALPHA_POWER, 1)} against length`,
    width: 420,
    height: 260,
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'length',
        type: 'quantitative',
        scale: { type: 'log', base: 2 },
        title: 'generated tokens',
      },
      y: { field: 'tpr', type: 'quantitative', scale: { domain: [0, 1] }, title: 'TPR' },
      color: { field: 'scheme', type: 'nominal', title: 'scheme' },
      strokeDash: { field: 'detector', type: 'nominal', title: 'detector' },
    },
  });
}
