/**
 * Keys for the SynthID-Text watermark as transformers embeds it (docs/spec/foreign-synthid.md §9):
 * validation against what transformers accepts, the public key id, the key file and the scorer.
 */
import { createHash } from 'node:crypto';
import {
  createSynthidDetector,
  DEFAULT_MISS_RATE,
  log10BinomialSf,
  type ResolvedVerdictOptions,
  type SynthidDetector,
  type SynthidParams,
} from '@tracemark/core';
import { DEFAULT_TOKENIZER_ID, isTokenizerId } from '@tracemark/tokenizers';
import { InputError } from './errors.ts';
import {
  type ForeignDedup,
  type ForeignKeyBase,
  ForeignKeyError,
  ForeignKeyFileError,
  type ForeignKeyScore,
  type ForeignKeyScorer,
  type ForeignKeyType,
  type ForeignUnits,
} from './foreign.ts';
import { strictPacking } from './packed-units.ts';

export const SYNTHID_KEY_ID_PREFIX: string = 'synthid1_';
export const SYNTHID_KEY_FILE_FORMAT: string = 'tracemark-synthid-key';
export const SYNTHID_SCHEME_NAME: string = 'synthid:tournament';

const MAX_DEPTH = 1024;
const MAX_NGRAM_LEN = 1024;
const MAX_TABLE_SIZE = 2 ** 24;
const MAX_HISTORY = 2 ** 24;
const MAX_VOCAB_SIZE = 2 ** 31;
const MAX_TOKENIZER_LENGTH = 200;
const INT64_MIN = -(1n << 63n);
const INT64_LIMIT = 1n << 63n;

/** A SynthID-Text key: transformers' `SynthIDTextWatermarkingConfig`, every default explicit. Holds the keys. */
export interface SynthidWatermarkKey extends ForeignKeyBase {
  readonly kind: 'synthid';
  /** `synthid1_` + 24 hex digits: a one-way hash of the key material, safe to print. */
  readonly keyId: string;
  readonly scheme: 'tournament';
  /** The secret: one signed 64-bit key per tournament layer. */
  readonly keys: readonly bigint[];
  readonly ngramLen: number;
  readonly samplingTableSize: number;
  readonly samplingTableSeed: bigint;
  readonly contextHistorySize: number;
  readonly skipFirstNgramCalls: boolean;
  /** Detection: the first occurrence of this id and what follows are not scored; null: no EOS mask. */
  readonly eosTokenId: number | null;
  readonly tokenizer: string;
  readonly vocabSize: number | null;
}

export interface SynthidKeyOptions {
  readonly keys: readonly bigint[];
  /** Required: transformers has no default (its examples use 5). */
  readonly ngramLen: number;
  readonly samplingTableSize?: number;
  readonly samplingTableSeed?: bigint;
  readonly contextHistorySize?: number;
  readonly skipFirstNgramCalls?: boolean;
  readonly eosTokenId?: number;
  readonly tokenizer?: string;
  readonly vocabSize?: number;
}

function integerIn(parameter: string, value: unknown, low: number, high: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < low || value > high) {
    throw new ForeignKeyError(parameter, `must be an integer from ${low} to ${high}`);
  }
  return value;
}

