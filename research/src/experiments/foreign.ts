/**
 * Experiment `foreign`: the watermarks serving engines embed natively, as tracemark reads them. For
 * each scheme of {@link FOREIGN_SCHEMES} (a sampler that reproduces the engine's generation, and the
 * key family's scorer from @tracemark/detection, the path `tracemark detect` takes): power at 50, 100
 * and 200 tokens at FPR 1e-3 on the embedded model's distributions; the false-positive rate on human
 * text under many keys, with and without deduplication; and beside tracemark's exact p-value the
 * engine's own detector (its deduplication rule and p-value formula): where its double underflows, and
 * what it flags on repetitive text with deduplication off. tracemark's own distortion-free schemes
 * ({@link TRACEMARK_SCHEMES}) are measured the same way, as a reference.
 */
import { createHash } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  createRandom,
  createSynthidDetector,
  createSynthidGenerator,
  createTransformersKgwDetector,
  createVllmSampler,
  detect,
  type RandomSource,
  type SglangKey,
  sglangContextHash,
  sglangGumbelSample,
  synthidAccumulateHash,
  synthidGValues,
  type Watermarker,
} from '@tracemark/core';
import {
  type ForeignDedup,
  type ForeignKeyBase,
  type ForeignKeyScore,
  type ForeignKeyScorer,
  foreignKeyTypeForScheme,
  type SglangWatermarkKey,
  type SynthidWatermarkKey,
  synthidDetectorParams,
  type TransformersWatermarkKey,
  transformersDetectorParams,
} from '@tracemark/detection';
import { loadDefaultModel, type NgramModel } from '@tracemark/lm';
import { passagesFrom, promptPairs, tokenizedDocuments, tokenizer } from '../corpus.ts';
import { loadAverage } from '../environment.ts';
import { generateOne, MAX_CANDIDATES } from '../generation.ts';
import { secretFor, seedFor } from '../labels.ts';
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
import { GUMBEL_DEFAULT, type GumbelConfig, watermarkerFor } from '../schemes.ts';
import { binomialQuantile, clopperPearson, mean, median } from '../statistics.ts';

// ---------------------------------------------------------------------------------------------
// The table of schemes
// ---------------------------------------------------------------------------------------------

/**
 * One generation step: the prompt, the completion so far, the model's candidates at temperature T
 * (sorted by probability), a random source. vLLM's and SynthID's context is the completion alone;
 * engines whose context reaches into the prompt (transformers KGW, SGLang) read `prompt` too.
 */
export type StepSampler = (
  prompt: Uint32Array,
  completion: readonly number[],
  candidates: { readonly tokenIds: Uint32Array; readonly probabilities: Float64Array },
  random: RandomSource,
) => number;

/** What the engine's own detector says about one text. */
export interface EngineReading {
  /** Its p-value formula in log10, evaluated in log space; NaN where the engine has no p-value. */
  readonly log10P: number;
  /** Whether the p-value the engine returns (a double) is 0. */
  readonly zero: boolean;
  /** Its score where it reports no p-value (SynthID's mean g-value); NaN otherwise. */
  readonly score: number;
}

/** Fewer runs for a scheme whose steps or scores cost far more than vLLM's (full run only). */
export interface SchemeBudget {
  readonly generations: number;
  readonly longGenerations: number;
  /** Every k-th human passage (and 1/k of the repetitive trials). */
  readonly humanStride: number;
}

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
  /** tracemark's dedup rules measured (all three unless a rule costs more than it tells). */
  readonly dedups?: readonly ForeignDedup[];
  readonly budget?: SchemeBudget;
  /** The engine's key (the secret `keygen` reads) for a label. */
  secret(label: string): string;
  /**
   * The engine's generation with this key; `topP` is applied where the engine applies it. A sampler
   * that takes a shortcut replays its first `checkSteps` steps on the engine's reference path and
   * throws on a difference.
   */
  sampler(key: ForeignKeyBase, topP: number, checkSteps: number): StepSampler;
  /**
   * The engine's detector on a text under `dedup` (its own rule or `none`), from the key's scores
   * under a rule; default: the scorer's `peerLog10P`, 0 as a double below the smallest double.
   */
  engineRead?(
    key: ForeignKeyBase,
    scoreUnder: (dedup: ForeignDedup) => ForeignKeyScore,
    text: Uint32Array,
    dedup: ForeignDedup,
  ): EngineReading;
}

/** tracemark's own scheme, generated as the CLI does (research/src/generation.ts) and read by core `detect`. */
export interface TracemarkScheme {
  readonly id: string;
  readonly engine: 'tracemark';
  readonly config: GumbelConfig;
}

export type MeasuredScheme = ForeignScheme | TracemarkScheme;

function isTracemarkScheme(scheme: MeasuredScheme): scheme is TracemarkScheme {
  return 'config' in scheme;
}

const DIGEST_DOMAIN = 'tracemark-research/v1/engine-key/';

function digestOf(label: string): Buffer {
  return createHash('sha256').update(`${DIGEST_DOMAIN}${label}`).digest();
}

/** A 63-bit engine key from a label (vLLM's sbw takes keys below 2^63; the others below 2^64). */
function engineKeyFor(label: string): string {
  return (digestOf(label).readBigUInt64BE(0) >> 1n).toString();
}

/** SGLang's key text: 16 hex digits from a label. */
function sglangKeyTextFor(label: string): string {
  return digestOf(label).subarray(0, 8).toString('hex');
}

/** log10 of the smallest positive double: an engine formula below it is returned as p = 0. */
const LOG10_MIN_DOUBLE = Math.log10(Number.MIN_VALUE);

/**
 * How many of the candidates (sorted by probability) top-p keeps. `tail`: drop the tail while its
 * mass is at most 1 − p (vLLM; transformers' TopPLogitsWarper); `prefix`: keep a token while the
 * mass before it is at most p (SGLang's `_truncate_probabilities`).
 */
