/**
 * Keys for the watermark that Hugging Face transformers' `WatermarkLogitsProcessor` embeds (KGW;
 * docs/spec/foreign-transformers.md §8–§9): validation against what transformers accepts, the public
 * key id, the key file, and the scorer `tracemark detect` uses.
 */
import { createHash } from 'node:crypto';
import {
  createTransformersKgwDetector,
  DEFAULT_MISS_RATE,
  log10BinomialSf,
  type ResolvedVerdictOptions,
  resolveTransformersKgwParams,
  type TransformersKgwDetection,
  type TransformersKgwDetector,
  type TransformersKgwParams,
  type TransformersSeedingScheme,
  zScore,
} from '@tracemark/core';
import { DEFAULT_TOKENIZER_ID, getTokenizer, isTokenizerId } from '@tracemark/tokenizers';
import { InputError } from './errors.ts';
import {
  type ForeignDedup,
  type ForeignKeyBase,
  ForeignKeyError,
  ForeignKeyFileError,
  type ForeignKeygenFlag,
  type ForeignKeyScore,
  type ForeignKeyScorer,
  type ForeignKeyType,
  type ForeignUnits,
} from './foreign.ts';
import { vllmAlternative } from './vllm-detection.ts';

export const TRANSFORMERS_KEY_ID_PREFIX = 'tfkgw1_';
export const TRANSFORMERS_KEY_FILE_FORMAT = 'tracemark-transformers-key';
export const TRANSFORMERS_SCHEME_NAME = 'transformers:kgw';

/** A transformers KGW key: `WatermarkingConfig`, the model's vocabulary size, and the public id. Holds the hash key. */
export interface TransformersWatermarkKey extends ForeignKeyBase {
  readonly kind: 'transformers';
  /** `tfkgw1_` + 24 hex digits: a one-way hash of the key material, safe to print. */
  readonly keyId: string;
  readonly scheme: 'kgw';
  readonly seedingScheme: TransformersSeedingScheme;
  /** transformers' `hashing_key`: the secret. */
  readonly hashKey: bigint;
  readonly gamma: number;
  readonly delta: number;
  readonly contextWidth: number;
  readonly tokenizer: string;
  /** The model config's `vocab_size`: torch.randperm's length, so the green lists depend on it. */
  readonly vocabSize: number;
}

/** What a key is made from; the defaults are transformers' (the hash key has none here: it is the secret). */
export interface TransformersKeyOptions {
  readonly hashKey: bigint;
  readonly seedingScheme?: TransformersSeedingScheme;
  readonly gamma?: number;
  readonly delta?: number;
  readonly contextWidth?: number;
  /** Default cl100k_base; a model's tokenizer id for one tracemark does not ship. */
  readonly tokenizer?: string;
  /** Required unless the tokenizer is shipped (then its size is the default; a padded model config may be larger). */
  readonly vocabSize?: number;
}

const MAX_TOKENIZER_LENGTH = 200;
const MAX_VOCAB_SIZE = 214_748_363;
const MAX_CONTEXT_WIDTH = 4096;

const KEYGEN_FLAGS: readonly ForeignKeygenFlag[] = Object.freeze([
  { flag: '--seeding-scheme <scheme>', description: 'transformers: lefthash (default) or selfhash' },
  { flag: '--gamma <g>', description: 'transformers: greenlist_ratio, default 0.25' },
  { flag: '--delta <d>', description: 'transformers: bias added to green logits, default 2' },
  { flag: '--context-width <h>', description: 'transformers: context_width, default 1' },
]);
const FLAG_NAMES: readonly string[] = Object.freeze([
  'seeding-scheme',
  'gamma',
  'delta',
  'context-width',
  'tokenizer',
  'vocab-size',
]);

