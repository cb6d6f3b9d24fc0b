/**
 * The CPU-heavy work on client text as plain functions of a context: tokenizing prompts, detection, the
 * analysis half of verification and corpus scans. The same functions run inline (small inputs) and in the
 * worker threads (`worker.ts`), so a number never depends on where it was computed; detection is always
 * `createTextDetector` of @tracemark/detection, the path of `tracemark detect --json`.
 */

import {
  createWatermarkKey,
  DEFAULT_FPR,
  type SchemeName,
  type SchemeParams,
  type WatermarkKey,
} from '@tracemark/core';
import {
  type AnyDocumentResult,
  type AnyKeyTextDetector,
  type AnyWatermarkKey,
  createTextDetector,
  type ForeignWatermarkKey,
  foreignKeyType,
  foreignLabel,
  InputError,
  isForeignKey,
  parseAnyKeyFile,
  type TextDetector,
} from '@tracemark/detection';
import {
  type AnyScanReport,
  DEFAULT_FAKE_KEY_SEED,
  DEFAULT_FAKE_KEYS,
  DEFAULT_SCAN_ALPHA,
  type FakeKeyCounts,
  type ForeignScanKey,
  fakeKeyPValues,
  isGumbelKey,
  runFakeKeyJob,
  type ScanDocument,
  scanCorpus,
  scanCorpusAnyKeys,
} from '@tracemark/extraction';
import {
  type DsseEnvelope,
  type EvidencePredicate,
  generateSigningKey,
  type SigningKey,
  signEvidence,
} from '@tracemark/provenance';
import type { Tokenizer } from '@tracemark/tokenizers';
import { keyForStoredEpoch } from '../account-keys.ts';
import { clientInputParam, type GatewayErrorCode, onClientInput, unprocessableMessage } from '../errors.ts';
import {
  analyzeVerification,
  type KeyRef,
  type VerifyAnalysis,
  type VerifyInput,
} from '../provenance/verify.ts';

/**
 * A watermark key as it crosses to a worker: the secret travels once, in `workerData`, never in a task. An
 * engine's key travels as its key file's text (UTF-8, in `secret`, which the worker wipes after reading).
 */
export type KeyMaterial =
  | {
      readonly kind: 'tracemark';
      readonly keyId: string;
      readonly secret: Uint8Array;
      readonly scheme: {
        readonly name: SchemeName;
        readonly contextWidth: number;
        readonly gamma: number;
        readonly delta: number;
        /** dual_gumbel's key weight (0 for every other scheme). */
        readonly alpha: number;
      };
      readonly tokenizer: string;
    }
  | { readonly kind: 'engine'; readonly keyId: string; readonly secret: Uint8Array };

export function keyMaterialOf(key: AnyWatermarkKey): KeyMaterial {
  if (isForeignKey(key)) {
    const text = foreignKeyType(key).serialize(key);
    return { kind: 'engine', keyId: key.keyId, secret: new TextEncoder().encode(text) };
  }
  const tracemarkKey = key as WatermarkKey;
  const { name, contextWidth, gamma, delta, alpha } = tracemarkKey.scheme;
  return {
    kind: 'tracemark',
    keyId: tracemarkKey.keyId,
    secret: Uint8Array.from(tracemarkKey.secret),
    scheme: { name, contextWidth, gamma, delta, alpha },
    tokenizer: tracemarkKey.tokenizer,
  };
}

export function keyFromMaterial(material: KeyMaterial): AnyWatermarkKey {
  const key =
    material.kind === 'engine'
      ? parseAnyKeyFile(new TextDecoder().decode(material.secret), 'key material')
      : createWatermarkKey({
          secret: material.secret,
          scheme: material.scheme as SchemeParams,
          tokenizer: material.tokenizer,
        });
  if (key.keyId !== material.keyId) throw new Error(`key material of ${material.keyId} rebuilt another key`);
  return key;
}

/** The log's signing key as it crosses to a worker (in `workerData`, once). */
export interface SigningKeyMaterial {
  readonly name: string;
  readonly keyId: string;
  readonly privateKey: Uint8Array;
}

