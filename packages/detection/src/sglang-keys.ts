/**
 * Keys for the watermarks that SGLang's native text watermarking embeds (docs/spec/foreign-sglang.md
 * §8): validation against what SGLang accepts, the public key id, the key file, the scorer, and the
 * family behind the {@link ForeignKeyType} interface.
 */
import { createHash } from 'node:crypto';
import {
  createSglangDetector,
  DEFAULT_MISS_RATE,
  formatSglangKey,
  log10GammaSf,
  parseSglangKey,
  type ResolvedVerdictOptions,
  SGLANG_MAX_CONTEXT_WINDOW,
  SGLANG_MAX_CONTEXTS,
  SGLANG_SCHEMES,
  type SglangKey,
  type SglangScheme,
} from '@tracemark/core';
import { DEFAULT_TOKENIZER_ID, isTokenizerId } from '@tracemark/tokenizers';
import { InputError } from './errors.ts';
import {
  type ForeignDedup,
  ForeignKeyError,
  ForeignKeyFileError,
  type ForeignKeyScore,
  type ForeignKeyScorer,
  type ForeignKeyType,
  type ForeignUnits,
} from './foreign.ts';
import { strictPacking } from './packed-units.ts';

export const SGLANG_KEY_ID_PREFIX = 'sglang1_';
export const SGLANG_KEY_FILE_FORMAT = 'tracemark-sglang-key';

export type SglangSchemeName = `sglang:${SglangScheme}`;
export const SGLANG_SCHEME_NAMES: readonly SglangSchemeName[] = Object.freeze(
  SGLANG_SCHEMES.map((scheme): SglangSchemeName => `sglang:${scheme}`),
);

/** An SGLang watermark key: the engine's configuration with its public id. Holds key A (and key B). */
export interface SglangWatermarkKey {
  readonly kind: 'sglang';
  /** `sglang1_` + 24 hex digits: a one-way hash of the key material, safe to print. */
  readonly keyId: string;
  readonly scheme: SglangScheme;
  /** SGLang's `key` (key A), unsigned 64-bit. */
  readonly engineKey: bigint;
  /** SGLang's `key_b`; null for one key. */
  readonly keyB: bigint | null;
  /** SGLang's `context_window` (the request's effective window). */
  readonly contextWindow: number;
  /** SGLang's `mixing_probability` (dual key); null for one key. */
  readonly mixingProbability: number | null;
  /** The detector's prefix budget (SGLang's `max_contexts`, default 4096). */
  readonly maxContexts: number;
  readonly tokenizer: string;
  readonly vocabSize: number | null;
}

/** What an SGLang key is made from; keygen flags in parentheses. */
export interface SglangKeyOptions {
  readonly scheme: SglangScheme;
  readonly engineKey: bigint;
  readonly keyB?: bigint;
  /** (--context-window) default 4. */
  readonly contextWindow?: number;
  /** (--mixing-probability) dual key only, default 0.5. */
  readonly mixingProbability?: number;
  /** (--max-contexts) default 4096. */
  readonly maxContexts?: number;
  readonly tokenizer?: string;
  readonly vocabSize?: number;
}

const MAX_VOCAB_SIZE = 2 ** 31;
const MAX_TOKENIZER_LENGTH = 200;
const MAX_SECRET_LENGTH = 4096;

function fail(flag: string, detail: string): never {
  throw new ForeignKeyError(flag, detail);
}