function nucleusSize(sorted: Float64Array, topP: number, rule: 'tail' | 'prefix'): number {
  if (topP >= 1) return sorted.length;
  if (rule === 'prefix') {
    let before = 0;
    let keep = 0;
    while (keep < sorted.length && before <= topP) before += sorted[keep++]!;
    return Math.max(1, keep);
  }
  let tail = 0;
  let keep = sorted.length;
  while (keep > 1 && tail + sorted[keep - 1]! <= 1 - topP) tail += sorted[--keep]!;
  return keep;
}

/** Draws index i of `weights` (not necessarily normalized) with probability weights[i] / Σ. */
function drawIndex(weights: Float64Array, count: number, random: RandomSource): number {
  let total = 0;
  for (let i = 0; i < count; i++) total += weights[i]!;
  const u = random.nextFloat() * total;
  let cumulative = 0;
  for (let i = 0; i < count; i++) {
    cumulative += weights[i]!;
    if (u < cumulative) return i;
  }
  return count - 1;
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
      return (_prompt, completion, candidates, random) =>
        sampler.sample(
          completion,
          { tokenIds: candidates.tokenIds, probabilities: candidates.probabilities },
          random,
          options,
        ).token;
    },
  };
}

/** What transformers' KGW detector scores: every n-gram (spec foreign-transformers §6). */
const TRANSFORMERS_BUDGETS: Readonly<Record<'lefthash' | 'selfhash', SchemeBudget>> = Object.freeze({
  // One green list is a 25,069-step torch randperm (about 0.3 ms): ~100× a vLLM score per token.
  lefthash: { generations: 100, longGenerations: 4, humanStride: 8 },
  // selfhash also tries 40 candidates per generated token.
  selfhash: { generations: 50, longGenerations: 2, humanStride: 16 },
});

function transformersScheme(
  seeding: 'lefthash' | 'selfhash',
  flags: Readonly<Record<string, string>>,
): ForeignScheme {
  return {
    id: `transformers:kgw-${seeding}`,
    engine: 'transformers',
    schemeName: 'transformers:kgw',
    flags,
    engineDedup: 'none',
    engineFormula:
      '½·e^(−2z²/π) from the z-score at γ (an approximation of the normal tail), in double: 0 from z ≈ 7.66; `ignore_repeated_ngrams` changes nothing (spec §6)',
    // `context` is what transformers' flag is documented to do; it costs a third more and tells little here.
    dedups: ['strict', 'none'],
    budget: TRANSFORMERS_BUDGETS[seeding],
    secret: engineKeyFor,
    sampler(key: ForeignKeyBase, topP: number): StepSampler {
      const params = transformersDetectorParams(key as TransformersWatermarkKey);
      const detector = createTransformersKgwDetector(params);
      // Dense logits (−∞ outside the kept candidates), reset after each step.
      const logits = new Float64Array(params.vocabSize).fill(Number.NEGATIVE_INFINITY);
      const weights = new Float64Array(MAX_CANDIDATES);
      return (prompt, completion, candidates, random) => {
        const { tokenIds, probabilities } = candidates;
        // transformers appends the watermark after temperature, top-k and top-p (generation/utils.py,
        // "Watermarking should be after all logits processing is finished", #34630): bias the nucleus.
        const keep = nucleusSize(probabilities, topP, 'tail');
        for (let i = 0; i < keep; i++) logits[tokenIds[i]!] = Math.log(probabilities[i]!);
        const biased = detector.bias([...prompt, ...completion], logits);
        let max = Number.NEGATIVE_INFINITY;
        for (let i = 0; i < keep; i++) max = Math.max(max, biased[tokenIds[i]!]!);
        for (let i = 0; i < keep; i++) {
          weights[i] = Math.exp(biased[tokenIds[i]!]! - max);
          logits[tokenIds[i]!] = Number.NEGATIVE_INFINITY;
        }
        return tokenIds[drawIndex(weights, keep, random)]!;
      };
    },
    engineRead(key, scoreUnder, _text, dedup) {
      // transformers scores every n-gram whatever its flag says: its detector reads `none`.
      const score = scoreUnder(dedup);
      const gamma = (key as TransformersWatermarkKey).gamma;
      const n = score.numScored;
      const k = score.numGreen ?? 0;
      if (n === 0) return { log10P: 0, zero: false, score: Number.NaN };
      const z = (k - gamma * n) / Math.sqrt(n * gamma * (1 - gamma));
      const exponent = (-2 * z * z) / Math.PI;
      const log10P =
        z > 0
          ? (exponent - Math.LN2) / Math.LN10
          : z === 0
            ? -Math.LN2 / Math.LN10
            : Math.log1p(-0.5 * Math.exp(exponent)) / Math.LN10;
      return {
        log10P: Math.min(0, log10P),
        zero: score.peerLog10P === Number.NEGATIVE_INFINITY,
        score: Number.NaN,
      };
    },
  };
}

/** SynthID's key list: `depth` signed 64-bit keys from a label. */
const SYNTHID_DEPTH = 30;

function synthidSecretFor(label: string): string {
  return Array.from({ length: SYNTHID_DEPTH }, (_, l) =>
    BigInt.asIntN(64, digestOf(`${label}/${l}`).readBigUInt64BE(0)).toString(),
  ).join(',');
}

/**
 * transformers' SynthID processor on the kept candidates: the tournament p ← p·(1 + g_l − Σ g_l·p)
 * per layer (spec foreign-synthid §5) with g-values from core `synthidGValues` for the candidates
 * alone, where `createSynthidGenerator` computes them for all 100,277 ids (76 ms a step; a token
 * outside the nucleus has p = 0 and stays 0, so the distribution is the same). State as the
 * processor's: the context starts as ngramLen − 1 zeros, a context hash among the last
 * `contextHistorySize` (zeros at first) is not marked.
 */
