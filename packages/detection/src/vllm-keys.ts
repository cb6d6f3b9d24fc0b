/**
 * Keys for the watermarks that vLLM's native watermarking embeds (docs/spec/foreign-vllm.md §9):
 * validation against what vLLM accepts, the public key id, and the key file.
 */
import { createHash } from 'node:crypto';
import {
  createVllmDetector,
  VLLM_SCHEMES,
  type VllmKey,
  type VllmPrf,
  type VllmSbwScheme,
  type VllmScheme,
} from '@tracemark/core';
import { DEFAULT_TOKENIZER_ID, isTokenizerId, TOKENIZER_IDS } from '@tracemark/tokenizers';

export const VLLM_KEY_ID_PREFIX = 'vllm1_';
export const VLLM_KEY_FILE_FORMAT = 'tracemark-vllm-key';

/** The scheme names `tracemark keygen --scheme` and `detect --json` use for vLLM keys. */
export type VllmSchemeName = `vllm:${VllmScheme}`;
export const VLLM_SCHEME_NAMES: readonly VllmSchemeName[] = Object.freeze(
  VLLM_SCHEMES.map((scheme): VllmSchemeName => `vllm:${scheme}`),
);

export type VllmLefthashSeeds = 'detector' | 'generator';

/** What a vLLM key is made from; every field but `scheme` and `engineKey` has vLLM's default. */
export interface VllmKeyOptions {
  readonly scheme: VllmScheme;
  /** The engine's `--watermark-config` `key`. */
  readonly engineKey: bigint;
  /** `philox` (default) or `hmac-sha256-v1` (gumbel only); sbw takes `philox` or `sbw-philox` for its own. */
  readonly prf?: VllmPrf | 'sbw-philox';
  readonly contextWidth?: number;
  /** dual_key_gumbel: weight of key B (default 0.1). */
  readonly alpha?: number;
  /** red_green (default 0.25) and sbw (default 0.5). */
  readonly gamma?: number;
  /** red_green and sbw: the engine's logit bias (default 2), which sets the `not_watermarked` alternative. */
  readonly delta?: number;
  readonly sbwScheme?: VllmSbwScheme;
  readonly sbwLefthashSeeds?: VllmLefthashSeeds;
  /** The served model's tokenizer id (default cl100k_base); text needs one tracemark ships. */
  readonly tokenizer?: string;
  /** For a tokenizer tracemark does not ship: token ids must be below it. */
  readonly vocabSize?: number;
}

/** A vLLM watermark key: the engine's configuration, resolved, with its public id. Holds the engine key. */
export interface VllmWatermarkKey {
  readonly kind: 'vllm';
  /** `vllm1_` + 24 hex digits: a one-way hash of the key material, safe to print. */
  readonly keyId: string;
  readonly scheme: VllmScheme;
  /** `sbw-philox` for sbw, which has its own Philox convention. */
  readonly prf: VllmPrf | 'sbw-philox';
  readonly engineKey: bigint;
  readonly contextWidth: number;
  readonly alpha: number | null;
  readonly gamma: number | null;
  readonly delta: number | null;
  readonly sbwScheme: VllmSbwScheme | null;
  readonly sbwLefthashSeeds: VllmLefthashSeeds | null;
  readonly tokenizer: string;
  readonly vocabSize: number | null;
}

/** The key parameters, named as in {@link VllmKeyOptions} (keygen maps them to its flags). */
export type VllmKeyParameter = keyof VllmKeyOptions;

/** A parameter vLLM would not accept; the message never holds the engine key. */
export class VllmKeyError extends RangeError {
  override readonly name = 'VllmKeyError';
  readonly parameter: VllmKeyParameter;
  /** What is wrong, without the parameter's name (`message` is `parameter: detail`). */
  readonly detail: string;
  constructor(parameter: VllmKeyParameter, detail: string) {
    super(`${parameter}: ${detail}`);
    this.parameter = parameter;
    this.detail = detail;
  }
}

const MAX_CONTEXT_WIDTH = 4096;
const MAX_VOCAB_SIZE = 2 ** 31;
const MAX_TOKENIZER_LENGTH = 200;

/** PRFs vLLM shipped with each scheme (spec §1): HMAC only in the early, gumbel-only revision. */
const SHIPPED_PRFS: Readonly<Record<VllmScheme, readonly string[]>> = Object.freeze({
  gumbel: ['philox', 'hmac-sha256-v1'],
  dual_key_gumbel: ['philox'],
  red_green: ['philox'],
  sbw: ['philox', 'sbw-philox'],
});

