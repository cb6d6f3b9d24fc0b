/**
 * The engine families of test/detect-families.test.ts and test/scan-families.test.ts: for each, the
 * keygen flags, a secret given only through an environment variable, a sampler that marks token ids
 * with the family's own core sampler, and reference numbers computed from the core detectors and
 * statistics (not through @tracemark/detection, which the CLI uses). Also the spawned CLI.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createSglangDetector,
  createSynthidDetector,
  createSynthidGenerator,
  createTransformersKgwDetector,
  log10BinomialSf,
  log10GammaSf,
  type RandomSource,
  sglangGumbelSample,
  synthidSamplingTable,
} from '@tracemark/core';
import { foreignKeyTypeForScheme } from '@tracemark/detection';
import { getTokenizer } from '@tracemark/tokenizers';
import { cacheDir, cliPath, repositoryRoot, type SpawnResult, temporaryDirectory } from './helpers.ts';

/**
 * Runs `tracemark ARGS` as a real process: the built CLI (apps/cli/dist, `pnpm build` first), or the
 * sources when TRACEMARK_CLI_FROM_SOURCE=1 (for a tree whose build is broken elsewhere).
 */
export function tracemarkProcess(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<SpawnResult> {
  const entry =
    process.env.TRACEMARK_CLI_FROM_SOURCE === '1'
      ? ['--conditions=source', '--import', 'tsx', join(repositoryRoot, 'apps/cli/src/bin.ts')]
      : [cliPath];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...entry, ...args], {
      cwd: repositoryRoot,
      env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end('');
  });
}

/** The numbers a strict per-document test or a corpus test should report. */
export interface Reference {
  readonly numScored: number;
  readonly score: number;
  readonly log10P: number;
}

export interface Family {
  readonly name: 'transformers' | 'synthid' | 'sglang';
  readonly scheme: string;
  readonly keyIdPattern: RegExp;
  /** keygen flags beyond --scheme, the secret and --out, by long name without dashes. */
  readonly keygenFlags: Readonly<Record<string, string>>;
  /** The secret as the engine's config gives it, and one that differs. */
  readonly secret: string;
  readonly wrongSecret: string;
  /** Every form of the secrets that must never be printed (the first as the key file holds it). */
  readonly secretForms: readonly string[];
  readonly wrongSecretForms: readonly string[];
  /** A marked completion of `length` token ids (below {@link CANDIDATE_IDS}). */
  sample(random: RandomSource, length: number): number[];
  /** The strict per-document test, from the core. */
  detect(ids: readonly number[]): Reference;
  /** The corpus test: each unit once, where it first occurs. */
  pool(documents: readonly (readonly number[])[]): Reference & { readonly numUnits: number };
}

/** Completions are drawn over the first ids of cl100k_base, 16 candidates a step. */
const CANDIDATE_IDS = 1000;
const CANDIDATES = 16;
const CL100K_SIZE = getTokenizer('cl100k_base').vocabSize;

/** 16 random candidate ids with logits 1.5·N(0, 1): about two nats of entropy a step. */
function candidates(random: RandomSource): { ids: number[]; logits: number[] } {
  const ids = Array.from({ length: CANDIDATES }, () => random.nextUint32() % CANDIDATE_IDS);
  const logits = ids.map(
    () => 1.5 * Math.sqrt(-2 * Math.log(1 - random.nextFloat())) * Math.cos(2 * Math.PI * random.nextFloat()),
  );
  return { ids, logits };
}

function probabilities(random: RandomSource): Float64Array {
  const { ids, logits } = candidates(random);
  const probs = new Float64Array(CANDIDATE_IDS);
  ids.forEach((id, i) => {
    probs[id]! += Math.exp(logits[i]!);
  });
  let total = 0;
  for (const p of probs) total += p;
  return probs.map((p) => p / total);
}

function draw(weights: Float64Array, random: RandomSource): number {
  let total = 0;
  for (const w of weights) total += w;
  let u = random.nextFloat() * total;
  let last = 0;
  for (let v = 0; v < weights.length; v++) {
    if (!(weights[v]! > 0)) continue;
    last = v;
    u -= weights[v]!;
    if (u < 0) return v;
  }
  return last;
}

/** Pools units keyed by what decides their value: each counted once, with its first value. */
function pooled(units: Iterable<readonly [string, number]>): {
  numUnits: number;
  numScored: number;
  score: number;
} {
  const seen = new Map<string, number>();
  let numUnits = 0;
  for (const [unit, value] of units) {
    numUnits++;
    if (!seen.has(unit)) seen.set(unit, value);
  }
  let score = 0;
  for (const value of seen.values()) score += value;
  return { numUnits, numScored: seen.size, score };
}