function synthidScheme(): ForeignScheme {
  return {
    id: 'synthid:tournament',
    engine: 'SynthID-Text',
    schemeName: 'synthid:tournament',
    flags: { 'ngram-len': '5' },
    engineDedup: 'context',
    engineFormula:
      "no p-value: a mean g-value score (and a Bayesian detector trained per key); the report gives the mean score under transformers' repetition mask",
    secret: synthidSecretFor,
    sampler(key: ForeignKeyBase, topP: number, checkSteps: number): StepSampler {
      const params = synthidDetectorParams(key as SynthidWatermarkKey);
      const width = params.ngramLen - 1;
      const historySize = params.contextHistorySize ?? 1024;
      const context = new Array<number>(width).fill(0);
      const history: string[] = [];
      const counts = new Map<string, number>();
      const reference = checkSteps > 0 ? createSynthidGenerator(params) : null;
      const vocabSize = tokenizer().vocabSize;
      let step = 0;
      const weights = new Float64Array(MAX_CANDIDATES);
      return (_prompt, _completion, candidates, random) => {
        const { tokenIds, probabilities } = candidates;
        const keep = nucleusSize(probabilities, topP, 'tail');
        let total = 0;
        for (let i = 0; i < keep; i++) total += probabilities[i]!;
        for (let i = 0; i < keep; i++) weights[i] = probabilities[i]! / total;
        const hash = synthidAccumulateHash(1n, context).toString();
        const repeated = (counts.get(hash) ?? 0) > 0 || (history.length < historySize && hash === '0');
        history.push(hash);
        counts.set(hash, (counts.get(hash) ?? 0) + 1);
        if (history.length > historySize) {
          const dropped = history.shift()!;
          counts.set(dropped, counts.get(dropped)! - 1);
        }
        if (!repeated) {
          const g = synthidGValues(params, context, tokenIds.subarray(0, keep));
          const depth = g.length / keep;
          for (let l = 0; l < depth; l++) {
            let mass = 0;
            for (let i = 0; i < keep; i++) if (g[i * depth + l]) mass += weights[i]!;
            for (let i = 0; i < keep; i++) weights[i] = weights[i]! * (1 + g[i * depth + l]! - mass);
          }
        }
        if (reference !== null && step < checkSteps) {
          const dense = new Float64Array(vocabSize);
          for (let i = 0; i < keep; i++) dense[tokenIds[i]!] = probabilities[i]!;
          const expected = reference.step(dense).distribution;
          for (let i = 0; i < keep; i++) {
            if (Math.abs(expected[tokenIds[i]!]! - weights[i]!) > 1e-12) {
              throw new Error(
                `synthid: the candidate tournament differs from createSynthidGenerator at step ${step}`,
              );
            }
          }
        }
        const token = tokenIds[drawIndex(weights, keep, random)]!;
        if (reference !== null && step < checkSteps) reference.accept(token);
        step++;
        context.shift();
        context.push(token);
        return token;
      };
    },
    engineRead(key, _scoreUnder, text, dedup) {
      const detection = createSynthidDetector(synthidDetectorParams(key as SynthidWatermarkKey)).detect(
        text,
        {
          dedup,
        },
      );
      return { log10P: Number.NaN, zero: false, score: detection.meanScore ?? Number.NaN };
    },
  };
}

/** The core's parameters for an SGLang key (detection's `sglangDetectorParams`, not exported by its index). */
function sglangParams(key: SglangWatermarkKey): SglangKey {
  return {
    scheme: key.scheme,
    engineKey: key.engineKey,
    ...(key.keyB === null ? {} : { keyB: key.keyB, mixingProbability: key.mixingProbability! }),
    contextWindow: key.contextWindow,
    maxContexts: key.maxContexts,
  };
}

function sglangScheme(scheme: 'gumbel' | 'dual_key_gumbel'): ForeignScheme {
  return {
    id: `sglang:${scheme}`,
    engine: 'SGLang',
    schemeName: `sglang:${scheme}`,
    flags: {},
    engineDedup: 'context',
    engineFormula:
      'Gamma(n, 1) tail Q(n, S): `p_value` through exp (0 below ~1e-308), and `log_p_value` summed stably (finite)',
    secret:
      scheme === 'gumbel'
        ? sglangKeyTextFor
        : (label) => JSON.stringify({ key: sglangKeyTextFor(label), key_b: sglangKeyTextFor(`${label}/b`) }),
    sampler(key: ForeignKeyBase, topP: number): StepSampler {
      const k = key as SglangWatermarkKey;
      const params = sglangParams(k);
      // SGLang forces a position only if its 32-bit context hash was not forced before in the request.
      const forced = new Set<number>();
      const dense = new Float64Array(tokenizer().vocabSize);
      const weights = new Float64Array(MAX_CANDIDATES);
      return (prompt, completion, candidates, random) => {
        const { tokenIds, probabilities } = candidates;
        const keep = nucleusSize(probabilities, topP, 'prefix');
        for (let i = 0; i < keep; i++) weights[i] = probabilities[i]!;
        const history = [...prompt, ...completion];
        const contextHash = sglangContextHash(history.slice(-k.contextWindow));
        if (forced.has(contextHash) || forced.size >= k.maxContexts) {
          return tokenIds[drawIndex(weights, keep, random)]!;
        }
        forced.add(contextHash);
        let total = 0;
        let maxId = 0;
        for (let i = 0; i < keep; i++) total += probabilities[i]!;
        for (let i = 0; i < keep; i++) {
          dense[tokenIds[i]!] = probabilities[i]! / total;
          maxId = Math.max(maxId, tokenIds[i]!);
        }
        // Ids above the largest kept one have p = 0: the shorter vector gives the same argmax.
        const token = sglangGumbelSample(params, history, dense.subarray(0, maxId + 1));
        for (let i = 0; i < keep; i++) dense[tokenIds[i]!] = 0;
        return token;
      };
    },
  };
}