function checkTokenizer(tokenizer: unknown): string {
  if (typeof tokenizer !== 'string' || tokenizer.length === 0 || tokenizer.length > MAX_TOKENIZER_LENGTH) {
    fail('tokenizer', `must be a non-empty string of at most ${MAX_TOKENIZER_LENGTH} characters`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(tokenizer)) fail('tokenizer', 'must not contain control characters');
  return tokenizer;
}

/**
 * Validates against what SGLang accepts and builds the key, every default explicit. Throws
 * {@link ForeignKeyError} naming the keygen flag (`secret` for the keys); no message holds a key.
 */
export function createSglangWatermarkKey(options: SglangKeyOptions): SglangWatermarkKey {
  if (options === null || typeof options !== 'object') throw new TypeError('options: expected an object');
  const scheme = options.scheme;
  if (!(SGLANG_SCHEMES as readonly unknown[]).includes(scheme)) {
    fail('scheme', `must be one of ${SGLANG_SCHEMES.join(', ')}`);
  }
  const inRange = (value: unknown): value is bigint =>
    typeof value === 'bigint' && value >= 0n && value < 1n << 64n;
  if (!inRange(options.engineKey))
    fail('secret', 'key must be an unsigned 64-bit integer (1 to 16 hex digits)');
  const dual = scheme === 'dual_key_gumbel';
  if (dual && options.keyB === undefined) fail('secret', 'sglang:dual_key_gumbel needs key_b as well as key');
  if (!dual && options.keyB !== undefined) fail('secret', 'key_b applies only to sglang:dual_key_gumbel');
  if (dual && !inRange(options.keyB)) fail('secret', 'key_b must be an unsigned 64-bit integer');
  if (!dual && options.mixingProbability !== undefined) {
    fail('mixing-probability', 'applies only to sglang:dual_key_gumbel keys');
  }
  const mixingProbability = dual ? (options.mixingProbability ?? 0.5) : null;
  if (mixingProbability !== null && !(mixingProbability > 0 && mixingProbability < 1)) {
    fail('mixing-probability', 'must be a number strictly between 0 and 1');
  }
  const contextWindow = options.contextWindow ?? 4;
  if (!Number.isInteger(contextWindow) || contextWindow < 1 || contextWindow > SGLANG_MAX_CONTEXT_WINDOW) {
    fail('context-window', `must be an integer from 1 to ${SGLANG_MAX_CONTEXT_WINDOW}`);
  }
  const maxContexts = options.maxContexts ?? SGLANG_MAX_CONTEXTS;
  if (!Number.isInteger(maxContexts) || maxContexts < 1 || maxContexts > SGLANG_MAX_CONTEXTS) {
    fail('max-contexts', `must be an integer from 1 to ${SGLANG_MAX_CONTEXTS}`);
  }
  const tokenizer = checkTokenizer(options.tokenizer ?? DEFAULT_TOKENIZER_ID);
  let vocabSize: number | null = null;
  if (options.vocabSize !== undefined) {
    if (isTokenizerId(tokenizer)) {
      fail('vocab-size', `applies only to tokenizers tracemark does not ship (${tokenizer} has its own)`);
    }
    vocabSize = options.vocabSize;
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > MAX_VOCAB_SIZE) {
      fail('vocab-size', 'must be an integer from 1 to 2^31');
    }
  }
  const key = {
    kind: 'sglang' as const,
    keyId: '',
    scheme,
    engineKey: options.engineKey,
    keyB: dual ? (options.keyB as bigint) : null,
    contextWindow,
    mixingProbability,
    maxContexts,
    tokenizer,
    vocabSize,
  };
  return Object.freeze({ ...key, keyId: sglangKeyIdOf(key) });
}

/** The parameters of the core's `createSglangDetector` for a key. */
export function sglangDetectorParams(key: SglangWatermarkKey): SglangKey {
  return {
    scheme: key.scheme,
    engineKey: key.engineKey,
    ...(key.keyB === null ? {} : { keyB: key.keyB, mixingProbability: key.mixingProbability! }),
    contextWindow: key.contextWindow,
    maxContexts: key.maxContexts,
    ...(key.vocabSize === null ? {} : { vocabSize: key.vocabSize }),
  };
}

/**
 * keyId = "sglang1_" ‖ hex(SHA-256(UTF-8(JSON of ["tracemark/sglang-key-id/v1", scheme, key A as
 * 16 hex digits, key B or null, contextWindow, mixingProbability or null, maxContexts]))[0..12]).
 * The tokenizer and vocabulary size are not part of it.
 */
export function sglangKeyIdOf(
  key: Pick<
    SglangWatermarkKey,
    'scheme' | 'engineKey' | 'keyB' | 'contextWindow' | 'mixingProbability' | 'maxContexts'
  >,
): string {
  const canonical = JSON.stringify([
    'tracemark/sglang-key-id/v1',
    key.scheme,
    formatSglangKey(key.engineKey),
    key.keyB === null ? null : formatSglangKey(key.keyB),
    key.contextWindow,
    key.mixingProbability,
    key.maxContexts,
  ]);
  return SGLANG_KEY_ID_PREFIX + createHash('sha256').update(canonical, 'utf8').digest('hex').slice(0, 24);
}