function engineKeyLimit(
  scheme: VllmScheme,
  prf: VllmPrf | 'sbw-philox',
): { limit: bigint; bits: number; why: string } {
  if (scheme === 'sbw')
    return { limit: 1n << 63n, bits: 63, why: "vLLM's sbw seeds a signed 64-bit torch generator" };
  if (prf === 'hmac-sha256-v1') return { limit: 1n << 256n, bits: 256, why: 'the HMAC key is 32 bytes' };
  return { limit: 1n << 64n, bits: 64, why: "vLLM's config requires a 64-bit key" };
}

function onlyFor(parameter: VllmKeyParameter, value: unknown, applies: boolean, schemes: string): void {
  if (value !== undefined && !applies) throw new VllmKeyError(parameter, `applies only to ${schemes} keys`);
}

function finiteNumber(parameter: VllmKeyParameter, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new VllmKeyError(parameter, 'must be a number');
  return value;
}

/** Checks a tokenizer id: a shipped one, or a model's (printable, at most 200 characters). */
function checkTokenizer(tokenizer: unknown): string {
  if (typeof tokenizer !== 'string' || tokenizer.length === 0 || tokenizer.length > MAX_TOKENIZER_LENGTH) {
    throw new VllmKeyError(
      'tokenizer',
      `must be a non-empty string of at most ${MAX_TOKENIZER_LENGTH} characters`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(tokenizer)) {
    throw new VllmKeyError('tokenizer', 'must not contain control characters');
  }
  return tokenizer;
}

/**
 * Validates the parameters against what vLLM accepts and builds the key, every default explicit.
 * Throws {@link VllmKeyError} naming the parameter; no message holds the engine key.
 */
export function createVllmWatermarkKey(options: VllmKeyOptions): VllmWatermarkKey {
  if (options === null || typeof options !== 'object') throw new TypeError('options: expected an object');
  const scheme = options.scheme;
  if (!(VLLM_SCHEMES as readonly unknown[]).includes(scheme)) {
    throw new VllmKeyError('scheme', `must be one of ${VLLM_SCHEMES.join(', ')}`);
  }
  const givenPrf: unknown = options.prf ?? 'philox';
  if (!SHIPPED_PRFS[scheme].includes(givenPrf as string)) {
    throw new VllmKeyError(
      'prf',
      scheme === 'sbw'
        ? 'sbw has its own Philox convention; give philox or nothing'
        : scheme === 'gumbel'
          ? 'must be philox or hmac-sha256-v1'
          : `vLLM's ${scheme} uses philox only (hmac-sha256-v1 shipped only with gumbel)`,
    );
  }
  const prf = scheme === 'sbw' ? 'sbw-philox' : (givenPrf as VllmPrf);

  const engineKey = options.engineKey;
  if (typeof engineKey !== 'bigint') throw new VllmKeyError('engineKey', 'must be an integer');
  const { limit, bits, why } = engineKeyLimit(scheme, prf);
  if (engineKey < 0n || engineKey >= limit) {
    throw new VllmKeyError('engineKey', `must be an integer from 0 to 2^${bits} − 1 (${why})`);
  }

  const isSbw = scheme === 'sbw';
  onlyFor('sbwScheme', options.sbwScheme, isSbw, 'vllm:sbw');
  const sbwScheme = isSbw ? (options.sbwScheme ?? 'selfhash') : null;
  if (sbwScheme !== null && sbwScheme !== 'selfhash' && sbwScheme !== 'lefthash') {
    throw new VllmKeyError('sbwScheme', 'must be selfhash or lefthash');
  }
  onlyFor('sbwLefthashSeeds', options.sbwLefthashSeeds, sbwScheme === 'lefthash', 'vllm:sbw lefthash');
  const sbwLefthashSeeds = sbwScheme === 'lefthash' ? (options.sbwLefthashSeeds ?? 'detector') : null;
  if (sbwLefthashSeeds !== null && sbwLefthashSeeds !== 'detector' && sbwLefthashSeeds !== 'generator') {
    throw new VllmKeyError('sbwLefthashSeeds', 'must be detector or generator');
  }

  const contextWidth = options.contextWidth ?? (sbwScheme === 'lefthash' ? 1 : 4);
  if (!Number.isInteger(contextWidth) || contextWidth < 1 || contextWidth > MAX_CONTEXT_WIDTH) {
    throw new VllmKeyError('contextWidth', `must be an integer from 1 to ${MAX_CONTEXT_WIDTH}`);
  }

  onlyFor('alpha', options.alpha, scheme === 'dual_key_gumbel', 'vllm:dual_key_gumbel');
  let alpha: number | null = null;
  if (scheme === 'dual_key_gumbel') {
    alpha = finiteNumber('alpha', options.alpha ?? 0.1);
    if (!(alpha >= 0 && alpha <= 1)) throw new VllmKeyError('alpha', 'must be a number from 0 to 1');
  }

  const binary = scheme === 'red_green' || isSbw;
  onlyFor('gamma', options.gamma, binary, 'vllm:red_green and vllm:sbw');
  onlyFor('delta', options.delta, binary, 'vllm:red_green and vllm:sbw');
  let gamma: number | null = null;
  let delta: number | null = null;
  if (binary) {
    gamma = finiteNumber('gamma', options.gamma ?? (isSbw ? 0.5 : 0.25));
    if (!(gamma > 0 && gamma < 1))
      throw new VllmKeyError('gamma', 'must be a number strictly between 0 and 1');
    delta = finiteNumber('delta', options.delta ?? 2);
    if (delta < 0) throw new VllmKeyError('delta', 'must be a number ≥ 0');
  }

  const tokenizer = checkTokenizer(options.tokenizer ?? DEFAULT_TOKENIZER_ID);
  let vocabSize: number | null = null;
  if (options.vocabSize !== undefined) {
    if (isTokenizerId(tokenizer)) {
      throw new VllmKeyError(
        'vocabSize',
        `applies only to tokenizers tracemark does not ship (${tokenizer} has its own)`,
      );
    }
    vocabSize = options.vocabSize;
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > MAX_VOCAB_SIZE) {
      throw new VllmKeyError('vocabSize', 'must be an integer from 1 to 2^31');
    }
  }

  const key: VllmWatermarkKey = {
    kind: 'vllm',
    keyId: '',
    scheme,
    prf,
    engineKey,
    contextWidth,
    alpha,
    gamma,
    delta,
    sbwScheme,
    sbwLefthashSeeds,
    tokenizer,
    vocabSize,
  };
  // The core detector validates once more; its messages may hold the key, so they are not passed on.
  try {
    createVllmDetector(vllmDetectorParams(key));
  } catch {
    throw new VllmKeyError('scheme', 'this combination of parameters is not one vLLM accepts');
  }
  return Object.freeze({ ...key, keyId: vllmKeyIdOf(key) });
}