/**
 * Every engine scheme measured. To add a family: make its key with its `ForeignKeyType` (registered in
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
  transformersScheme('lefthash', {}),
  // transformers' default width is 1; SelfHash is the KGW paper's h = 4 variant (field notes §1).
  transformersScheme('selfhash', { 'seeding-scheme': 'selfhash', 'context-width': '4' }),
  synthidScheme(),
  sglangScheme('gumbel'),
  sglangScheme('dual_key_gumbel'),
]);

/** tracemark's distortion-free schemes, as a reference: the engine is tracemark and its detector is the exact one. */
export const TRACEMARK_SCHEMES: readonly TracemarkScheme[] = Object.freeze([
  { id: 'tracemark:gumbel', engine: 'tracemark', config: GUMBEL_DEFAULT },
  {
    id: 'tracemark:dual_gumbel',
    engine: 'tracemark',
    config: { name: 'dual_gumbel', contextWidth: 4, alpha: 0.1, repeatedContexts: 'skip' },
  },
]);

const MEASURED_SCHEMES: readonly MeasuredScheme[] = [...FOREIGN_SCHEMES, ...TRACEMARK_SCHEMES];

const ALPHA_POWER = 1e-3;

interface SchemeKeys {
  readonly key: ForeignKeyBase;
  readonly scorer: ForeignKeyScorer;
  /** The key as the engine's own detector is modelled (the same key unless engineDetectorFlags). */
  readonly engineKey: ForeignKeyBase;
  readonly engineScorer: ForeignKeyScorer;
}

let cachedKeys: { readonly id: string; readonly label: string; readonly keys: SchemeKeys } | null = null;

function keysFor(scheme: ForeignScheme, label: string): SchemeKeys {
  // Consecutive texts share a key (blocks of 32 passages): the last one is kept.
  if (cachedKeys !== null && cachedKeys.id === scheme.id && cachedKeys.label === label)
    return cachedKeys.keys;
  const type = foreignKeyTypeForScheme(scheme.schemeName);
  if (type === null) throw new Error(`no key family accepts ${scheme.schemeName}`);
  const secret = scheme.secret(label);
  const flags = { ...scheme.flags, tokenizer: tokenizer().id };
  const key = type.fromKeygen(scheme.schemeName, flags, secret);
  const scorer = type.createScorer(key, ALPHA_POWER);
  const engineKey =
    scheme.engineDetectorFlags === undefined
      ? key
      : type.fromKeygen(
          scheme.schemeName,
          { ...scheme.engineDetectorFlags, tokenizer: tokenizer().id },
          secret,
        );
  const engineScorer = engineKey === key ? scorer : type.createScorer(engineKey, ALPHA_POWER);
  const keys = { key, scorer, engineKey, engineScorer };
  cachedKeys = { id: scheme.id, label, keys };
  return keys;
}

function schemeById(id: string): MeasuredScheme {
  const scheme = MEASURED_SCHEMES.find((candidate) => candidate.id === id);
  if (scheme === undefined) throw new Error(`unknown foreign scheme ${id}`);
  return scheme;
}

function dedupsOf(scheme: MeasuredScheme): readonly ForeignDedup[] {
  if (isTracemarkScheme(scheme)) return ['strict', 'none'];
  return scheme.dedups ?? ['strict', 'context', 'none'];
}

