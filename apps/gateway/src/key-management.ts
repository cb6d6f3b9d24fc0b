/** Creating, listing and revoking API keys: shared by the admin API and `tracemark keys`. */
import { loneSurrogateIndex } from '@tracemark/core';
import {
  type ApiKeyInfo,
  type ApiKeyRecord,
  type KeyEnvironment,
  mintApiKey,
  publicKeyInfo,
  type Scope,
} from './api-keys.ts';
import type { GatewayStorage } from './storage/types.ts';

export interface CreateApiKeyOptions {
  readonly scopes: readonly Scope[];
  readonly name?: string;
  readonly account?: string;
  readonly environment?: KeyEnvironment;
  /** ISO 8601; null or absent: never expires. */
  readonly expiresAt?: string | null;
  readonly rateLimitPerMinute?: number | null;
  readonly dailyTokenQuota?: number | null;
  readonly now?: Date;
}

export interface CreatedApiKey {
  readonly info: ApiKeyInfo;
  /** Shown once: the store keeps only its HMAC. */
  readonly key: string;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * An account id or key name is stored, listed and (an account) hashed into its watermark key as UTF-8: a lone
 * surrogate would be stored as U+FFFD, so that two accounts became one, and a control character (NUL, a
 * terminal escape) would reach every list and log that shows it.
 */
export function checkKeyLabel(field: string, value: string | undefined): void {
  if (value === undefined) return;
  const lone = loneSurrogateIndex(value);
  if (lone >= 0)
    throw new RangeError(`${field}: a lone surrogate at index ${lone}; send well-formed Unicode text`);
  const control = value.search(CONTROL);
  if (control >= 0) {
    const code = value.charCodeAt(control).toString(16).toUpperCase().padStart(4, '0');
    throw new RangeError(`${field}: a control character (U+${code}) at index ${control}`);
  }
}

export async function createApiKey(
  storage: GatewayStorage,
  serverSecret: Uint8Array,
  options: CreateApiKeyOptions,
): Promise<CreatedApiKey> {
  if (options.scopes.length === 0) throw new RangeError('scopes: at least one scope is required');
  checkKeyLabel('account', options.account);
  checkKeyLabel('name', options.name);
  const now = options.now ?? new Date();
  if (options.expiresAt !== undefined && options.expiresAt !== null) {
    const expires = Date.parse(options.expiresAt);
    if (!Number.isFinite(expires)) throw new RangeError('expiresAt: expected an ISO 8601 date and time');
    if (expires <= now.getTime()) throw new RangeError('expiresAt: must be in the future');
  }
  const environment = options.environment ?? 'live';
  const minted = mintApiKey(serverSecret, environment);
  const record: ApiKeyRecord = {
    id: minted.id,
    hash: minted.hash,
    environment,
    name: options.name ?? '',
    account: options.account ?? 'default',
    scopes: [...new Set(options.scopes)],
    createdAt: now.toISOString(),
    expiresAt:
      options.expiresAt === undefined || options.expiresAt === null
        ? null
        : new Date(Date.parse(options.expiresAt)).toISOString(),
    revokedAt: null,
    rateLimitPerMinute: options.rateLimitPerMinute ?? null,
    dailyTokenQuota: options.dailyTokenQuota ?? null,
  };
  await storage.insertApiKey(record);
  return { info: publicKeyInfo(record), key: minted.key };
}

export async function listApiKeys(storage: GatewayStorage): Promise<ApiKeyInfo[]> {
  return (await storage.listApiKeys()).map(publicKeyInfo);
}

/** Revokes a key at once; returns its updated info, or null when there is no such key. */
export async function revokeApiKey(
  storage: GatewayStorage,
  id: string,
  now: Date = new Date(),
): Promise<ApiKeyInfo | null> {
  await storage.revokeApiKey(id, now.toISOString());
  const record = await storage.getApiKey(id);
  return record === null ? null : publicKeyInfo(record);
}