/** The public parameters (everything but the keys). */
export function sglangKeyParameters(key: SglangWatermarkKey): Record<string, string | number> {
  return {
    contextWindow: key.contextWindow,
    ...(key.mixingProbability === null ? {} : { mixingProbability: key.mixingProbability }),
    maxContexts: key.maxContexts,
    tokenizer: key.tokenizer,
    ...(key.vocabSize === null ? {} : { vocabSize: key.vocabSize }),
  };
}

/** The key file (spec §8) as JSON text; it holds the keys: write it 0600. */
export function serializeSglangKeyFile(key: SglangWatermarkKey, createdAt: Date = new Date()): string {
  const file = {
    format: SGLANG_KEY_FILE_FORMAT,
    version: 1,
    keyId: key.keyId,
    scheme: key.scheme,
    key: formatSglangKey(key.engineKey),
    ...(key.keyB === null ? {} : { keyB: formatSglangKey(key.keyB) }),
    ...sglangKeyParameters(key),
    createdAt: createdAt.toISOString(),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

const FILE_FIELDS: readonly string[] = Object.freeze([
  'format',
  'version',
  'keyId',
  'scheme',
  'key',
  'keyB',
  'contextWindow',
  'mixingProbability',
  'maxContexts',
  'tokenizer',
  'vocabSize',
  'createdAt',
]);

/** The file field of each keygen flag, to name the field when a value is refused. */
const FIELD_OF_FLAG: Readonly<Record<string, string>> = Object.freeze({
  scheme: 'scheme',
  secret: 'key',
  'context-window': 'contextWindow',
  'mixing-probability': 'mixingProbability',
  'max-contexts': 'maxContexts',
  tokenizer: 'tokenizer',
  'vocab-size': 'vocabSize',
});

/**
 * Parses an SGLang key file. Every field that applies must be there and nothing else may be; the
 * key id must match the key material. Messages name the field, never a key.
 */
export function parseSglangKeyFile(record: Readonly<Record<string, unknown>>): SglangWatermarkKey {
  const refuse = (message: string): never => {
    throw new ForeignKeyFileError(`key file: ${message}`);
  };
  if (record.format !== SGLANG_KEY_FILE_FORMAT) refuse(`"format" must be "${SGLANG_KEY_FILE_FORMAT}"`);
  if (record.version !== 1) refuse(`unsupported "version" ${JSON.stringify(record.version) ?? 'undefined'}`);
  for (const name of Object.keys(record)) {
    if (!FILE_FIELDS.includes(name)) refuse(`unknown field ${JSON.stringify(name)}`);
  }
  const scheme = record.scheme;
  if (!(SGLANG_SCHEMES as readonly unknown[]).includes(scheme)) {
    refuse(`"scheme" must be one of ${SGLANG_SCHEMES.join(', ')}`);
  }
  const dual = scheme === 'dual_key_gumbel';
  const required: Record<string, boolean> = {
    key: true,
    keyB: dual,
    contextWindow: true,
    mixingProbability: dual,
    maxContexts: true,
    tokenizer: true,
  };
  for (const [name, needed] of Object.entries(required)) {
    if (needed && record[name] === undefined) refuse(`"${name}" is missing (required for ${String(scheme)})`);
    if (!needed && record[name] !== undefined) refuse(`"${name}" does not apply to ${String(scheme)}`);
  }
  const hexKey = (name: string): bigint => {
    const text = record[name];
    if (typeof text !== 'string' || !/^[0-9a-f]{16}$/.test(text)) {
      return refuse(`"${name}" must be 16 lowercase hex digits`);
    }
    return parseSglangKey(text);
  };
  const options: Record<string, unknown> = {
    scheme,
    engineKey: hexKey('key'),
    contextWindow: record.contextWindow,
    maxContexts: record.maxContexts,
    tokenizer: record.tokenizer,
  };
  if (dual) {
    options.keyB = hexKey('keyB');
    options.mixingProbability = record.mixingProbability;
  }
  if (record.vocabSize !== undefined) options.vocabSize = record.vocabSize;
  let key: SglangWatermarkKey;
  try {
    key = createSglangWatermarkKey(options as unknown as SglangKeyOptions);
  } catch (error) {
    if (error instanceof ForeignKeyError) {
      return refuse(`"${FIELD_OF_FLAG[error.parameter] ?? error.parameter}" ${error.detail}`);
    }
    throw error;
  }
  if (record.keyId !== key.keyId)
    refuse('"keyId" does not match the key material (the file is corrupt or was edited)');
  return key;
}

/** The fields of SGLang's `--watermark-config` JSON (config.py `WatermarkServerConfig`). */
const SGLANG_CONFIG_FIELDS: readonly string[] = Object.freeze([
  'key',
  'key_b',
  'context_window',
  'mixing_probability',
  'max_probability',
  'default_enabled',
  'enforce_all',
]);

export interface SglangSecret {
  readonly key: bigint;
  readonly keyB: bigint | null;
  readonly contextWindow: number | null;
  readonly mixingProbability: number | null;
}

/**
 * The secret as keygen reads it: SGLang's key text (1 to 16 hex digits, optional 0x), or the JSON
 * object SGLang's `--watermark-config` takes (its file's contents), whose `key`, `key_b`,
 * `context_window` and `mixing_probability` are read with SGLang's rules and the rest ignored.
 * Messages never hold the text.
 */
export function parseSglangSecret(text: string): SglangSecret {
  const trimmed = text.trim();
  if (trimmed.length > MAX_SECRET_LENGTH) fail('secret', 'is longer than the 4096 bytes SGLang reads');
  const key = (value: unknown, name: string): bigint => {
    if (typeof value !== 'string') fail('secret', `${name} must be a hex string`);
    try {
      return parseSglangKey(value as string);
    } catch (error) {
      return fail('secret', `${name}${(error as Error).message.slice('key'.length)}`);
    }
  };
  if (!trimmed.startsWith('{'))
    return { key: key(trimmed, 'key'), keyB: null, contextWindow: null, mixingProbability: null };
  let raw: unknown;
  try {
    raw = JSON.parse(trimmed);
  } catch {
    return fail('secret', 'is neither a hex key nor valid SGLang watermark config JSON');
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    fail('secret', 'the config must be a JSON object');
  const config = raw as Record<string, unknown>;
  for (const name of Object.keys(config)) {
    if (!SGLANG_CONFIG_FIELDS.includes(name)) fail('secret', 'the config has a field SGLang does not know');
  }
  if (config.key === undefined || config.key === null) fail('secret', 'the config has no key');
  const number = (name: string): number | null => {
    const value = config[name];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number') fail('secret', `the config's ${name} must be a number`);
    return value as number;
  };
  return {
    key: key(config.key, 'key'),
    keyB: config.key_b === undefined || config.key_b === null ? null : key(config.key_b, 'key_b'),
    contextWindow: number('context_window'),
    mixingProbability: number('mixing_probability'),
  };
}

/** Flags beyond --scheme, --out, --tokenizer, --vocab-size and the secret's: SGLang's config names. */
const NUMERIC_FLAGS: Readonly<Record<string, keyof SglangKeyOptions>> = Object.freeze({
  'context-window': 'contextWindow',
  'mixing-probability': 'mixingProbability',
  'max-contexts': 'maxContexts',
  'vocab-size': 'vocabSize',
});

function sglangKeyFromKeygen(
  schemeName: string,
  flags: Readonly<Record<string, string>>,
  secret: string | null,
): SglangWatermarkKey {
  if (!(SGLANG_SCHEME_NAMES as readonly string[]).includes(schemeName)) {
    fail('scheme', `must be one of ${SGLANG_SCHEME_NAMES.join(', ')}`);
  }
  if (secret === null)
    fail('secret', "an SGLang key needs the engine's key (hex) or its watermark config JSON");
  const parsed = parseSglangSecret(secret);
  const options: Record<string, unknown> = {
    scheme: schemeName.slice('sglang:'.length) as SglangScheme,
    engineKey: parsed.key,
    ...(parsed.keyB === null ? {} : { keyB: parsed.keyB }),
  };
  const fromConfig: Record<string, number | null> = {
    contextWindow: parsed.contextWindow,
    mixingProbability: parsed.mixingProbability,
  };
  for (const [flag, text] of Object.entries(flags)) {
    if (flag === 'tokenizer') {
      options.tokenizer = text;
      continue;
    }
    const parameter = NUMERIC_FLAGS[flag];
    if (parameter === undefined) fail(flag, `does not apply to ${schemeName} keys`);
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) fail(flag, 'must be a number');
    const configured = fromConfig[parameter as string];
    if (configured !== undefined && configured !== null && configured !== value) {
      fail(flag, "differs from the value in SGLang's watermark config");
    }
    options[parameter as string] = value;
  }
  for (const [parameter, value] of Object.entries(fromConfig)) {
    if (value === null || options[parameter] !== undefined) continue;
    // mixing_probability 0.5 in a single-key config is SGLang's default, not a choice
    if (parameter === 'mixingProbability' && parsed.keyB === null && value === 0.5) continue;
    options[parameter] = value;
  }
  return createSglangWatermarkKey(options as unknown as SglangKeyOptions);
}

/** Builds the scorer of an SGLang key at target false-positive rate `fpr`. */
export function createSglangKeyScorer(
  key: SglangWatermarkKey,
  fpr: number,
): ForeignKeyScorer<SglangWatermarkKey> {
  let detector: ReturnType<typeof createSglangDetector>;
  try {
    detector = createSglangDetector(sglangDetectorParams(key));
  } catch {
    throw new InputError('TM_ERR_KEY_FILE', `key ${key.keyId}: parameters SGLang does not accept`);
  }
  const verdictOptions: ResolvedVerdictOptions = { fpr, missRate: DEFAULT_MISS_RATE, alternative: null };
  const detect = (ids: ArrayLike<number>, dedup: ForeignDedup, tokens: boolean) => {
    try {
      return detector.detect(ids, { dedup, tokens });
    } catch (error) {
      // The core names the bad id and never the key.
      if (error instanceof RangeError || error instanceof TypeError) {
        throw new InputError('TM_ERR_INVALID_TOKENS', error.message);
      }
      throw error;
    }
  };
  const score = (ids: ArrayLike<number>, dedup: ForeignDedup): ForeignKeyScore => {
    const detection = detect(ids, dedup, false);
    const n = detection.numScored;
    return {
      numTokens: ids.length,
      numScored: n,
      score: detection.score,
      numGreen: null,
      greenFraction: null,
      z: n === 0 ? 0 : (detection.score - n) / Math.sqrt(n),
      log10P: detection.log10PValue,
      peerLog10P: detection.peerLog10PValue,
    };
  };
  const units = (ids: ArrayLike<number>): ForeignUnits => {
    // `strict` is SGLang's generator rule: a repeated 32-bit context hash is skipped (spec §6).
    const scored = detect(ids, 'strict', true).tokens!;
    return {
      // (context hash, token) decides the PRF input: the hash picks the key and is hashed with the token.
      keys: scored.map((token) => `${token.contextHash}:${token.token}`),
      values: Float64Array.from(scored, (token) => token.score),
      positions: Uint32Array.from(scored, (token) => token.position),
    };
  };
  const tail = (total: number, count: number): number => {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`count: expected a non-negative integer, got ${String(count)}`);
    }
    if (count === 0 || !(total > 0)) return 0;
    // Distinct (context hash, token) pairs under the null: independent Exp(1) scores (spec §10).
    return Math.min(0, log10GammaSf(count, total));
  };
  return Object.freeze({
    key,
    schemeName: `sglang:${key.scheme}`,
    nullGreenProbability: null,
    verdictOptions,
    score,
    units,
    tail,
    // (context hash, token), the core's strictUnits: the words of the units' keys, which they spell out in decimal.
    ...strictPacking(units, (ids) => detector.strictUnits(ids)),
  });
}

export const sglangKeyType: ForeignKeyType<SglangWatermarkKey> = Object.freeze({
  kind: 'sglang',
  label: 'SGLang',
  fileFormat: SGLANG_KEY_FILE_FORMAT,
  schemeNames: SGLANG_SCHEME_NAMES,
  secretDescription:
    "SGLang's watermark key (1 to 16 hex digits, optional 0x), or the JSON of its --watermark-config (key, key_b, …)",
  keygenFlags: Object.freeze([
    {
      flag: '--context-window <n>',
      description: "SGLang keys: the request's context window, 1 to 64 (SGLang's context_window, default 4)",
    },
    {
      flag: '--mixing-probability <p>',
      description: "sglang:dual_key_gumbel: probability of key A (SGLang's mixing_probability, default 0.5)",
    },
    {
      flag: '--max-contexts <n>',
      description: 'SGLang keys: distinct contexts scored, 1 to 4096 (default 4096, the generation budget)',
    },
  ]),
  fromKeygen: sglangKeyFromKeygen,
  parse: parseSglangKeyFile,
  serialize: (key: SglangWatermarkKey, createdAt?: Date) => serializeSglangKeyFile(key, createdAt),
  parameters: (key: SglangWatermarkKey) => sglangKeyParameters(key),
  createScorer: createSglangKeyScorer,
});