/** Whether the scheme's engine detector gives a p-value of its own (tracemark's is the exact one). */
function engineHasPValue(scheme: MeasuredScheme): boolean {
  return !isTracemarkScheme(scheme) && scheme.schemeName !== 'synthid:tournament';
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
  /** Steps a shortcut sampler replays on the engine's reference path (see ForeignScheme.sampler). */
  readonly checkSteps: number;
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

/** Per text: tracemark's exact log10 p under each dedup (NaN where not measured), and the engine detector. */
interface Scored {
  readonly strict: number;
  readonly context: number;
  readonly none: number;
  readonly numScoredStrict: number;
  /** The engine's formula under its own dedup rule, and with dedup off (log10; NaN: no p-value). */
  readonly engine: number;
  readonly engineNoDedup: number;
  /** Whether the double the engine returns is 0 (its own rule). */
  readonly engineZero: boolean;
  /** The engine's score where it has no p-value (SynthID's mean), its own rule; NaN otherwise. */
  readonly engineScore: number;
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
  const keep = nucleusSize(sortedProbabilities, topP, 'tail');
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += sortedProbabilities[i]!;
  let entropy = 0;
  for (let i = 0; i < keep; i++) {
    const p = sortedProbabilities[i]! / kept;
    if (p > 0) entropy -= p * Math.log2(p);
  }
  return entropy;
}

function runGenerate(model: NgramModel, job: GenerateJob): Generated {
  const scheme = job.schemeId === null ? null : schemeById(job.schemeId);
  if (scheme !== null && isTracemarkScheme(scheme)) {
    // As the CLI generates (core sampler, repeated context seeds unmarked): research/src/generation.ts.
    const result = generateOne(model, {
      secret: secretFor(job.keyLabel),
      scheme: scheme.config,
      prompt: job.prompt,
      maxTokens: job.maxTokens,
      temperature: job.temperature,
      topP: job.topP,
      seed: job.seed,
      spikeModulus: 0,
    });
    return { tokens: result.tokens, entropyBits: result.meanEntropyBits };
  }
  const step =
    scheme === null ? null : scheme.sampler(keysFor(scheme, job.keyLabel).key, job.topP, job.checkSteps);
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
        ? step(job.prompt, completion, { tokenIds, probabilities }, random)
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

/** The default engine reading: the scorer's `peerLog10P` (the engine's formula in log space). */
function peerReading(score: ForeignKeyScore): EngineReading {
  const log10P = score.peerLog10P ?? Number.NaN;
  return { log10P, zero: log10P < LOG10_MIN_DOUBLE, score: Number.NaN };
}

let cachedWatermarker: {
  readonly id: string;
  readonly label: string;
  readonly watermarker: Watermarker;
} | null = null;

function scoreTracemark(scheme: TracemarkScheme, text: Uint32Array, label: string): Scored {
  if (cachedWatermarker === null || cachedWatermarker.id !== scheme.id || cachedWatermarker.label !== label) {
    cachedWatermarker = {
      id: scheme.id,
      label,
      watermarker: watermarkerFor(secretFor(label), scheme.config),
    };
  }
  const { watermarker } = cachedWatermarker;
  const strict = detect(text, watermarker, { includeStatus: false }).results[0]!;
  const none = detect(text, watermarker, { dedup: false, includeStatus: false }).results[0]!;
  return {
    strict: strict.log10P,
    context: Number.NaN,
    none: none.log10P,
    numScoredStrict: strict.numScored,
    // tracemark's own detector is the exact one: the engine columns repeat it.
    engine: strict.log10P,
    engineNoDedup: none.log10P,
    engineZero: false,
    engineScore: Number.NaN,
  };
}

function runScore(job: ScoreJob): Scored[] {
  const scheme = schemeById(job.schemeId);
  if (isTracemarkScheme(scheme)) {
    return job.texts.map((text, i) => scoreTracemark(scheme, text, job.keyLabels[i]!));
  }
  const dedups = dedupsOf(scheme);
  // Gumbel and red-green PRFs see the whole context: strict equals context (spec §3); computed once.
  const strictIsContext = scheme.engine === 'vLLM' && !scheme.schemeName.endsWith(':sbw');
  return job.texts.map((text, i) => {
    const { scorer, engineKey, engineScorer } = keysFor(scheme, job.keyLabels[i]!);
    const memo = (target: ForeignKeyScorer) => {
      const scores = new Map<ForeignDedup, ForeignKeyScore>();
      return (dedup: ForeignDedup): ForeignKeyScore => {
        const rule = dedup === 'context' && strictIsContext ? 'strict' : dedup;
        let score = scores.get(rule);
        if (score === undefined) scores.set(rule, (score = target.score(text, rule)));
        return score;
      };
    };
    const own = memo(scorer);
    const engineScores = engineScorer === scorer ? own : memo(engineScorer);
    const read = (dedup: ForeignDedup): EngineReading =>
      scheme.engineRead === undefined
        ? peerReading(engineScores(dedup))
        : scheme.engineRead(engineKey, engineScores, text, dedup);
    const strict = own('strict');
    const engine = read(scheme.engineDedup);
    const engineNone = scheme.engineDedup === 'none' ? engine : read('none');
    return {
      strict: strict.log10P,
      context: dedups.includes('context') ? own('context').log10P : Number.NaN,
      none: own('none').log10P,
      numScoredStrict: strict.numScored,
      engine: engine.log10P,
      engineNoDedup: engineNone.log10P,
      engineZero: engine.zero,
      engineScore: engine.score,
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
  /** The engine's detector: its formula ≤ 1e-3, its dedup rule; null where it has no p-value. */
  readonly engineTpr: number | null;
  readonly meanScored: number;
  readonly medianLog10P: number;
  readonly engineMedianLog10P: number | null;
  /** The engine's median score where it has no p-value (SynthID's mean g-value); null otherwise. */
  readonly engineMedianScore: number | null;
}

export interface ForeignSchemeResult {
  readonly id: string;
  readonly engine: string;
  readonly schemeName: string;
  readonly parameters: Record<string, string | number | boolean>;
  readonly engineDedup: ForeignDedup;
  readonly engineFormula: string;
  /** Whether the engine's detector gives a p-value (not SynthID's; tracemark's own is the exact one). */
  readonly engineHasPValue: boolean;
  /** tracemark's dedup rules measured. */
  readonly dedups: readonly ForeignDedup[];
  readonly generations: number;
  /** Human passages scored (fewer than the summary's for a scheme with a budget). */
  readonly humanPassages: number;
  /** The engine's median score on human text where it has no p-value; null otherwise. */
  readonly humanEngineMedianScore: number | null;
  readonly meanEntropyBits: number;
  readonly power: readonly ForeignPowerAtLength[];
  readonly long: {
    readonly generations: number;
    readonly tokens: number;
    /** Share whose engine p-value, as a double, is 0; null where it has no p-value. */
    readonly engineZeroShare: number | null;
    readonly medianLog10P: number;
    readonly minLog10P: number;
    readonly engineMedianLog10P: number | null;
  };
  readonly humanFpr: readonly ForeignFprRow[];
  readonly repetitiveFpr: readonly ForeignFprRow[];
  readonly repeatedPassageFpr: readonly ForeignFprRow[];
  /** tracemark's default (exact p, dedup strict) within the binomial bound at every level on human text. */
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

function fprRows(
  scheme: MeasuredScheme,
  scored: readonly Scored[],
  levels: readonly number[],
): ForeignFprRow[] {
  const row = (detector: 'tracemark' | 'engine', dedup: ForeignDedup, values: number[]): ForeignFprRow => ({
    detector,
    dedup,
    trials: values.length,
    levels: levelsOf(values, levels),
  });
  const rows = dedupsOf(scheme).map((dedup) =>
    row(
      'tracemark',
      dedup,
      scored.map((s) => s[dedup]),
    ),
  );
  if (!engineHasPValue(scheme)) return rows;
  const engineDedup = (scheme as ForeignScheme).engineDedup;
  rows.push(
    row(
      'engine',
      engineDedup,
      scored.map((s) => s.engine),
    ),
  );
  if (engineDedup !== 'none') {
    rows.push(
      row(
        'engine',
        'none',
        scored.map((s) => s.engineNoDedup),
      ),
    );
  }
  return rows;
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

/** The counts a scheme runs with: the plan, or its budget in a full run. */
interface SchemePlan {
  readonly generations: number;
  readonly longGenerations: number;
  readonly humanStride: number;
}

function schemePlan(scheme: MeasuredScheme, plan: Plan, quick: boolean): SchemePlan {
  const budget = isTracemarkScheme(scheme) ? undefined : scheme.budget;
  if (budget === undefined) {
    return { generations: plan.generations, longGenerations: plan.longGenerations, humanStride: 1 };
  }
  // The quick variant keeps every human passage (its test compares the trials across schemes).
  return quick ? { generations: 3, longGenerations: 0, humanStride: 1 } : budget;
}

/** The check of SynthID's candidate tournament against the dense generator: steps of generation 0. */
const CHECK_STEPS = 32;
const QUICK_CHECK_STEPS = 8;

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
  const plans = new Map(
    MEASURED_SCHEMES.map((scheme) => [scheme.id, schemePlan(scheme, plan, context.quick)]),
  );

  // 1. Generations: power, long, and unwatermarked repetitive text.
  const generateJobs: GenerateJob[] = [];
  for (const scheme of MEASURED_SCHEMES) {
    const counts = plans.get(scheme.id)!;
    for (let i = 0; i < counts.generations; i++) {
      generateJobs.push({
        kind: 'generate',
        schemeId: scheme.id,
        keyLabel: `foreign/${scheme.id}/key/${i}`,
        prompt: pairs[i % pairs.length]!.prompt,
        maxTokens: maxLength,
        temperature: plan.temperature,
        topP: plan.topP,
        seed: seedFor(`foreign/sample/${i}`),
        checkSteps: i === 0 ? Math.min(context.quick ? QUICK_CHECK_STEPS : CHECK_STEPS, maxLength) : 0,
      });
    }
    for (let i = 0; i < counts.longGenerations; i++) {
      generateJobs.push({
        kind: 'generate',
        schemeId: scheme.id,
        keyLabel: `foreign/${scheme.id}/long-key/${i}`,
        prompt: pairs[i % pairs.length]!.prompt,
        maxTokens: plan.longTokens,
        temperature: plan.temperature,
        topP: plan.topP,
        seed: seedFor(`foreign/long-sample/${i}`),
        checkSteps: 0,
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
      checkSteps: 0,
    });
  }
  context.log(`foreign: ${integer(generateJobs.length)} generations, ${MEASURED_SCHEMES.length} schemes`);
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
  for (const scheme of MEASURED_SCHEMES) {
    const counts = plans.get(scheme.id)!;
    bySchemePower.set(scheme.id, generated.slice(offset, offset + counts.generations));
    offset += counts.generations;
    bySchemeLong.set(scheme.id, generated.slice(offset, offset + counts.longGenerations));
    offset += counts.longGenerations;
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
  const everyKth = <T>(items: readonly T[], stride: number): T[] => items.filter((_, i) => i % stride === 0);
  for (const scheme of MEASURED_SCHEMES) {
    const stride = plans.get(scheme.id)!.humanStride;
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
    // Passage t keeps its key label whatever the stride, so a budget only leaves trials out.
    const human = everyKth(
      passages.map((text, t) => ({
        text,
        key: `foreign/fpr/${scheme.id}/key/${Math.floor(t / TRIALS_PER_KEY)}`,
      })),
      stride,
    );
    addScores(
      scheme.id,
      'human',
      human.map((item) => item.text),
      human.map((item) => item.key),
    );
    const repetitiveTrials = everyKth(
      repetitive
        .flatMap((text) => Array.from({ length: plan.keysPerRepetitiveText }, () => text))
        .map((text, t) => ({ text, key: `foreign/repetitive/${scheme.id}/key/${t}` })),
      stride,
    );
    addScores(
      scheme.id,
      'repetitive',
      repetitiveTrials.map((item) => item.text),
      repetitiveTrials.map((item) => item.key),
    );
    const repeatedTrials = everyKth(
      repeatedPassages
        .flatMap((text) => [text, text])
        .map((text, t) => ({ text, key: `foreign/repeated/${scheme.id}/key/${t}` })),
      stride,
    );
    addScores(
      scheme.id,
      'repeated-passage',
      repeatedTrials.map((item) => item.text),
      repeatedTrials.map((item) => item.key),
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

  const schemes: ForeignSchemeResult[] = MEASURED_SCHEMES.map((scheme) => {
    const part = (name: string) => parts.get(`${scheme.id}|${name}`)!;
    const hasPValue = engineHasPValue(scheme);
    const hasScore = !hasPValue && !isTracemarkScheme(scheme);
    const power = plan.lengths.map((length): ForeignPowerAtLength => {
      const scored = part(`power/${length}`);
      return {
        length,
        tpr: scored.filter((s) => s.strict <= Math.log10(ALPHA_POWER)).length / scored.length,
        engineTpr: hasPValue
          ? scored.filter((s) => s.engine <= Math.log10(ALPHA_POWER)).length / scored.length
          : null,
        meanScored: mean(scored.map((s) => s.numScoredStrict)),
        medianLog10P: median(scored.map((s) => s.strict)),
        engineMedianLog10P: hasPValue ? median(scored.map((s) => s.engine)) : null,
        engineMedianScore: hasScore ? median(scored.map((s) => s.engineScore)) : null,
      };
    });
    const long = part('long');
    const human = part('human');
    const humanFpr = fprRows(scheme, human, FPR_LEVELS);
    const dedupPasses = humanFpr
      .filter((row) => row.detector === 'tracemark' && row.dedup === 'strict')
      .every((row) => row.levels.every((level) => level.pass));
    return {
      id: scheme.id,
      engine: scheme.engine,
      schemeName: isTracemarkScheme(scheme) ? scheme.config.name : scheme.schemeName,
      parameters: isTracemarkScheme(scheme)
        ? {
            contextWidth: scheme.config.contextWidth,
            ...(scheme.config.name === 'dual_gumbel' ? { alpha: scheme.config.alpha } : {}),
            repeatedContexts: scheme.config.repeatedContexts,
          }
        : foreignKeyTypeForScheme(scheme.schemeName)!.parameters(keysFor(scheme, 'parameters').key),
      engineDedup: isTracemarkScheme(scheme) ? 'strict' : scheme.engineDedup,
      engineFormula: isTracemarkScheme(scheme)
        ? 'tracemark is the engine: its exact Gamma tail (dual: weighted Gamma), the columns repeat it'
        : scheme.engineFormula,
      engineHasPValue: hasPValue,
      dedups: dedupsOf(scheme),
      generations: plans.get(scheme.id)!.generations,
      humanPassages: human.length,
      humanEngineMedianScore: hasScore ? median(human.map((s) => s.engineScore)) : null,
      meanEntropyBits: mean(bySchemePower.get(scheme.id)!.map((g) => g.entropyBits)),
      power,
      long: {
        generations: long.length,
        tokens: plan.longTokens,
        engineZeroShare:
          long.length === 0 || !hasPValue ? null : long.filter((s) => s.engineZero).length / long.length,
        medianLog10P: long.length === 0 ? Number.NaN : median(long.map((s) => s.strict)),
        minLog10P: long.length === 0 ? Number.NaN : Math.min(...long.map((s) => s.strict)),
        engineMedianLog10P: hasPValue && long.length > 0 ? median(long.map((s) => s.engine)) : null,
      },
      humanFpr,
      repetitiveFpr: fprRows(scheme, part('repetitive'), [ENGINE_THRESHOLD, 1e-3]),
      repeatedPassageFpr: fprRows(scheme, part('repeated-passage'), [ENGINE_THRESHOLD, 1e-3]),
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
    `**Result: with its default dedup (\`strict\`), tracemark's exact p-values ${summary.dedupPasses ? 'stay within the binomial bound at every level for every scheme' : 'do NOT stay within the bound for every scheme'}** (${integer(summary.humanPassages)} human passages of ${summary.passageTokens} tokens per scheme, each under one of ${integer(Math.ceil(summary.humanPassages / TRIALS_PER_KEY))} keys${budgetNote(summary)}). The engines' \`context\` rules ${failingContext(summary)}. Power and the engines' own detectors per scheme below.`,
  );
  report
    .heading(2, 'Setup')
    .bullets([
      `Generator: the embedded model (\`loadDefaultModel()\`), its ${summary.maxCandidates} most probable next tokens after a ${PROMPT_TOKENS}-token human prompt (test split), temperature ${summary.temperature}, top-p ${summary.topP} applied where the engine applies it (no top-k), then the engine's watermarked sampler from packages/core, each checked against vectors from the engine's own code.`,
      "vLLM (`vllm-sampling.ts`, which replays all 30 generations recorded from vLLM token for token): the context at step t is the completion's previous w tokens, −1 before its start; its generation-side context deduplication is on at its default (`single_turn`): a step whose context occurred earlier in the completion is sampled without the mark.",
      'transformers KGW: `createTransformersKgwDetector(…).bias(prompt + completion, logits)` on the nucleus, then a draw from the biased distribution. transformers appends the watermark processor after temperature, top-k and top-p (`generation/utils.py`: "Watermarking should be after all logits processing is finished", #34630), so the bias applies to the truncated distribution; the detector scores every n-gram (`ignore_repeated_ngrams` is a no-op, spec foreign-transformers §6).',
      `SynthID-Text (30 keys, n-gram length 5, transformers' table defaults): the processor's tournament after top-p, with g-values from core \`synthidGValues\` for the kept candidates only (the dense \`createSynthidGenerator\` costs 76 ms a step over 100,277 ids; outside the nucleus p = 0 stays 0); the processor's state (context of zeros, not the prompt; a context among the last 1,024 is left unmarked) as in spec foreign-synthid §5. The first ${CHECK_STEPS} steps of each scheme's generation 0 run beside \`createSynthidGenerator\` on the dense vocabulary and stop the run on any difference above 1e-12.`,
      "SGLang: `sglangGumbelSample(key, prompt + completion, nucleus)` (SGLang's top-p keeps a token while the mass before it is at most p); a position whose 32-bit context hash was forced before in the request is sampled without the mark, as SGLang's generator does.",
      'tracemark `gumbel` and `dual_gumbel` (h = 4, α = 0.1): generated as the CLI does (`research/src/generation.ts`, core sampler, repeated context seeds unmarked) and read by core `detect` (dedup on, or off); there is no `context` rule and no separate engine detector.',
      `Keys: each generation and each block of ${TRIALS_PER_KEY} human passages has its own engine key, made through the family's \`keygen\` path (\`ForeignKeyType.fromKeygen\`) and scored through its \`createScorer\`: the numbers are those of \`tracemark detect\`.`,
      "tracemark: the exact log10 p of the family's scorer with its default dedup (`strict`); `context` is the engines' rule (an exact context window repeated). Engine: the engine's own p-value formula (in log space, so its underflow is visible) with the engine detector's dedup rule; the share of texts where the double it returns is 0 is counted apart. SynthID's detectors give no p-value: its mean g-value (under transformers' repetition mask) is reported instead.",
      `Power: share of generations with p ≤ ${scientific(ALPHA_POWER, 1)}, at ${lengths.join(', ')} tokens (prefixes of one generation); ${plan.generations} generations per scheme. Long: ${plan.longGenerations} generations of ${plan.longTokens} tokens per scheme. ${summary.quick ? '' : 'transformers KGW, whose green list is a 25,069-step torch randperm per scored token (~100× a vLLM score), runs with fewer: the counts are in the tables (every k-th human passage, and 1/k of the repetitive trials).'}`,
      `Human text: non-overlapping ${summary.passageTokens}-token passages of ${summary.quick ? 'the test split' : 'all'} of Brown and nlp-corpus (cl100k_base). A level passes when the false positives are at most max(1.5·α·n, the 97.5% quantile of Bin(n, α)), as in experiment \`fpr\`.`,
      `Repetitive text: (a) ${summary.repetitiveTexts.generated} unwatermarked generations of ${maxLengthOf(plan)} tokens at temperature ${plan.repetitiveTemperature} (the n-gram model loops: ${fixed(summary.repetitiveTexts.repeatShare * 100, 1)}% of positions repeat an earlier 4-token context), each under ${plan.keysPerRepetitiveText} keys; (b) ${summary.repetitiveTexts.repeatedPassages} human passages of ${Math.floor(summary.passageTokens / 4)} tokens repeated 4 times (${fixed(summary.repetitiveTexts.repeatedPassageShare * 100, 1)}% repeated contexts), each under 2 keys. vLLM's docs report 15–44% false positives on repetitive text with context dedup off (field notes §8); vLLM's detectors default to α = 0.01.`,
    ]);
  report.heading(2, 'Schemes');
  report.table(
    ['scheme', 'parameters (engine defaults unless given)', "engine's dedup", "engine's p-value"],
    summary.schemes.map((s) => [
      `\`${s.id}\`${s.engine === 'tracemark' ? ' (reference)' : ''}`,
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
    "TPR: tracemark (exact p, dedup strict) and the engine detector (its formula and dedup). Median log10 p of the generations beside; for SynthID, whose detector has no p-value, the median of its mean g-value score (about 0.5 on human text). The entropy is that of the distribution sampled from (temperature and top-p applied, vLLM's nucleus rule), mean over steps.",
  );
  const powerRows: string[][] = [];
  for (const s of summary.schemes) {
    for (const at of s.power) {
      powerRows.push([
        `\`${s.id}\``,
        fixed(s.meanEntropyBits, 2),
        String(at.length),
        fixed(at.meanScored, 1),
        String(s.generations),
        fixed(at.tpr, 3),
        at.engineTpr === null ? '—' : fixed(at.engineTpr, 3),
        log10Text(at.medianLog10P),
        at.engineMedianLog10P !== null
          ? log10Text(at.engineMedianLog10P)
          : at.engineMedianScore !== null
            ? `score ${fixed(at.engineMedianScore, 3)}`
            : '—',
      ]);
    }
  }
  report.table(
    [
      'scheme',
      'entropy (bits)',
      'tokens',
      'scored (mean)',
      'generations',
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
      s.long.engineZeroShare === null ? '—' : fixed(s.long.engineZeroShare, 2),
      log10Text(s.long.medianLog10P),
      log10Text(s.long.minLog10P),
      s.long.engineMedianLog10P === null ? '—' : log10Text(s.long.engineMedianLog10P),
    ]),
  );
  report.heading(2, 'False positives on human text');
  for (const s of summary.schemes) {
    report.heading(3, `\`${s.id}\``);
    if (s.humanPassages !== summary.humanPassages) {
      report.paragraph(
        `Every ${integer(Math.round(summary.humanPassages / s.humanPassages))}th passage: ${integer(s.humanPassages)} trials.`,
      );
    }
    if (s.humanEngineMedianScore !== null) {
      report.paragraph(
        `The engine's detector gives no p-value; its median mean g-value score on these passages is ${fixed(s.humanEngineMedianScore, 4)}.`,
      );
    }
    fprTable(report, s.humanFpr, true);
  }
  report.heading(2, 'Repetitive text, dedup on and off');
  report.paragraph(
    `FPR at α = ${ENGINE_THRESHOLD} (vLLM's default threshold) and 1e-3. For vLLM's gumbel, dual_key_gumbel and red_green, strict equals context (the PRF input is the whole context).`,
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
    "Each scheme is one entry of `FOREIGN_SCHEMES` in research/src/experiments/foreign.ts: the `keygen` scheme name and flags (the family must be registered in packages/detection/src/foreign-registry.ts), a function that returns the engine's sampler for a key (from packages/core), the engine detector's dedup rule and a line describing its p-value (and, where the scorer's `peerLog10P` is not the engine's number, `engineRead`). Generation, scoring, tables and the plot follow.",
  );
}

/** ", with fewer for …" when some scheme ran on a budget. */
function budgetNote(summary: ForeignSummary): string {
  const reduced = summary.schemes.filter((s) => s.humanPassages !== summary.humanPassages);
  return reduced.length === 0
    ? ''
    : `; ${reduced.map((s) => `\`${s.id}\` ${integer(s.humanPassages)}`).join(', ')}`;
}

/** Which schemes the engines' context rule fails on human text (the exact tail or the engine's formula). */
function failingContext(summary: ForeignSummary): string {
  const failing = summary.schemes.filter((s) =>
    s.humanFpr.some((row) => row.dedup === 'context' && row.levels.some((level) => !level.pass)),
  );
  return failing.length === 0
    ? 'stay within the bound too'
    : `exceed it for ${failing.map((s) => `\`${s.id}\``).join(', ')}: their seeds recur across contexts, so one (seed, token) pair is scored again (spec foreign-vllm §10.1)`;
}

function maxLengthOf(plan: Plan): number {
  return plan.lengths[plan.lengths.length - 1]!;
}

async function foreignCharts(context: ExperimentContext, summary: ForeignSummary): Promise<string[]> {
  const values = summary.schemes.flatMap((s) =>
    s.power.flatMap((at) => [
      { length: at.length, tpr: at.tpr, scheme: s.id, detector: 'tracemark (exact)' },
      ...(at.engineTpr === null || s.engine === 'tracemark'
        ? []
        : [{ length: at.length, tpr: at.engineTpr, scheme: s.id, detector: 'engine formula' }]),
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
