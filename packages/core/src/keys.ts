/** Watermark keys (spec §2): secrets, key ids, sub-keys, PRF keys and the key file. */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { createScheme, isGumbelScheme, type Scheme, type SchemeName, type SchemeParams } from './scheme.ts';

export const SECRET_LENGTH = 32;
export const KEY_ID_PREFIX = 'tmk1_';
export const DEFAULT_TOKENIZER = 'cl100k_base';

export interface WatermarkKey {
  readonly keyId: string;
  readonly secret: Uint8Array;
  readonly scheme: Scheme;
  readonly tokenizer: string;
}

export interface PrfKeys {
  readonly context: Uint8Array;
  readonly green: Uint8Array;
  readonly rank: Uint8Array;
}

function assertSecret(secret: Uint8Array, name = 'secret'): void {
  if (!(secret instanceof Uint8Array)) throw new TypeError(`${name}: expected a Uint8Array`);
  if (secret.length !== SECRET_LENGTH) {
    throw new RangeError(`${name}: expected ${SECRET_LENGTH} bytes, got ${secret.length}`);
  }
}

/** A fresh 256-bit secret from the platform's CSPRNG. */
export function generateSecret(): Uint8Array {
  return randomBytes(SECRET_LENGTH);
}

/** keyId = "tmk1_" || hex(SHA-256("tracemark/v1/key-id" || S)[0..12]). */
export function keyIdOf(secret: Uint8Array): string {
  assertSecret(secret);
  const prefix = utf8ToBytes('tracemark/v1/key-id');
  const message = new Uint8Array(prefix.length + secret.length);
  message.set(prefix);
  message.set(secret, prefix.length);
  return KEY_ID_PREFIX + bytesToHex(sha256(message).subarray(0, 12));
}

/** subkey(S, label) = HKDF-SHA-256(S, "tracemark/v1/subkey", UTF-8(label), 32). */
export function deriveSubkeySecret(secret: Uint8Array, label: string): Uint8Array {
  assertSecret(secret);
  if (typeof label !== 'string') throw new TypeError('label: expected a string');
  return hkdf(sha256, secret, utf8ToBytes('tracemark/v1/subkey'), utf8ToBytes(label), SECRET_LENGTH);
}

/** The three SipHash keys of spec §2.3. */
export function derivePrfKeys(secret: Uint8Array): PrfKeys {
  assertSecret(secret);
  const salt = utf8ToBytes('tracemark/v1/prf');
  const derive = (info: string) => hkdf(sha256, secret, salt, utf8ToBytes(info), 16);
  return Object.freeze({ context: derive('context'), green: derive('green'), rank: derive('rank') });
}

export interface GumbelPrfKeys {
  /** K_gumbel: the uniforms of `gumbel`, and key A of `dual_gumbel`. */
  readonly a: Uint8Array;
  /** K_gumbel_b: key B of `dual_gumbel`. */
  readonly b: Uint8Array;
}

/**
 * The SipHash keys of the Gumbel uniforms (watermark-gumbel §3.1): HKDF info `gumbel` and `gumbel-b`
 * under the salt of spec §2.3, independent of K_context, K_green and K_rank.
 */
export function deriveGumbelPrfKeys(secret: Uint8Array): GumbelPrfKeys {
  assertSecret(secret);
  const salt = utf8ToBytes('tracemark/v1/prf');
  const derive = (info: string) => hkdf(sha256, secret, salt, utf8ToBytes(info), 16);
  return Object.freeze({ a: derive('gumbel'), b: derive('gumbel-b') });
}

export interface CreateKeyOptions {
  readonly secret?: Uint8Array;
  readonly scheme?: SchemeParams | Scheme;
  readonly tokenizer?: string;
}

/** Builds a key from a secret (a fresh one by default) and scheme parameters. */
export function createWatermarkKey(options: CreateKeyOptions = {}): WatermarkKey {
  const secret = options.secret ?? generateSecret();
  assertSecret(secret);
  const tokenizer = options.tokenizer ?? DEFAULT_TOKENIZER;
  if (typeof tokenizer !== 'string' || tokenizer.length === 0) {
    throw new TypeError('tokenizer: expected a non-empty string');
  }
  return Object.freeze({
    keyId: keyIdOf(secret),
    secret: Uint8Array.from(secret),
    scheme: createScheme(options.scheme ?? {}),
    tokenizer,
  });
}