/** The parameters of the core's `createVllmDetector` for a key. */
export function vllmDetectorParams(key: VllmWatermarkKey): VllmKey {
  return {
    scheme: key.scheme,
    engineKey: key.engineKey,
    ...(key.prf === 'sbw-philox' ? {} : { prf: key.prf }),
    contextWidth: key.contextWidth,
    ...(key.alpha === null ? {} : { alpha: key.alpha }),
    ...(key.gamma === null ? {} : { gamma: key.gamma }),
    ...(key.sbwScheme === null ? {} : { sbwScheme: key.sbwScheme }),
    ...(key.sbwLefthashSeeds === null ? {} : { sbwLefthashSeeds: key.sbwLefthashSeeds }),
  };
}

/**
 * keyId = "vllm1_" ‖ hex(SHA-256(UTF-8(JSON of ["tracemark/vllm-key-id/v1", scheme, prf,
 * engineKey in decimal, contextWidth, alpha, gamma, sbwScheme, sbwLefthashSeeds]))[0..12]), null
 * for what does not apply. It names what marks the token ids: δ, the tokenizer and the vocabulary
 * size are not part of it.
 */
export function vllmKeyIdOf(
  key: Pick<
    VllmWatermarkKey,
    'scheme' | 'prf' | 'engineKey' | 'contextWidth' | 'alpha' | 'gamma' | 'sbwScheme' | 'sbwLefthashSeeds'
  >,
): string {
  const canonical = JSON.stringify([
    'tracemark/vllm-key-id/v1',
    key.scheme,
    key.prf,
    key.engineKey.toString(10),
    key.contextWidth,
    key.alpha,
    key.gamma,
    key.sbwScheme,
    key.sbwLefthashSeeds,
  ]);
  return VLLM_KEY_ID_PREFIX + createHash('sha256').update(canonical, 'utf8').digest('hex').slice(0, 24);
}