export function signingKeyMaterialOf(key: SigningKey): SigningKeyMaterial {
  return { name: key.name, keyId: key.keyId, privateKey: Uint8Array.from(key.privateKey) };
}

export function signingKeyFromMaterial(material: SigningKeyMaterial): SigningKey {
  const key = generateSigningKey(material.name, material.privateKey);
  if (key.keyId !== material.keyId) throw new Error(`key material of ${material.keyId} rebuilt another key`);
  return key;
}

/**
 * The keys the work uses: the serving key, the key file's key from which epoch sub-keys derive (an
 * engine's key has none: it is its own root), and the key that signs evidence reports.
 */
export interface WorkKeys {
  readonly watermarkKey: AnyWatermarkKey;
  readonly rootWatermarkKey: AnyWatermarkKey;
  readonly logSigningKey: SigningKey;
}

export type { KeyRef } from '../provenance/verify.ts';

export interface DetectTask {
  readonly kind: 'detect';
  readonly text?: string;
  readonly tokens?: readonly number[];
  readonly prompt?: string | readonly number[];
  readonly fpr?: number;
  readonly window: boolean;
}

export interface ScanTask {
  readonly kind: 'scan';
  readonly documents: readonly {
    readonly text: string;
    readonly prompt?: string;
    readonly source?: string;
  }[];
  readonly fakeKeys?: number;
  readonly fakeKeySeed?: string;
  readonly alpha?: number;
}

export type WorkTask =
  | { readonly kind: 'encode'; readonly text: string; readonly param: string }
  | DetectTask
  | { readonly kind: 'verify'; readonly input: VerifyInput; readonly keys: readonly KeyRef[] }
  | { readonly kind: 'sign'; readonly predicate: EvidencePredicate; readonly text: string }
  | ScanTask;

export interface ScanResult extends AnyScanReport {
  readonly fakeKeyLog10P: readonly number[];
  readonly fakeKeyRandomizedP: readonly number[];
}

/** What each task kind answers. */
export interface WorkValues {
  readonly encode: Uint32Array;
  readonly detect: AnyDocumentResult;
  readonly verify: VerifyAnalysis;
  readonly sign: DsseEnvelope;
  readonly scan: ScanResult;
}

/** A 4xx the client caused: it crosses threads as data (an Error loses its fields on the way). */
export interface ClientFailure {
  readonly status: 400;
  readonly code: GatewayErrorCode;
  readonly message: string;
  readonly param: string | null;
}

export type WorkOutcome<K extends WorkTask['kind'] = WorkTask['kind']> =
  | { readonly ok: true; readonly value: WorkValues[K] }
  | { readonly ok: false; readonly failure: ClientFailure };

/** How much text a task holds (UTF-16 code units plus token ids): what the inline threshold compares. */
export function workSize(task: WorkTask): number {
  const length = (value: string | readonly number[] | undefined) => value?.length ?? 0;
  switch (task.kind) {
    case 'encode':
      return task.text.length;
    case 'detect':
      return length(task.text) + length(task.tokens) + length(task.prompt);
    case 'verify':
      return length(task.input.text) + length(task.input.tokens) + length(task.input.prompt);
    case 'sign':
      return task.text.length + (task.predicate.tokens?.statuses.length ?? 0);
    case 'scan':
      return task.documents.reduce(
        (sum, document) => sum + document.text.length + length(document.prompt),
        0,
      );
  }
}

export interface WorkContext {
  readonly keys: WorkKeys;
  readonly tokenizer: Tokenizer;
  /**
   * The detector for the serving key (cached per option set). An engine's key gives an AnyKeyTextDetector,
   * which refuses `window` (InputError TM_ERR_USAGE).
   */
  detector(options: { fpr?: number; window: boolean }): TextDetector | AnyKeyTextDetector;
  run(task: WorkTask): Promise<WorkOutcome>;
}

/** The detectors of a verification; `windowed` is null when an engine's key is among the keys. */
interface VerifyPair {
  readonly plain: TextDetector | AnyKeyTextDetector;
  readonly windowed: TextDetector | null;
}