function checkTokenizer(tokenizer: unknown): string {
  if (typeof tokenizer !== 'string' || tokenizer.length === 0 || tokenizer.length > MAX_TOKENIZER_LENGTH) {
    throw new ForeignKeyError(
      'tokenizer',
      `must be a non-empty string of at most ${MAX_TOKENIZER_LENGTH} characters`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(tokenizer)) {
    throw new ForeignKeyError('tokenizer', 'must not contain control characters');
  }
  return tokenizer;
}

/**
 * Validates a configuration against what transformers accepts and builds the key. Throws
 * {@link ForeignKeyError} naming the keygen flag (`secret` for the keys); no message holds a key.
 */
export function createSynthidWatermarkKey(options: SynthidKeyOptions): SynthidWatermarkKey {
  if (options === null || typeof options !== 'object') throw new TypeError('options: expected an object');
  const keys = options.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_DEPTH) {
    throw new ForeignKeyError('secret', `must be a list of 1 to ${MAX_DEPTH} integer keys`);
  }
  for (const key of keys) {
    if (typeof key !== 'bigint' || key < INT64_MIN || key >= INT64_LIMIT) {
      throw new ForeignKeyError('secret', 'every key must be a signed 64-bit integer');
    }
  }
  const ngramLen = integerIn('ngram-len', options.ngramLen, 2, MAX_NGRAM_LEN);
  const samplingTableSize = integerIn(
    'sampling-table-size',
    options.samplingTableSize ?? 65536,
    2,
    MAX_TABLE_SIZE,
  );
  const samplingTableSeed = options.samplingTableSeed ?? 0n;
  if (
    typeof samplingTableSeed !== 'bigint' ||
    samplingTableSeed < INT64_MIN ||
    samplingTableSeed >= 1n << 64n
  ) {
    throw new ForeignKeyError(
      'sampling-table-seed',
      "must be an integer in torch's seed range [−2^63, 2^64)",
    );
  }
  const contextHistorySize = integerIn(
    'context-history-size',
    options.contextHistorySize ?? 1024,
    1,
    MAX_HISTORY,
  );
  const skipFirstNgramCalls = options.skipFirstNgramCalls ?? false;
  if (typeof skipFirstNgramCalls !== 'boolean') {
    throw new ForeignKeyError('skip-first-ngram-calls', 'must be true or false');
  }
  const tokenizer = checkTokenizer(options.tokenizer ?? DEFAULT_TOKENIZER_ID);
  let vocabSize: number | null = null;
  if (options.vocabSize !== undefined) {
    if (isTokenizerId(tokenizer)) {
      throw new ForeignKeyError(
        'vocab-size',
        `applies only to tokenizers tracemark does not ship (${tokenizer} has its own)`,
      );
    }
    vocabSize = integerIn('vocab-size', options.vocabSize, 1, MAX_VOCAB_SIZE);
  }
  const eosTokenId =
    options.eosTokenId === undefined
      ? null
      : integerIn('eos-token-id', options.eosTokenId, 0, (vocabSize ?? MAX_VOCAB_SIZE) - 1);
  const key = {
    kind: 'synthid' as const,
    keyId: '',
    scheme: 'tournament' as const,
    keys: Object.freeze([...keys]),
    ngramLen,
    samplingTableSize,
    samplingTableSeed,
    contextHistorySize,
    skipFirstNgramCalls,
    eosTokenId,
    tokenizer,
    vocabSize,
  };
  let detector: SynthidDetector;
  try {
    detector = createSynthidDetector(synthidDetectorParams(key));
  } catch {
    // The core's messages never hold a key, but the parameter names differ from the flags.
    throw new ForeignKeyError('secret', 'this configuration is not one transformers accepts');
  }
  const ones = detector.nullProbability;
  if (ones === 0 || ones === 1) {
    throw new ForeignKeyError(
      'sampling-table-size',
      'the sampling table holds only one value: nothing can be detected',
    );
  }
  return Object.freeze({ ...key, keyId: synthidKeyIdOf(key) });
}

/** The parameters of the core's `createSynthidDetector` for a key. */
export function synthidDetectorParams(
  key: Omit<SynthidWatermarkKey, 'keyId' | 'kind' | 'scheme' | 'tokenizer'>,
): SynthidParams {
  return {
    keys: key.keys,
    ngramLen: key.ngramLen,
    samplingTableSize: key.samplingTableSize,
    samplingTableSeed: key.samplingTableSeed,
    contextHistorySize: key.contextHistorySize,
    skipFirstNgramCalls: key.skipFirstNgramCalls,
    eosTokenId: key.eosTokenId,
    ...(key.vocabSize === null ? {} : { vocabSize: key.vocabSize }),
  };
}

/**
 * keyId = "synthid1_" ‖ hex(SHA-256(UTF-8(JSON of ["tracemark/synthid-key-id/v1", keys in decimal,
 * ngramLen, samplingTableSize, samplingTableSeed in decimal])))[0..12]. It names what marks the
 * token ids: the history size, skipFirstNgramCalls, the EOS id, tokenizer and vocabulary are not part of it.
 */
export function synthidKeyIdOf(
  key: Pick<SynthidWatermarkKey, 'keys' | 'ngramLen' | 'samplingTableSize' | 'samplingTableSeed'>,
): string {
  const canonical = JSON.stringify([
    'tracemark/synthid-key-id/v1',
    key.keys.map((k) => k.toString(10)),
    key.ngramLen,
    key.samplingTableSize,
    key.samplingTableSeed.toString(10),
  ]);
  return SYNTHID_KEY_ID_PREFIX + createHash('sha256').update(canonical, 'utf8').digest('hex').slice(0, 24);
}