/** The key file (spec §9) as JSON text; it holds the engine key: write it 0600. */
export function serializeVllmKeyFile(key: VllmWatermarkKey, createdAt: Date = new Date()): string {
  const file = {
    format: VLLM_KEY_FILE_FORMAT,
    version: 1,
    keyId: key.keyId,
    scheme: key.scheme,
    prf: key.prf,
    engineKey: key.engineKey.toString(10),
    ...vllmKeyParameters(key),
    createdAt: createdAt.toISOString(),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

const FILE_FIELDS: readonly string[] = Object.freeze([
  'format',
  'version',
  'keyId',
  'scheme',
  'prf',
  'engineKey',
  'contextWidth',
  'alpha',
  'gamma',
  'delta',
  'sbwScheme',
  'sbwLefthashSeeds',
  'tokenizer',
  'vocabSize',
  'createdAt',
]);

/** Thrown for a vLLM key file that cannot be used; the message names the field, never the engine key. */
export class VllmKeyFileError extends Error {
  override readonly name = 'VllmKeyFileError';
}

/**
 * Parses a vLLM key file (an object whose `format` is `tracemark-vllm-key`). Every field that applies
 * to the scheme must be there and nothing else may be, so a hand-edited or misnamed field is refused
 * rather than read as a default; the key id must match the key material.
 */
export function parseVllmKeyFile(record: Readonly<Record<string, unknown>>): VllmWatermarkKey {
  const fail = (message: string): never => {
    throw new VllmKeyFileError(`key file: ${message}`);
  };
  if (record.format !== VLLM_KEY_FILE_FORMAT) fail(`"format" must be "${VLLM_KEY_FILE_FORMAT}"`);
  if (record.version !== 1) fail(`unsupported "version" ${JSON.stringify(record.version) ?? 'undefined'}`);
  for (const name of Object.keys(record)) {
    if (!FILE_FIELDS.includes(name)) fail(`unknown field ${JSON.stringify(name)}`);
  }
  if (typeof record.engineKey !== 'string' || !/^(0|[1-9][0-9]{0,99})$/.test(record.engineKey)) {
    fail('"engineKey" must be a decimal integer in a string');
  }
  const scheme = record.scheme;
  if (!(VLLM_SCHEMES as readonly unknown[]).includes(scheme)) {
    fail(`"scheme" must be one of ${VLLM_SCHEMES.join(', ')}`);
  }
  const vllmScheme = scheme as VllmScheme;
  const binary = vllmScheme === 'red_green' || vllmScheme === 'sbw';
  const required: Record<string, boolean> = {
    prf: true,
    contextWidth: true,
    alpha: vllmScheme === 'dual_key_gumbel',
    gamma: binary,
    delta: binary,
    sbwScheme: vllmScheme === 'sbw',
    sbwLefthashSeeds: vllmScheme === 'sbw' && record.sbwScheme === 'lefthash',
    tokenizer: true,
  };
  for (const [name, needed] of Object.entries(required)) {
    if (needed && record[name] === undefined) fail(`"${name}" is missing (required for ${vllmScheme})`);
    if (!needed && record[name] !== undefined) fail(`"${name}" does not apply to ${vllmScheme}`);
  }
  if (vllmScheme === 'sbw' && record.prf !== 'sbw-philox') fail('"prf" must be "sbw-philox" for sbw');
  const options: Record<string, unknown> = {
    scheme,
    engineKey: BigInt(record.engineKey as string),
    prf: record.prf,
    contextWidth: record.contextWidth,
    tokenizer: record.tokenizer,
  };
  for (const name of ['alpha', 'gamma', 'delta', 'sbwScheme', 'sbwLefthashSeeds', 'vocabSize']) {
    if (record[name] !== undefined) options[name] = record[name];
  }
  let key: VllmWatermarkKey;
  try {
    key = createVllmWatermarkKey(options as unknown as VllmKeyOptions);
  } catch (error) {
    if (error instanceof VllmKeyError) return fail(`"${error.parameter}" ${error.detail}`);
    throw error;
  }
  if (record.keyId !== key.keyId) {
    fail('"keyId" does not match the key material (the file is corrupt or was edited)');
  }
  return key;
}

/** The error text for text given to a key whose tokenizer tracemark does not ship. */
export function tokenizerUnavailableMessage(key: {
  readonly keyId: string;
  readonly tokenizer: string;
}): string {
  return `key ${key.keyId} is bound to tokenizer ${JSON.stringify(key.tokenizer)}; give token ids (JSONL field of ids) or a key bound to one of ${TOKENIZER_IDS.join(', ')}`;
}

/** The public parameters of a vLLM key (everything but the engine key), as key files and summaries show them. */
export function vllmKeyParameters(key: VllmWatermarkKey): Record<string, string | number> {
  return {
    contextWidth: key.contextWidth,
    ...(key.alpha === null ? {} : { alpha: key.alpha }),
    ...(key.gamma === null ? {} : { gamma: key.gamma }),
    ...(key.delta === null ? {} : { delta: key.delta }),
    ...(key.sbwScheme === null ? {} : { sbwScheme: key.sbwScheme }),
    ...(key.sbwLefthashSeeds === null ? {} : { sbwLefthashSeeds: key.sbwLefthashSeeds }),
    tokenizer: key.tokenizer,
    ...(key.vocabSize === null ? {} : { vocabSize: key.vocabSize }),
  };
}