/** transformers' KGW, lefthash, width 1, γ 0.25, δ 2 (the defaults), over cl100k_base's ids. */
const TRANSFORMERS_SECRET = '8765432109876543210';
const transformersParams = { hashKey: BigInt(TRANSFORMERS_SECRET), vocabSize: CL100K_SIZE } as const;
const transformersDetector = createTransformersKgwDetector(transformersParams);
const nullGreen = Math.trunc(CL100K_SIZE * 0.25) / CL100K_SIZE;

export const transformers: Family = {
  name: 'transformers',
  scheme: 'transformers:kgw',
  keyIdPattern: /^tfkgw1_[0-9a-f]{24}$/,
  keygenFlags: {},
  secret: TRANSFORMERS_SECRET,
  wrongSecret: '8765432109876543211',
  secretForms: [TRANSFORMERS_SECRET],
  wrongSecretForms: ['8765432109876543211'],
  sample(random, length) {
    const ids: number[] = [];
    for (let t = 0; t < length; t++) {
      const step = candidates(random);
      const logits = new Float32Array(CL100K_SIZE).fill(Number.NEGATIVE_INFINITY);
      step.ids.forEach((id, i) => {
        logits[id] = step.logits[i]!;
      });
      // The processor's biased logits (no bias while the row is shorter than the width), then softmax sampling.
      const biased = transformersDetector.bias(ids, logits);
      const weights = new Float64Array(CANDIDATE_IDS);
      for (const id of step.ids) weights[id] = Math.exp(biased[id]!);
      ids.push(draw(weights, random));
    }
    return ids;
  },
  detect(ids) {
    const d = transformersDetector.detect(ids, { dedup: 'strict' });
    return {
      numScored: d.numScored,
      score: d.score,
      log10P: log10BinomialSf(d.score, d.numScored, nullGreen),
    };
  },
  pool(documents) {
    const totals = pooled(
      documents.flatMap((ids) => {
        const d = transformersDetector.detect(ids, { dedup: 'strict' });
        // lefthash at width 1: the generator seed comes from the previous id.
        return d.positions.map(
          (p, i) =>
            [`${transformersDetector.generatorSeed([ids[p - 1]!])}:${ids[p]}`, d.greenFlags[i]!] as const,
        );
      }),
    );
    return { ...totals, log10P: log10BinomialSf(totals.score, totals.numScored, nullGreen) };
  },
};

/** SynthID-Text, 30 random 64-bit keys, n-grams of 5, the default table. */
const synthidKeys = ((): bigint[] => {
  let state = 0x9e3779b97f4a7c15n;
  return Array.from({ length: 30 }, () => {
    state = BigInt.asUintN(64, state * 6364136223846793005n + 1442695040888963407n);
    return BigInt.asIntN(64, state);
  });
})();
const SYNTHID_SECRET = synthidKeys.join(',');
const synthidParams = { keys: synthidKeys, ngramLen: 5 } as const;
const synthidDetector = createSynthidDetector(synthidParams);
const synthidQ = synthidSamplingTable(65536, 0).reduce((a, b) => a + b, 0) / 65536;
const synthidDepth = synthidDetector.effectiveLayers.length;

export const synthid: Family = {
  name: 'synthid',
  scheme: 'synthid:tournament',
  keyIdPattern: /^synthid1_[0-9a-f]{24}$/,
  keygenFlags: { 'ngram-len': '5' },
  secret: SYNTHID_SECRET,
  wrongSecret: synthidKeys.map((k) => k + 1n).join(','),
  secretForms: synthidKeys.map(String),
  wrongSecretForms: synthidKeys.map((k) => String(k + 1n)),
  sample(random, length) {
    // A fresh processor per completion, as transformers makes one per generate call.
    const generator = createSynthidGenerator(synthidParams);
    return Array.from({ length }, () => generator.sample(probabilities(random), random));
  },
  detect(ids) {
    const d = synthidDetector.detect(ids, { dedup: 'strict' });
    return {
      numScored: d.numScored,
      score: d.score,
      log10P: log10BinomialSf(d.score, d.numGValues, synthidQ),
    };
  },
  pool(documents) {
    const totals = pooled(
      documents.flatMap((ids) => {
        const scored = new Set(synthidDetector.detect(ids, { dedup: 'strict' }).positions);
        return synthidDetector
          .scoreTokens(ids)
          .filter((s) => scored.has(s.position))
          .map(
            (s) =>
              [
                String(s.seed),
                synthidDetector.effectiveLayers.reduce((sum, layer) => sum + s.gValues[layer]!, 0),
              ] as const,
          );
      }),
    );
    return {
      ...totals,
      log10P: log10BinomialSf(totals.score, totals.numScored * synthidDepth, synthidQ),
    };
  },
};