/** The public parameters (everything but the keys), as key files and summaries show them. */
export function synthidKeyParameters(key: SynthidWatermarkKey): Record<string, string | number | boolean> {
  return {
    depth: key.keys.length,
    ngramLen: key.ngramLen,
    samplingTableSize: key.samplingTableSize,
    samplingTableSeed: key.samplingTableSeed.toString(10),
    contextHistorySize: key.contextHistorySize,
    skipFirstNgramCalls: key.skipFirstNgramCalls,
    ...(key.eosTokenId === null ? {} : { eosTokenId: key.eosTokenId }),
    tokenizer: key.tokenizer,
    ...(key.vocabSize === null ? {} : { vocabSize: key.vocabSize }),
  };
}

/** The key file (spec §9) as JSON text; it holds the keys: write it 0600. */
export function serializeSynthidKeyFile(key: SynthidWatermarkKey, createdAt: Date = new Date()): string {
  const { depth: _depth, ...parameters } = synthidKeyParameters(key);
  const file = {
    format: SYNTHID_KEY_FILE_FORMAT,
    version: 1,
    keyId: key.keyId,
    scheme: key.scheme,
    keys: key.keys.map((k) => k.toString(10)),
    ...parameters,
    createdAt: createdAt.toISOString(),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

const REQUIRED_FIELDS = [
  'format',
  'version',
  'keyId',
  'scheme',
  'keys',
  'ngramLen',
  'samplingTableSize',
  'samplingTableSeed',
  'contextHistorySize',
  'skipFirstNgramCalls',
  'tokenizer',
  'createdAt',
] as const;
const OPTIONAL_FIELDS = ['eosTokenId', 'vocabSize'] as const;
const INTEGER_TEXT = /^-?(0|[1-9][0-9]{0,19})$/;

const FLAG_TO_FIELD: Readonly<Record<string, string>> = Object.freeze({
  secret: 'keys',
  'ngram-len': 'ngramLen',
  'sampling-table-size': 'samplingTableSize',
  'sampling-table-seed': 'samplingTableSeed',
  'context-history-size': 'contextHistorySize',
  'skip-first-ngram-calls': 'skipFirstNgramCalls',
  'eos-token-id': 'eosTokenId',
  tokenizer: 'tokenizer',
  'vocab-size': 'vocabSize',
});

/**
 * Parses a SynthID key file. Every field must be there and nothing else may be; the key id must
 * match the key material. Messages name the field, never a key.
 */
export function parseSynthidKeyFile(record: Readonly<Record<string, unknown>>): SynthidWatermarkKey {
  const fail = (message: string): never => {
    throw new ForeignKeyFileError(`key file: ${message}`);
  };
  if (record.format !== SYNTHID_KEY_FILE_FORMAT) fail(`"format" must be "${SYNTHID_KEY_FILE_FORMAT}"`);
  if (record.version !== 1) fail(`unsupported "version" ${JSON.stringify(record.version) ?? 'undefined'}`);
  for (const name of Object.keys(record)) {
    if (
      !(REQUIRED_FIELDS as readonly string[]).includes(name) &&
      !(OPTIONAL_FIELDS as readonly string[]).includes(name)
    ) {
      fail(`unknown field ${JSON.stringify(name)}`);
    }
  }
  for (const name of REQUIRED_FIELDS) if (record[name] === undefined) fail(`"${name}" is missing`);
  if (record.scheme !== 'tournament') fail('"scheme" must be "tournament"');
  const keys = record.keys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && INTEGER_TEXT.test(k))) {
    fail('"keys" must be a list of decimal integers in strings');
  }
  const seed = record.samplingTableSeed;
  if (typeof seed !== 'string' || !INTEGER_TEXT.test(seed))
    fail('"samplingTableSeed" must be a decimal integer in a string');
  let key: SynthidWatermarkKey;
  try {
    key = createSynthidWatermarkKey({
      keys: (keys as string[]).map((k) => BigInt(k)),
      ngramLen: record.ngramLen as number,
      samplingTableSize: record.samplingTableSize as number,
      samplingTableSeed: BigInt(seed as string),
      contextHistorySize: record.contextHistorySize as number,
      skipFirstNgramCalls: record.skipFirstNgramCalls as boolean,
      tokenizer: record.tokenizer as string,
      ...(record.eosTokenId === undefined ? {} : { eosTokenId: record.eosTokenId as number }),
      ...(record.vocabSize === undefined ? {} : { vocabSize: record.vocabSize as number }),
    });
  } catch (error) {
    if (error instanceof ForeignKeyError) {
      return fail(`"${FLAG_TO_FIELD[error.parameter] ?? error.parameter}" ${error.detail}`);
    }
    throw error;
  }
  if (record.keyId !== key.keyId) {
    fail('"keyId" does not match the key material (the file is corrupt or was edited)');
  }
  return key;
}