/** A sub-key (epoch, tenant) with the same scheme and tokenizer. */
export function deriveSubkey(key: WatermarkKey, label: string): WatermarkKey {
  return createWatermarkKey({
    secret: deriveSubkeySecret(key.secret, label),
    scheme: key.scheme,
    tokenizer: key.tokenizer,
  });
}

export interface KeyFile {
  readonly format: 'tracemark-key';
  readonly version: 1;
  readonly keyId: string;
  readonly secret: string;
  /** Green-list schemes carry γ and δ; `gumbel` neither; `dual_gumbel` α. */
  readonly scheme: KeyFileScheme;
  readonly tokenizer: string;
  readonly createdAt: string;
}

export interface KeyFileScheme {
  readonly name: SchemeName;
  readonly contextWidth: number;
  readonly gamma?: number;
  readonly delta?: number;
  readonly alpha?: number;
}

function keyFileScheme(scheme: Scheme): KeyFileScheme {
  if (scheme.name === 'gumbel') return { name: scheme.name, contextWidth: scheme.contextWidth };
  if (scheme.name === 'dual_gumbel') {
    return { name: scheme.name, contextWidth: scheme.contextWidth, alpha: scheme.alpha };
  }
  return { name: scheme.name, contextWidth: scheme.contextWidth, gamma: scheme.gamma, delta: scheme.delta };
}

/** Serializes a key as the JSON key file of spec §2.5. The result holds the secret: write it 0600. */
export function serializeKeyFile(key: WatermarkKey, createdAt: Date = new Date()): string {
  const file: KeyFile = {
    format: 'tracemark-key',
    version: 1,
    keyId: key.keyId,
    secret: bytesToHex(key.secret),
    scheme: keyFileScheme(key.scheme),
    tokenizer: key.tokenizer,
    createdAt: createdAt.toISOString(),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/** Thrown for a key file that cannot be used; the message names the field and never the secret. */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
}

function pick(record: object, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) if (field in record) out[field] = (record as Record<string, unknown>)[field];
  return out;
}

/** Parses and validates a key file. */
export function parseKeyFile(text: string): WatermarkKey {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new KeyFileError('key file: not valid JSON');
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new KeyFileError('key file: expected a JSON object');
  }
  const record = data as Record<string, unknown>;
  if (record.format !== 'tracemark-key') throw new KeyFileError('key file: "format" must be "tracemark-key"');
  if (record.version !== 1)
    throw new KeyFileError(`key file: unsupported "version" ${String(record.version)}`);
  if (typeof record.secret !== 'string' || !/^[0-9a-f]{64}$/.test(record.secret)) {
    throw new KeyFileError('key file: "secret" must be 64 lowercase hexadecimal characters');
  }
  const scheme = record.scheme;
  if (scheme === null || typeof scheme !== 'object') throw new KeyFileError('key file: "scheme" is missing');
  const params = scheme as SchemeParams;
  if (isGumbelScheme({ name: params.name ?? 'lefthash' })) {
    // watermark-gumbel §1: a Gumbel scheme object holds no γ or δ, and `gumbel` no α, whatever their value.
    const refused = params.name === 'gumbel' ? ['gamma', 'delta', 'alpha'] : ['gamma', 'delta'];
    for (const field of refused) {
      if (Object.hasOwn(params, field)) {
        throw new KeyFileError(`key file: "scheme.${field}" does not apply to the ${params.name} scheme`);
      }
    }
  }
  let key: WatermarkKey;
  try {
    key = createWatermarkKey({
      secret: hexToBytes(record.secret),
      // Green-list files are read as before (only these four fields); a Gumbel file is validated whole.
      scheme: isGumbelScheme({ name: params.name ?? 'lefthash' })
        ? params
        : (pick(params, ['name', 'contextWidth', 'gamma', 'delta']) as SchemeParams),
      tokenizer: typeof record.tokenizer === 'string' ? record.tokenizer : '',
    });
  } catch (error) {
    throw new KeyFileError(`key file: ${(error as Error).message}`);
  }
  if (record.keyId === undefined) throw new KeyFileError('key file: "keyId" is missing');
  if (record.keyId !== key.keyId) {
    throw new KeyFileError('key file: "keyId" does not match the secret (the file is corrupt or was edited)');
  }
  return key;
}
