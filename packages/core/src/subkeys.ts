/**
 * Per-account and per-cohort watermark keys (docs/spec/subkeys.md): what one account can learn from
 * its outputs (watermark stealing, Jovanović et al. 2024, https://arxiv.org/abs/2402.19361) is one
 * sub-key, and the key that matches a text names the account (or cohort) it was issued to.
 *
 * account key = subkey(S, "account/" || accountId)                    (spec §2.2 with that label)
 * cohort key  = subkey(S, "cohort/" || decimal(n) || "/" || decimal(c))
 *   c = uint64_be(HKDF(IKM = S, salt = "tracemark/v1/cohort", info = UTF-8(accountId), L = 8)) mod n
 *
 * Both are ordinary sub-keys of spec §2.2, so anything that tests a sub-key by label tests them too.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { deriveSubkey, type WatermarkKey } from './keys.ts';

/** The label prefix of per-account sub-keys. */
export const ACCOUNT_KEY_LABEL_PREFIX = 'account/';
/** The label prefix of per-cohort sub-keys. */
export const COHORT_KEY_LABEL_PREFIX = 'cohort/';
/** HKDF salt of the keyed cohort assignment. */
export const COHORT_SALT = 'tracemark/v1/cohort';
/** Longest account id, in UTF-8 bytes. */
export const MAX_ACCOUNT_ID_BYTES = 1024;
/** Most cohorts: 2^32 − 1 (the assignment is a 64-bit value reduced mod n, bias below 2^−32). */
export const MAX_COHORTS = 0xffffffff;

export interface AccountKeyOptions {
  /**
   * Group accounts into this many cohorts, assigned by a keyed hash of the account id (an outsider
   * cannot tell which accounts share a cohort); the key is the cohort's. Omitted: one key per account.
   */
  readonly cohorts?: number;
}

/** How a service keys its accounts: one key for all (`off`), one per account, or one per keyed cohort. */
export type AccountKeyMode =
  | { readonly kind: 'off' }
  | { readonly kind: 'account' }
  | { readonly kind: 'cohort'; readonly cohorts: number };

/** `off`, `account` or `cohort:N` (N from 1 to 2^32 − 1); null when the value is none of these. */
export function parseAccountKeyMode(value: string): AccountKeyMode | null {
  if (value === 'off') return { kind: 'off' };
  if (value === 'account') return { kind: 'account' };
  const match = /^cohort:([1-9][0-9]{0,9})$/.exec(value);
  if (match === null) return null;
  const cohorts = Number(match[1]);
  return cohorts <= MAX_COHORTS ? { kind: 'cohort', cohorts } : null;
}

export function describeAccountKeyMode(mode: AccountKeyMode): string {
  return mode.kind === 'cohort' ? `cohort:${mode.cohorts}` : mode.kind;
}

/** With the u flag, a surrogate pair is one code point: only lone halves match. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Where `text` holds a lone surrogate (a UTF-16 half that UTF-8 cannot encode: TextEncoder writes U+FFFD),
 * or −1 when it is well-formed.
 */
export function loneSurrogateIndex(text: string): number {
  return text.search(LONE_SURROGATE);
}

function assertAccountId(accountId: string): Uint8Array {
  if (typeof accountId !== 'string') throw new TypeError('accountId: expected a string');
  if (accountId.length === 0) throw new RangeError('accountId: expected a non-empty string');
  // A lone surrogate would encode as U+FFFD: two different ids would share a key.
  if (loneSurrogateIndex(accountId) >= 0)
    throw new RangeError('accountId: not well-formed UTF-16 (a lone surrogate)');
  const bytes = utf8ToBytes(accountId);
  if (bytes.length > MAX_ACCOUNT_ID_BYTES) {
    throw new RangeError(`accountId: ${bytes.length} UTF-8 bytes, at most ${MAX_ACCOUNT_ID_BYTES}`);
  }
  return bytes;
}

function assertCohorts(cohorts: number): void {
  if (typeof cohorts !== 'number' || !Number.isInteger(cohorts) || cohorts < 1 || cohorts > MAX_COHORTS) {
    throw new RangeError(`cohorts: expected an integer from 1 to ${MAX_COHORTS}, got ${String(cohorts)}`);
  }
}

function assertServiceKey(serviceKey: WatermarkKey): void {
  if (serviceKey === null || typeof serviceKey !== 'object' || !(serviceKey.secret instanceof Uint8Array)) {
    throw new TypeError('serviceKey: expected a WatermarkKey');
  }
}

/**
 * The cohort (0 … cohorts − 1) of an account: HKDF-SHA-256 of the service secret with the account id
 * as info, 8 bytes read big-endian, reduced mod `cohorts`. Keyed, so only the service can compute it.
 */
export function accountCohort(serviceKey: WatermarkKey, accountId: string, cohorts: number): number {
  assertServiceKey(serviceKey);
  const info = assertAccountId(accountId);
  assertCohorts(cohorts);
  const bytes = hkdf(sha256, serviceKey.secret, utf8ToBytes(COHORT_SALT), info, 8);
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return Number(value % BigInt(cohorts));
}

/** The sub-key label (spec §2.2) of an account's key: `account/<id>`, or `cohort/<n>/<c>`. */
export function accountKeyLabel(
  serviceKey: WatermarkKey,
  accountId: string,
  options: AccountKeyOptions = {},
): string {
  assertServiceKey(serviceKey);
  assertAccountId(accountId);
  if (options.cohorts === undefined) return ACCOUNT_KEY_LABEL_PREFIX + accountId;
  const cohort = accountCohort(serviceKey, accountId, options.cohorts);
  return `${COHORT_KEY_LABEL_PREFIX}${options.cohorts}/${cohort}`;
}

/**
 * The key that marks an account's outputs: a sub-key of the service key with the same scheme,
 * parameters and tokenizer, and its own key id. Deterministic: the service stores no new secret.
 */
export function deriveAccountKey(
  serviceKey: WatermarkKey,
  accountId: string,
  options: AccountKeyOptions = {},
): WatermarkKey {
  return deriveSubkey(serviceKey, accountKeyLabel(serviceKey, accountId, options));
}