/** SGLang's one-key Gumbel, context window 4 (the default). */
const SGLANG_SECRET = 'c0ffee0123456789';
const sglangParams = { scheme: 'gumbel', engineKey: BigInt(`0x${SGLANG_SECRET}`), contextWindow: 4 } as const;
const sglangDetector = createSglangDetector(sglangParams);
const gammaTail = (n: number, s: number): number => (n === 0 ? 0 : Math.min(0, log10GammaSf(n, s)));

export const sglang: Family = {
  name: 'sglang',
  scheme: 'sglang:gumbel',
  keyIdPattern: /^sglang1_[0-9a-f]{24}$/,
  keygenFlags: {},
  secret: SGLANG_SECRET,
  wrongSecret: 'c0ffee012345678a',
  secretForms: [SGLANG_SECRET, BigInt(`0x${SGLANG_SECRET}`).toString(10)],
  wrongSecretForms: ['c0ffee012345678a', BigInt('0xc0ffee012345678a').toString(10)],
  sample(random, length) {
    // SGLang does not mark a position without context: the first id is a plain draw.
    const ids = [draw(probabilities(random), random)];
    while (ids.length < length) ids.push(sglangGumbelSample(sglangParams, ids, probabilities(random)));
    return ids;
  },
  detect(ids) {
    const d = sglangDetector.detect(ids, { dedup: 'strict' });
    return { numScored: d.numScored, score: d.score, log10P: gammaTail(d.numScored, d.score) };
  },
  pool(documents) {
    const totals = pooled(
      documents.flatMap((ids) =>
        sglangDetector
          .detect(ids, { dedup: 'strict', tokens: true })
          .tokens!.map((t) => [`${t.contextHash}:${t.token}`, t.score] as const),
      ),
    );
    return { ...totals, log10P: gammaTail(totals.numScored, totals.score) };
  },
};

export const FAMILIES: readonly Family[] = [transformers, synthid, sglang];

/** Runs tasks at most `limit` at a time; results in the tasks' order. */
export async function runAll<T>(tasks: readonly (() => Promise<T>)[], limit = 3): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const at = next++;
      results[at] = await tasks[at]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** A family's key files in a temporary directory, and a way to run the CLI on inputs written there. */
export interface FamilyFiles {
  /** `tracemark keygen … --engine-key-env ENGINE_KEY --out KEY --json`, spawned. */
  readonly keygen: SpawnResult;
  readonly key: string;
  /** Another engine key (made in-process: keygen's own code path, without a process). */
  readonly wrongKey: string;
  readonly wrongKeyId: string;
  /** The right engine key bound to a tokenizer tracemark does not ship, of 1000 ids. */
  readonly narrowKey: string;
  run(args: readonly string[]): Promise<SpawnResult>;
  /** Writes records as a JSONL file and returns its path. */
  jsonl(records: readonly object[]): string;
}

/** Spawns keygen for every family (the secret only in the environment) and writes the other keys. */
export async function prepareFamilies(label: string): Promise<Map<Family['name'], FamilyFiles>> {
  const directory = temporaryDirectory(`tracemark-${label}-`);
  let written = 0;
  const write = (name: string, text: string): string => {
    const path = join(directory, `${written++}-${name}`);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const keygens = await Promise.all(
    FAMILIES.map((family) => {
      const key = join(directory, `${family.name}-key.json`);
      const flags = Object.entries(family.keygenFlags).flatMap(([name, value]) => [`--${name}`, value]);
      return tracemarkProcess(
        [
          'keygen',
          '--scheme',
          family.scheme,
          ...flags,
          '--engine-key-env',
          'ENGINE_KEY',
          '--out',
          key,
          '--json',
        ],
        { ENGINE_KEY: family.secret },
      ).then((keygen) => ({ keygen, key }));
    }),
  );
  const files = new Map<Family['name'], FamilyFiles>();
  FAMILIES.forEach((family, i) => {
    const type = foreignKeyTypeForScheme(family.scheme)!;
    const wrong = type.fromKeygen(family.scheme, family.keygenFlags, family.wrongSecret);
    const narrow = type.fromKeygen(
      family.scheme,
      { ...family.keygenFlags, tokenizer: 'vendor/model-1000', 'vocab-size': '1000' },
      family.secret,
    );
    files.set(family.name, {
      ...keygens[i]!,
      wrongKey: write(`${family.name}-wrong-key.json`, type.serialize(wrong)),
      wrongKeyId: wrong.keyId,
      narrowKey: write(`${family.name}-narrow-key.json`, type.serialize(narrow)),
      run: (args) => tracemarkProcess(args),
      jsonl: (records) =>
        write('input.jsonl', `${records.map((record) => JSON.stringify(record)).join('\n')}\n`),
    });
  });
  return files;
}
