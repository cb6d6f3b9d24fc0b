/**
 * The CPU-heavy work on client text as plain functions of a context: tokenizing prompts, detection, the
 * analysis half of verification and corpus scans. The same functions run inline (small inputs) and in the
 * worker threads (`worker.ts`), so a number never depends on where it was computed; detection is always
 * `createTextDetector` of @tracemark/detection, the path of `tracemark detect --json`.
 */
import {
  createWatermarkKey,
  DEFAULT_FPR,
  deriveSubkey,
  type SchemeName,
  type SchemeParams,
  type WatermarkKey,
} from '@tracemark/core';
import { createTextDetector, type DocumentResult, InputError, type TextDetector } from '@tracemark/detection';
import {
  DEFAULT_FAKE_KEY_SEED,
  DEFAULT_FAKE_KEYS,
  type FakeKeyCounts,
  fakeKeyPValues,
  runFakeKeyJob,
  type ScanDocument,
  type ScanReport,
  scanCorpus,
} from '@tracemark/extraction';
import {
  type DsseEnvelope,
  type EvidencePredicate,
  generateSigningKey,
  type SigningKey,
  signEvidence,
} from '@tracemark/provenance';
import type { Tokenizer } from '@tracemark/tokenizers';
import { clientInputParam, type GatewayErrorCode, onClientInput, unprocessableMessage } from '../errors.ts';
import { analyzeVerification, type VerifyAnalysis, type VerifyInput } from '../provenance/verify.ts';

/** A watermark key as it crosses to a worker: the secret travels once, in `workerData`, never in a task. */
export interface KeyMaterial {
  readonly keyId: string;
  readonly secret: Uint8Array;
  readonly scheme: { readonly name: SchemeName; contextWidth: number; gamma: number; delta: number };
  readonly tokenizer: string;
}

export function keyMaterialOf(key: WatermarkKey): KeyMaterial {
  const { name, contextWidth, gamma, delta } = key.scheme;
  return {
    keyId: key.keyId,
    secret: Uint8Array.from(key.secret),
    scheme: { name, contextWidth, gamma, delta },
    tokenizer: key.tokenizer,
  };
}

export function keyFromMaterial(material: KeyMaterial): WatermarkKey {
  const key = createWatermarkKey({
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
 * The keys the work uses: the serving key, the key file's key from which epoch sub-keys derive, and the
 * key that signs evidence reports.
 */
export interface WorkKeys {
  readonly watermarkKey: WatermarkKey;
  readonly rootWatermarkKey: WatermarkKey;
  readonly logSigningKey: SigningKey;
}

/** A watermark key named without its secret: the serving key, the root key, or a sub-key of the root. */
export type KeyRef =
  | { readonly kind: 'current' }
  | { readonly kind: 'root' }
  | { readonly kind: 'subkey'; readonly label: string };

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

export interface ScanResult extends ScanReport {
  readonly fakeKeyLog10P: readonly number[];
  readonly fakeKeyRandomizedP: readonly number[];
}

/** What each task kind answers. */
export interface WorkValues {
  readonly encode: Uint32Array;
  readonly detect: DocumentResult;
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
  /** The detector for the serving key (cached per option set). */
  detector(options: { fpr?: number; window: boolean }): TextDetector;
  run(task: WorkTask): Promise<WorkOutcome>;
}

export function createWorkContext(keys: WorkKeys): WorkContext {
  const detectors = new Map<string, TextDetector>();
  const verifyDetectors = new Map<string, { plain: TextDetector; windowed: TextDetector }>();
  const subkeys = new Map<string, WatermarkKey>();

  const detector = (options: { fpr?: number; window: boolean }): TextDetector => {
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

  const keyOf = (ref: KeyRef): WatermarkKey => {
    if (ref.kind === 'current') return keys.watermarkKey;
    if (ref.kind === 'root') return keys.rootWatermarkKey;
    let key = subkeys.get(ref.label);
    if (key === undefined) {
      key = deriveSubkey(keys.rootWatermarkKey, ref.label);
      if (subkeys.size < 256) subkeys.set(ref.label, key);
    }
    return key;
  };

  const detectorsFor = (refs: readonly KeyRef[], fpr: number) => {
    const list = refs.map(keyOf);
    const cacheKey = `${fpr}/${list.map((key) => key.keyId).join(',')}`;
    let pair = verifyDetectors.get(cacheKey);
    if (pair === undefined) {
      pair = {
        plain: createTextDetector({ keys: list, fpr }),
        windowed: createTextDetector({ keys: list, fpr, window: true }),
      };
      if (verifyDetectors.size < 32) verifyDetectors.set(cacheKey, pair);
    }
    return { list, ...pair };
  };

  const tokenizer = detector({ window: false }).tokenizer;

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
    const fakeKeyResults: FakeKeyCounts[] = [];
    const seed = task.fakeKeySeed ?? DEFAULT_FAKE_KEY_SEED;
    const report = await scanCorpus({
      documents,
      keys: [keys.watermarkKey],
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
    const fake = fakeKeyPValues(fakeKeyResults, keys.watermarkKey.scheme.gammaEffective, seed);
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
          const ids = onClientInput('text', () => found.tokenizer.encodeFast(task.text!));
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
      task.kind === 'detect'
        ? task.text !== undefined
          ? 'text'
          : 'tokens'
        : task.kind === 'verify'
          ? task.input.text !== undefined
            ? 'text'
            : 'tokens'
          : null;
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