/** An engine's key in a scan; its family must pool units over a corpus (`units` and `tail`). */
function foreignScanKey(key: ForeignWatermarkKey, alpha: number): ForeignScanKey {
  const family = foreignKeyType(key);
  const scorer = family.createScorer(key, alpha);
  if (typeof scorer.units !== 'function' || typeof scorer.tail !== 'function') {
    throw new InputError(
      'TM_ERR_UNSUPPORTED_KEY',
      `scans do not support ${foreignLabel(key)} keys yet (key ${key.keyId})`,
    );
  }
  return {
    scorer: scorer as ForeignScanKey['scorer'],
    label: family.label,
    parameters: family.parameters(key),
  };
}

export function createWorkContext(keys: WorkKeys): WorkContext {
  const detectors = new Map<string, TextDetector | AnyKeyTextDetector>();
  const verifyDetectors = new Map<string, VerifyPair>();
  const subkeys = new Map<string, WatermarkKey>();

  const detector = (options: { fpr?: number; window: boolean }): TextDetector | AnyKeyTextDetector => {
    const cacheKey = `${options.fpr ?? ''}/${options.window}`;
    let found = detectors.get(cacheKey);
    if (found === undefined) {
      found = createTextDetector({
        keys: [keys.watermarkKey],
        window: options.window,
        ...(options.fpr === undefined ? {} : { fpr: options.fpr }),
      });
      if (detectors.size < 64) detectors.set(cacheKey, found);
    }
    return found;
  };

  const keyOf = (ref: KeyRef): AnyWatermarkKey => {
    if (ref.kind === 'current') return keys.watermarkKey;
    if (ref.kind === 'root') return keys.rootWatermarkKey;
    const root = keys.rootWatermarkKey;
    if (isForeignKey(root)) throw new Error(`an engine's key (${root.keyId}) has no sub-keys`);
    let key = subkeys.get(ref.label);
    if (key === undefined) {
      key = keyForStoredEpoch(root as WatermarkKey, ref.label);
      if (subkeys.size < 256) subkeys.set(ref.label, key);
    }
    return key;
  };

  const detectorsFor = (refs: readonly KeyRef[], fpr: number) => {
    const list = refs.map(keyOf);
    const cacheKey = `${fpr}/${list.map((key) => key.keyId).join(',')}`;
    let pair = verifyDetectors.get(cacheKey);
    if (pair === undefined) {
      // Windowed search is tracemark's (spec §5.3): engines' keys are tested on the whole text only.
      const tracemarkOnly = !list.some(isForeignKey);
      pair = {
        plain: createTextDetector({ keys: list, fpr }),
        windowed: tracemarkOnly
          ? createTextDetector({ keys: list as WatermarkKey[], fpr, window: true })
          : null,
      };
      if (verifyDetectors.size < 32) verifyDetectors.set(cacheKey, pair);
    }
    return { list, ...pair };
  };

  const servingTokenizer = detector({ window: false }).tokenizer;
  if (servingTokenizer === null) {
    throw new Error(
      `the serving key ${keys.watermarkKey.keyId} is bound to a tokenizer tracemark does not ship`,
    );
  }
  const tokenizer: Tokenizer = servingTokenizer;

  const scan = async (task: ScanTask): Promise<ScanResult> => {
    const documents: ScanDocument[] = task.documents.map((document, index) => ({
      tokens: onClientInput(`documents[${index}].text`, () => tokenizer.encodeFast(document.text)),
      ...(document.prompt === undefined
        ? {}
        : {
            prompt: onClientInput(`documents[${index}].prompt`, () => tokenizer.encodeFast(document.prompt!)),
          }),
      source: document.source ?? `document ${index + 1}`,
    }));
    const seed = task.fakeKeySeed ?? DEFAULT_FAKE_KEY_SEED;
    const servingKey = keys.watermarkKey;
    if (!isForeignKey(servingKey) && isGumbelKey(servingKey)) {
      // A Gumbel key: the exact Gamma tail of its corpus-wide score, no fake keys (@tracemark/extraction gumbel-scan.ts).
      const report = await scanCorpusAnyKeys({
        documents,
        keys: [servingKey],
        specialTokenIds: tokenizer.specialTokenIds,
        fakeKeySeed: seed,
        ...(task.alpha === undefined ? {} : { alpha: task.alpha }),
      });
      return { ...report, fakeKeyLog10P: [], fakeKeyRandomizedP: [] };
    }
    if (isForeignKey(servingKey)) {
      // An engine's key: the exact null of its score, no fake keys (@tracemark/extraction foreign-scan.ts).
      const report = await scanCorpusAnyKeys({
        documents,
        keys: [foreignScanKey(servingKey, task.alpha ?? DEFAULT_SCAN_ALPHA)],
        specialTokenIds: tokenizer.specialTokenIds,
        fakeKeySeed: seed,
        ...(task.alpha === undefined ? {} : { alpha: task.alpha }),
      });
      return { ...report, fakeKeyLog10P: [], fakeKeyRandomizedP: [] };
    }
    const fakeKeyResults: FakeKeyCounts[] = [];
    const tracemarkKey = servingKey as WatermarkKey;
    const report = await scanCorpus({
      documents,
      keys: [tracemarkKey],
      specialTokenIds: tokenizer.specialTokenIds,
      fakeKeys: task.fakeKeys ?? DEFAULT_FAKE_KEYS,
      fakeKeySeed: seed,
      ...(task.alpha === undefined ? {} : { alpha: task.alpha }),
      runFakeKeyJobs: async (jobs) => {
        const results = jobs.map(runFakeKeyJob);
        fakeKeyResults.push(...results);
        return results;
      },
    });
    // One key, so every fake-key job belongs to its calibration.
    const fake = fakeKeyPValues(fakeKeyResults, tracemarkKey.scheme.gammaEffective, seed);
    return { ...report, fakeKeyLog10P: fake.log10P, fakeKeyRandomizedP: fake.randomized };
  };

  const compute = async (task: WorkTask): Promise<WorkValues[WorkTask['kind']]> => {
    switch (task.kind) {
      case 'encode':
        return onClientInput(task.param, () => tokenizer.encodeFast(task.text));
      case 'detect': {
        const found = detector({
          ...(task.fpr === undefined ? {} : { fpr: task.fpr }),
          window: task.window,
        });
        const input = {
          source: 'request',
          ...(task.prompt === undefined ? {} : { prompt: task.prompt as string | number[] }),
        };
        if (task.text !== undefined) {
          const ids = onClientInput('text', () => tokenizer.encodeFast(task.text!));
          return onClientInput('prompt', () => found.detectTokens(ids, input));
        }
        return onClientInput('prompt', () => found.detectTokens(task.tokens!, input));
      }
      case 'verify': {
        const { list, plain, windowed } = detectorsFor(task.keys, task.input.fpr ?? DEFAULT_FPR);
        return analyzeVerification({ keys: list, plain, windowed }, task.input);
      }
      case 'sign':
        return signEvidence(task.predicate, keys.logSigningKey, { text: task.text });
      case 'scan':
        return scan(task);
    }
  };

  const run = async (task: WorkTask): Promise<WorkOutcome> => {
    try {
      return { ok: true, value: await compute(task) };
    } catch (error) {
      const failure = failureOf(error, task);
      if (failure === null) throw error;
      return { ok: false, failure };
    }
  };

  return { keys, tokenizer, detector, run };
}

function failureOf(error: unknown, task: WorkTask): ClientFailure | null {
  if (error instanceof InputError) {
    const field =
      error.field ??
      (task.kind === 'detect'
        ? task.text !== undefined
          ? 'text'
          : 'tokens'
        : task.kind === 'verify'
          ? task.input.text !== undefined
            ? 'text'
            : 'tokens'
          : null);
    return {
      status: 400,
      code: error.code === 'TM_ERR_INVALID_TOKENS' ? 'TM_ERR_INVALID_TOKENS' : 'TM_ERR_INVALID_REQUEST',
      message: error.message,
      param: field,
    };
  }
  const param = clientInputParam(error);
  if (param !== null) {
    return {
      status: 400,
      code: 'TM_ERR_UNPROCESSABLE_INPUT',
      message: unprocessableMessage(param, error as Error),
      param,
    };
  }
  return null;
}
