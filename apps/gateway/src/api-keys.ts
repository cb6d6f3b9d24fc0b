/**
 * API keys (OWASP API2): `tm_live_<16 hex id>_<43 base64url chars>` (or `tm_dev_…`), 256 random bits after
 * the id, shown once, stored only as HMAC-SHA-256 under the server secret and compared in constant time.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCOPES = ['generate', 'verify', 'logprobs', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];
export type KeyEnvironment = 'live' | 'dev';

/** What the store keeps about a key: never the key itself. */
export interface ApiKeyRecord {
  /** Public id, `ak_` + 16 hex characters; the key embeds it so lookups need no scan. */
  readonly id: string;
  /** HMAC-SHA-256(server secret, key), lowercase hex. */
  readonly hash: string;
  readonly environment: KeyEnvironment;
  readonly name: string;
  /** Who the key belongs to; recorded with every issued completion. */
  readonly account: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
  /** Overrides the gateway's per-key request rate; null: the default. */
  readonly rateLimitPerMinute: number | null;
  /** Overrides the gateway's daily token quota; null: the default. */
  readonly dailyTokenQuota: number | null;
}

/** The public view of a key (admin API, `tracemark keys list`). */
export type ApiKeyInfo = Omit<ApiKeyRecord, 'hash'>;

const KEY_PATTERN = /^tm_(live|dev)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
export const SERVER_SECRET_BYTES = 32;

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** Parses "generate,verify" into scopes; throws a RangeError naming the unknown scope. */
export function parseScopes(text: string): Scope[] {
  const scopes = text
    .split(',')
    .map((scope) => scope.trim())
    .filter((scope) => scope !== '');
  if (scopes.length === 0)
    throw new RangeError(`scopes: expected a comma-separated list of ${SCOPES.join(', ')}`);
  for (const scope of scopes) {
    if (!isScope(scope))
      throw new RangeError(`scopes: unknown scope "${scope}" (expected ${SCOPES.join(', ')})`);
  }
  return [...new Set(scopes as Scope[])];
}

export function hashApiKey(serverSecret: Uint8Array, key: string): string {
  return createHmac('sha256', serverSecret).update(key, 'utf8').digest('hex');
}

export interface MintedApiKey {
  readonly id: string;
  /** The key itself: shown to its owner once, never stored. */
  readonly key: string;
  readonly hash: string;
}

export function mintApiKey(serverSecret: Uint8Array, environment: KeyEnvironment = 'live'): MintedApiKey {
  const idHex = randomBytes(8).toString('hex');
  const key = `tm_${environment}_${idHex}_${randomBytes(32).toString('base64url')}`;
  return { id: `ak_${idHex}`, key, hash: hashApiKey(serverSecret, key) };
}

/** The id a well-formed key claims, or null for anything else (which is then rejected without a lookup). */
export function apiKeyIdOf(key: string): string | null {
  const match = KEY_PATTERN.exec(key);
  return match === null ? null : `ak_${match[2]}`;
}

const DUMMY_HASH = Buffer.alloc(32);

/** Constant-time comparison of a presented key with a stored hash (a missing record compares with a dummy). */
export function verifyApiKey(serverSecret: Uint8Array, key: string, record: ApiKeyRecord | null): boolean {
  const presented = Buffer.from(hashApiKey(serverSecret, key), 'hex');
  const stored = record === null ? DUMMY_HASH : Buffer.from(record.hash, 'hex');
  if (stored.length !== presented.length) return false;
  return timingSafeEqual(presented, stored) && record !== null;
}

export type KeyState = 'active' | 'revoked' | 'expired';

export function keyState(record: ApiKeyRecord, now: Date = new Date()): KeyState {
  if (record.revokedAt !== null) return 'revoked';
  if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now.getTime()) return 'expired';
  return 'active';
}

export function publicKeyInfo(record: ApiKeyRecord): ApiKeyInfo {
  const { hash: _hash, ...info } = record;
  return info;
}