/** Parses `--secret`'s text: comma-separated signed decimal integers (white space ignored). */
function parseSecret(secret: string | null): bigint[] {
  if (secret === null) throw new ForeignKeyError('secret', 'is required: the comma-separated list of keys');
  const parts = secret.split(',').map((part) => part.trim());
  if (parts.length === 0 || !parts.every((part) => INTEGER_TEXT.test(part))) {
    throw new ForeignKeyError('secret', 'must be comma-separated decimal integers (one key per layer)');
  }
  return parts.map((part) => BigInt(part));
}

function flagInteger(flags: Readonly<Record<string, string>>, name: string): number | undefined {
  const text = flags[name];
  if (text === undefined) return undefined;
  if (!/^\s*[0-9]{1,10}\s*$/.test(text)) throw new ForeignKeyError(name, 'must be a non-negative integer');
  return Number(text.trim());
}

function fromKeygen(
  schemeName: string,
  flags: Readonly<Record<string, string>>,
  secret: string | null,
): SynthidWatermarkKey {
  if (schemeName !== SYNTHID_SCHEME_NAME)
    throw new ForeignKeyError('scheme', `must be ${SYNTHID_SCHEME_NAME}`);
  const known = new Set([
    'ngram-len',
    'sampling-table-size',
    'sampling-table-seed',
    'context-history-size',
    'skip-first-ngram-calls',
    'eos-token-id',
    'tokenizer',
    'vocab-size',
  ]);
  for (const name of Object.keys(flags)) {
    if (!known.has(name)) throw new ForeignKeyError(name, `does not apply to ${SYNTHID_SCHEME_NAME} keys`);
  }
  const ngramLen = flagInteger(flags, 'ngram-len');
  if (ngramLen === undefined)
    throw new ForeignKeyError('ngram-len', 'is required (transformers has no default; 5 is usual)');
  const seedText = flags['sampling-table-seed'];
  if (seedText !== undefined && !INTEGER_TEXT.test(seedText.trim())) {
    throw new ForeignKeyError('sampling-table-seed', 'must be a decimal integer');
  }
  const skipText = flags['skip-first-ngram-calls'];
  if (skipText !== undefined && !['true', 'false', ''].includes(skipText.trim())) {
    throw new ForeignKeyError('skip-first-ngram-calls', 'must be true or false (or given without a value)');
  }
  const samplingTableSize = flagInteger(flags, 'sampling-table-size');
  const contextHistorySize = flagInteger(flags, 'context-history-size');
  const eosTokenId = flagInteger(flags, 'eos-token-id');
  const vocabSize = flagInteger(flags, 'vocab-size');
  return createSynthidWatermarkKey({
    keys: parseSecret(secret),
    ngramLen,
    ...(samplingTableSize === undefined ? {} : { samplingTableSize }),
    ...(seedText === undefined ? {} : { samplingTableSeed: BigInt(seedText.trim()) }),
    ...(contextHistorySize === undefined ? {} : { contextHistorySize }),
    ...(skipText === undefined ? {} : { skipFirstNgramCalls: skipText.trim() !== 'false' }),
    ...(eosTokenId === undefined ? {} : { eosTokenId }),
    ...(flags.tokenizer === undefined ? {} : { tokenizer: flags.tokenizer }),
    ...(vocabSize === undefined ? {} : { vocabSize }),
  });
}