function checkTokenizer(tokenizer: unknown): string {
  if (typeof tokenizer !== 'string' || tokenizer.length === 0 || tokenizer.length > MAX_TOKENIZER_LENGTH) {
    throw new ForeignKeyError(
      'tokenizer',
      `must be a non-empty string of at most ${MAX_TOKENIZER_LENGTH} characters`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(tokenizer))
    throw new ForeignKeyError('tokenizer', 'must not contain control characters');
  return tokenizer;
}

function finite(parameter: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new ForeignKeyError(parameter, 'must be a number');
  return value;
}

/**
 * Validates against what transformers accepts and builds the key, every default explicit. Throws
 * {@link ForeignKeyError} naming the keygen flag (`secret` for the hash key); no message holds the key.
 */
export function createTransformersWatermarkKey(options: TransformersKeyOptions): TransformersWatermarkKey {
  if (options === null || typeof options !== 'object') throw new TypeError('options: expected an object');
  const seedingScheme = options.seedingScheme ?? 'lefthash';
  if (seedingScheme !== 'lefthash' && seedingScheme !== 'selfhash') {
    throw new ForeignKeyError('seeding-scheme', 'must be lefthash or selfhash');
  }
  const { hashKey } = options;
  if (typeof hashKey !== 'bigint') throw new ForeignKeyError('secret', 'must be an integer');
  const bits = seedingScheme === 'selfhash' ? 63 : 64;
  if (hashKey < -(1n << 63n) || hashKey >= 1n << BigInt(bits)) {
    throw new ForeignKeyError(
      'secret',
      `must be an integer from −2^63 to 2^${bits} − 1 (${seedingScheme === 'selfhash' ? 'selfhash multiplies it in signed 64-bit torch arithmetic' : "transformers seeds torch's generator with it"})`,
    );
  }
  const gamma = finite('gamma', options.gamma ?? 0.25);
  if (!(gamma > 0 && gamma < 1))
    throw new ForeignKeyError('gamma', 'must be a number strictly between 0 and 1');
  const delta = finite('delta', options.delta ?? 2);
  const contextWidth = options.contextWidth ?? 1;
  if (!Number.isInteger(contextWidth) || contextWidth < 1 || contextWidth > MAX_CONTEXT_WIDTH) {
    throw new ForeignKeyError('context-width', `must be an integer from 1 to ${MAX_CONTEXT_WIDTH}`);
  }
  const tokenizer = checkTokenizer(options.tokenizer ?? DEFAULT_TOKENIZER_ID);
  const shippedSize = isTokenizerId(tokenizer) ? getTokenizer(tokenizer).vocabSize : null;
  const vocabSize = options.vocabSize ?? shippedSize;
  if (vocabSize === null) {
    throw new ForeignKeyError(
      'vocab-size',
      `is required for a tokenizer tracemark does not ship: the model config's vocab_size (torch.randperm's length)`,
    );
  }
  if (!Number.isInteger(vocabSize) || vocabSize < 2 || vocabSize > MAX_VOCAB_SIZE) {
    throw new ForeignKeyError('vocab-size', `must be an integer from 2 to ${MAX_VOCAB_SIZE}`);
  }
  if (shippedSize !== null && vocabSize < shippedSize) {
    throw new ForeignKeyError('vocab-size', `must be at least ${tokenizer}'s ${shippedSize} ids`);
  }
  if (Math.trunc(vocabSize * gamma) < 1)
    throw new ForeignKeyError('gamma', 'gives an empty green list at this vocab-size');
  const material = { seedingScheme, hashKey, gamma, contextWidth, vocabSize };
  return Object.freeze({
    kind: 'transformers',
    keyId: transformersKeyIdOf(material),
    scheme: 'kgw',
    ...material,
    delta,
    tokenizer,
  });
}

/**
 * keyId = "tfkgw1_" ‖ hex(SHA-256(UTF-8(JSON of ["tracemark/transformers-key-id/v1", "kgw",
 * seedingScheme, hashKey in decimal, gamma, contextWidth, vocabSize]))[0..12]): what decides the green
 * lists. δ and the tokenizer are not part of it.
 */
export function transformersKeyIdOf(
  key: Pick<TransformersWatermarkKey, 'seedingScheme' | 'hashKey' | 'gamma' | 'contextWidth' | 'vocabSize'>,
): string {
  const canonical = JSON.stringify([
    'tracemark/transformers-key-id/v1',
    'kgw',
    key.seedingScheme,
    key.hashKey.toString(10),
    key.gamma,
    key.contextWidth,
    key.vocabSize,
  ]);
  return (
    TRANSFORMERS_KEY_ID_PREFIX + createHash('sha256').update(canonical, 'utf8').digest('hex').slice(0, 24)
  );
}

/** The core detector's parameters for a key. */
export function transformersDetectorParams(key: TransformersWatermarkKey): TransformersKgwParams {
  return {
    seedingScheme: key.seedingScheme,
    hashKey: key.hashKey,
    gamma: key.gamma,
    delta: key.delta,
    contextWidth: key.contextWidth,
    vocabSize: key.vocabSize,
  };
}

function parameters(key: TransformersWatermarkKey): Record<string, string | number> {
  return {
    seedingScheme: key.seedingScheme,
    gamma: key.gamma,
    delta: key.delta,
    contextWidth: key.contextWidth,
    tokenizer: key.tokenizer,
    vocabSize: key.vocabSize,
  };
}

const FILE_FIELDS: readonly string[] = Object.freeze([
  'format',
  'version',
  'keyId',
  'scheme',
  'seedingScheme',
  'hashKey',
  'gamma',
  'delta',
  'contextWidth',
  'tokenizer',
  'vocabSize',
  'createdAt',
]);
const FIELD_OF_FLAG: Readonly<Record<string, string>> = Object.freeze({
  'seeding-scheme': 'seedingScheme',
  secret: 'hashKey',
  gamma: 'gamma',
  delta: 'delta',
  'context-width': 'contextWidth',
  tokenizer: 'tokenizer',
  'vocab-size': 'vocabSize',
});

function parseFile(record: Readonly<Record<string, unknown>>): TransformersWatermarkKey {
  const fail = (message: string): never => {
    throw new ForeignKeyFileError(`key file: ${message}`);
  };
  if (record.format !== TRANSFORMERS_KEY_FILE_FORMAT)
    fail(`"format" must be "${TRANSFORMERS_KEY_FILE_FORMAT}"`);
  if (record.version !== 1) fail(`unsupported "version" ${JSON.stringify(record.version) ?? 'undefined'}`);
  for (const name of Object.keys(record)) {
    if (!FILE_FIELDS.includes(name)) fail(`unknown field ${JSON.stringify(name)}`);
  }
  for (const name of FILE_FIELDS) {
    if (record[name] === undefined) fail(`"${name}" is missing`);
  }
  if (record.scheme !== 'kgw') fail('"scheme" must be "kgw"');
  if (typeof record.hashKey !== 'string' || !/^-?(0|[1-9][0-9]{0,19})$/.test(record.hashKey)) {
    fail('"hashKey" must be a decimal integer in a string');
  }
  if (typeof record.createdAt !== 'string') fail('"createdAt" must be a string');
  let key: TransformersWatermarkKey;
  try {
    key = createTransformersWatermarkKey({
      hashKey: BigInt(record.hashKey as string),
      seedingScheme: record.seedingScheme as TransformersSeedingScheme,
      gamma: record.gamma as number,
      delta: record.delta as number,
      contextWidth: record.contextWidth as number,
      tokenizer: record.tokenizer as string,
      vocabSize: record.vocabSize as number,
    });
  } catch (error) {
    if (error instanceof ForeignKeyError)
      return fail(`"${FIELD_OF_FLAG[error.parameter] ?? error.parameter}" ${error.detail}`);
    throw error;
  }
  if (record.keyId !== key.keyId)
    fail('"keyId" does not match the key material (the file is corrupt or was edited)');
  return key;
}

function serialize(key: TransformersWatermarkKey, createdAt: Date = new Date()): string {
  const file = {
    format: TRANSFORMERS_KEY_FILE_FORMAT,
    version: 1,
    keyId: key.keyId,
    scheme: key.scheme,
    hashKey: key.hashKey.toString(10),
    ...parameters(key),
    createdAt: createdAt.toISOString(),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function parseNumberFlag(name: string, text: string, integer: boolean): number {
  const pattern = integer ? /^(0|[1-9][0-9]{0,9})$/ : /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;
  if (!pattern.test(text.trim()))
    throw new ForeignKeyError(name, integer ? 'must be an integer' : 'must be a number');
  return Number(text.trim());
}

function fromKeygen(
  schemeName: string,
  flags: Readonly<Record<string, string>>,
  secret: string | null,
): TransformersWatermarkKey {
  if (schemeName !== TRANSFORMERS_SCHEME_NAME) {
    throw new ForeignKeyError('scheme', `must be ${TRANSFORMERS_SCHEME_NAME}`);
  }
  for (const name of Object.keys(flags)) {
    if (!FLAG_NAMES.includes(name))
      throw new ForeignKeyError(name, `does not apply to ${TRANSFORMERS_SCHEME_NAME} keys`);
  }
  if (secret === null) {
    throw new ForeignKeyError(
      'secret',
      "is required: transformers' hashing_key (its documented default is 15485863; give it explicitly to read text marked with the default)",
    );
  }
  const text = secret.trim();
  const match = /^(-?)(0|[1-9][0-9]{0,19}|0[xX][0-9a-fA-F]{1,16})$/.exec(text);
  if (match === null) throw new ForeignKeyError('secret', 'must be a decimal or 0x-hex integer');
  const magnitude = BigInt(match[2]!);
  const options: {
    -readonly [K in keyof TransformersKeyOptions]: TransformersKeyOptions[K];
  } = { hashKey: match[1] === '-' ? -magnitude : magnitude };
  const scheme = flags['seeding-scheme'];
  if (scheme !== undefined) {
    if (scheme !== 'lefthash' && scheme !== 'selfhash')
      throw new ForeignKeyError('seeding-scheme', 'must be lefthash or selfhash');
    options.seedingScheme = scheme;
  }
  if (flags.gamma !== undefined) options.gamma = parseNumberFlag('gamma', flags.gamma, false);
  if (flags.delta !== undefined) options.delta = parseNumberFlag('delta', flags.delta, false);
  if (flags['context-width'] !== undefined) {
    options.contextWidth = parseNumberFlag('context-width', flags['context-width'], true);
  }
  if (flags.tokenizer !== undefined) options.tokenizer = flags.tokenizer;
  if (flags['vocab-size'] !== undefined)
    options.vocabSize = parseNumberFlag('vocab-size', flags['vocab-size'], true);
  return createTransformersWatermarkKey(options);
}

/** The scorer of a transformers key at target false-positive rate `fpr` (spec §10). */
export function createTransformersKeyScorer(
  key: TransformersWatermarkKey,
  fpr: number,
): ForeignKeyScorer<TransformersWatermarkKey> {
  let detector: TransformersKgwDetector;
  try {
    detector = createTransformersKgwDetector(transformersDetectorParams(key));
  } catch {
    // The key was validated when it was made; the core's message is not passed on.
    throw new InputError('TM_ERR_KEY_FILE', `key ${key.keyId}: parameters transformers does not accept`);
  }
  const { nullGreenProbability } = resolveTransformersKgwParams(transformersDetectorParams(key));
  const verdictOptions: ResolvedVerdictOptions = {
    fpr,
    missRate: DEFAULT_MISS_RATE,
    alternative: vllmAlternative(nullGreenProbability, key.delta),
  };
  const detect = (ids: ArrayLike<number>, dedup: ForeignDedup): TransformersKgwDetection => {
    try {
      return detector.detect(ids, { dedup });
    } catch (error) {
      // The core names the id and the vocabulary; its messages never hold the hash key.
      if (error instanceof RangeError || error instanceof TypeError) {
        throw new InputError('TM_ERR_INVALID_TOKENS', error.message);
      }
      throw error;
    }
  };
  const score = (ids: ArrayLike<number>, dedup: ForeignDedup): ForeignKeyScore => {
    const detection = detect(ids, dedup);
    const n = detection.numScored;
    return {
      numTokens: ids.length,
      numScored: n,
      score: detection.score,
      numGreen: detection.score,
      greenFraction: n === 0 ? 0 : detection.score / n,
      z: zScore(detection.score, n, nullGreenProbability),
      log10P: detection.log10PValue,
      peerLog10P: n === 0 ? 0 : detection.peerLog10PValue,
    };
  };
  // The ids the generator seed of the token at `position` comes from (spec §3, §6).
  const selfhash = key.seedingScheme === 'selfhash';
  const seedWindow = (ids: ArrayLike<number>, position: number): number[] => {
    const from = selfhash ? position + 1 - key.contextWidth : position - key.contextWidth;
    return Array.prototype.slice.call(ids, from, selfhash ? position + 1 : position) as number[];
  };
  const units = (ids: ArrayLike<number>): ForeignUnits => {
    // `strict` scores each (32-bit generator seed, token) pair once: the green bit depends on nothing else.
    const detection = detect(ids, 'strict');
    const keys = detection.positions.map(
      (position) => `${detector.generatorSeed(seedWindow(ids, position))}:${ids[position]}`,
    );
    return {
      keys,
      values: Float64Array.from(detection.greenFlags),
      positions: Uint32Array.from(detection.positions),
    };
  };
  const tail = (total: number, count: number): number => {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`count: expected a non-negative integer, got ${String(count)}`);
    }
    if (count === 0 || !(total > 0)) return 0;
    // Distinct (seed, token) pairs: Bernoulli(g/V) bits under the null, negatively correlated at one seed (spec §11).
    return Math.min(0, log10BinomialSf(Math.round(total), count, nullGreenProbability));
  };
  return Object.freeze({
    key,
    schemeName: TRANSFORMERS_SCHEME_NAME,
    nullGreenProbability,
    verdictOptions,
    score,
    units,
    tail,
  });
}

/** The transformers family, for the foreign key registry. */
export const transformersKeyType: ForeignKeyType<TransformersWatermarkKey> = Object.freeze({
  kind: 'transformers',
  label: 'transformers',
  fileFormat: TRANSFORMERS_KEY_FILE_FORMAT,
  schemeNames: Object.freeze([TRANSFORMERS_SCHEME_NAME]),
  keygenFlags: KEYGEN_FLAGS,
  secretDescription: "transformers' hashing_key, an integer from −2^63 to 2^64 − 1 (selfhash: below 2^63)",
  fromKeygen,
  parse: parseFile,
  serialize,
  parameters,
  createScorer: createTransformersKeyScorer,
});