/** Scores a SynthID key at target false-positive rate `fpr` (spec §10). */
export function createSynthidKeyScorer(
  key: SynthidWatermarkKey,
  fpr: number,
): ForeignKeyScorer<SynthidWatermarkKey> {
  let detector: SynthidDetector;
  try {
    detector = createSynthidDetector(synthidDetectorParams(key));
  } catch {
    throw new InputError('TM_ERR_KEY_FILE', `key ${key.keyId}: parameters transformers does not accept`);
  }
  const q = detector.nullProbability;
  // The score under the mark depends on the model's entropy, which no key parameter bounds (spec §10).
  const verdictOptions: ResolvedVerdictOptions = { fpr, missRate: DEFAULT_MISS_RATE, alternative: null };
  const invalidTokens = (error: unknown): never => {
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new InputError('TM_ERR_INVALID_TOKENS', `key ${key.keyId}: ${error.message}`);
    }
    throw error;
  };
  const score = (ids: ArrayLike<number>, dedup: ForeignDedup): ForeignKeyScore => {
    let detection: ReturnType<SynthidDetector['detect']>;
    try {
      detection = detector.detect(ids, { dedup });
    } catch (error) {
      return invalidTokens(error);
    }
    const m = detection.numGValues;
    return {
      numTokens: detection.numTokens,
      numScored: detection.numScored,
      score: detection.score,
      numGreen: detection.score,
      greenFraction: m === 0 ? 0 : detection.score / m,
      z: m === 0 ? 0 : (detection.score - m * q) / Math.sqrt(m * q * (1 - q)),
      log10P: detection.log10PValue,
      peerLog10P: null,
    };
  };
  const layers = detector.effectiveLayers;
  const effectiveDepth = layers.length;
  const units = (ids: ArrayLike<number>): ForeignUnits => {
    let positions: ReturnType<SynthidDetector['scoreTokens']>;
    try {
      positions = detector.scoreTokens(ids);
    } catch (error) {
      return invalidTokens(error);
    }
    // `strict` (spec §6.2): before the EOS, a context not seen earlier and a table seed not scored before.
    const seenContexts = new Set<string>();
    const seenSeeds = new Set<bigint>();
    const keys: string[] = [];
    const values: number[] = [];
    const indices: number[] = [];
    for (const position of positions) {
      if (position.afterEos) continue;
      const context = position.context.join(',');
      const seen = seenContexts.has(context);
      seenContexts.add(context);
      if (seen || seenSeeds.has(position.seed)) continue;
      seenSeeds.add(position.seed);
      // The seed decides every layer's g-value: it is the unit across a corpus.
      keys.push(position.seed.toString(10));
      let value = 0;
      for (const layer of layers) value += position.gValues[layer]!;
      values.push(value);
      indices.push(position.position);
    }
    return { keys, values: Float64Array.from(values), positions: Uint32Array.from(indices) };
  };
  const tail = (total: number, count: number): number => {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`count: expected a non-negative integer, got ${String(count)}`);
    }
    if (count === 0 || !(total > 0)) return 0;
    // count distinct seeds × effectiveDepth layers, each g-value Bernoulli(q) under the null (spec §11.2).
    return Math.min(0, log10BinomialSf(Math.round(total), count * effectiveDepth, q));
  };
  return Object.freeze({
    key,
    schemeName: SYNTHID_SCHEME_NAME,
    nullGreenProbability: q,
    verdictOptions,
    score,
    units,
    tail,
    // The table seed, one word or two: the core's strictUnits.
    ...strictPacking(units, (ids) => detector.strictUnits(ids)),
  });
}

export const synthidKeyType: ForeignKeyType<SynthidWatermarkKey> = Object.freeze({
  kind: 'synthid',
  label: 'SynthID-Text',
  fileFormat: SYNTHID_KEY_FILE_FORMAT,
  schemeNames: Object.freeze([SYNTHID_SCHEME_NAME]),
  keygenFlags: Object.freeze([
    { flag: '--ngram-len <n>', description: 'n-gram length (context of n − 1 tokens); required, 5 is usual' },
    {
      flag: '--sampling-table-size <n>',
      description: 'size of the g-value table (default 65536, at most 2^24)',
    },
    {
      flag: '--sampling-table-seed <n>',
      description: "seed of torch's CPU generator for the table (default 0)",
    },
    {
      flag: '--context-history-size <n>',
      description: 'contexts remembered for the repetition mask (default 1024)',
    },
    { flag: '--skip-first-ngram-calls', description: 'the engine does not watermark the first n − 1 tokens' },
    { flag: '--eos-token-id <id>', description: 'detection ignores the first EOS and everything after it' },
  ]),
  secretDescription: 'the comma-separated list of signed 64-bit keys, one per tournament layer',
  fromKeygen,
  parse: parseSynthidKeyFile,
  serialize: serializeSynthidKeyFile,
  parameters: synthidKeyParameters,
  createScorer: createSynthidKeyScorer,
});
