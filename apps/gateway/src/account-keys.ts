/**
 * Per-account (or per-cohort) watermark keys (docs/spec/subkeys.md; research `stealing`): with
 * TRACEMARK_ACCOUNT_KEYS=account each account's completions carry the serving key's sub-key
 * `account/<id>`, with cohort:N the sub-key of its keyed cohort. What one account harvests teaches it one
 * sub-key; the issuance log records which key marked each output, and verification tests every sub-key
 * that has marked something (Holm), so the key that matches names the account (or cohort).
 *
 * A sub-key is registered in the key-epoch table, as an epoch is, before its first output is recorded. The
 * table's `key_epoch` column then holds the derivation from the root key as one string:
 *   E                    → epoch/E                      (an epoch, as before)
 *   account/ID           → account/ID                   (no epoch)
 *   E/account/ID         → epoch/E, then account/ID
 *   cohort/N/C, E/cohort/N/C likewise
 * (an epoch label has no `/`: config.ts), so stored values stay readable by earlier versions' epochs.
 */
import {
  type AccountKeyMode,
  accountKeyLabel,
  createWatermarker,
  deriveSubkey,
  type Watermarker,
  type WatermarkKey,
} from '@tracemark/core';

export { type AccountKeyMode, describeAccountKeyMode, parseAccountKeyMode } from '@tracemark/core';

const ACCOUNT_OR_COHORT = /^(?:account|cohort)\//;

/** The sub-key labels, from the root key, of a stored `key_epoch` value (see the module comment). */
export function subkeyPath(stored: string): string[] {
  if (ACCOUNT_OR_COHORT.test(stored)) return [stored];
  const slash = stored.indexOf('/');
  if (slash < 0) return [`epoch/${stored}`];
  return [`epoch/${stored.slice(0, slash)}`, stored.slice(slash + 1)];
}

/** The key a stored `key_epoch` value names, derived from the root key. */
export function keyForStoredEpoch(root: WatermarkKey, stored: string): WatermarkKey {
  let key = root;
  for (const label of subkeyPath(stored)) key = deriveSubkey(key, label);
  return key;
}

export interface AccountKey {
  readonly watermarker: Watermarker;
  readonly keyId: string;
  /** What the issuance record and the key-epoch table store (see the module comment). */
  readonly keyEpoch: string;
}

export interface AccountKeys {
  readonly mode: AccountKeyMode;
  /** The account's key; its first use registers it (verification tests registered keys). */
  forAccount(account: string): Promise<AccountKey>;
}

export interface AccountKeysOptions {
  readonly mode: AccountKeyMode;
  /** The serving key: the root key, or its epoch sub-key. */
  readonly servingKey: WatermarkKey;
  /** The serving key's epoch label; null: the root key serves. */
  readonly keyEpoch: string | null;
  readonly specialTokenIds: Iterable<number>;
  /** Records a key in the key-epoch table (idempotent). */
  readonly register: (watermarkKeyId: string, keyEpoch: string) => Promise<void>;
  /** Watermarkers kept; default 4096 (a watermarker is a few kilobytes). */
  readonly cacheSize?: number;
}

/** null when the mode is `off`: every account is served under the serving key. */
export function createAccountKeys(options: AccountKeysOptions): AccountKeys | null {
  const { mode, servingKey } = options;
  if (mode.kind === 'off') return null;
  const cacheSize = options.cacheSize ?? 4096;
  const specialTokenIds = [...options.specialTokenIds];
  // label → the key's registration (shared by concurrent first uses), most recently used last.
  const cache = new Map<string, Promise<AccountKey>>();
  return {
    mode,
    forAccount(account) {
      const label = accountKeyLabel(
        servingKey,
        account,
        mode.kind === 'cohort' ? { cohorts: mode.cohorts } : undefined,
      );
      let entry = cache.get(label);
      if (entry !== undefined) {
        cache.delete(label);
        cache.set(label, entry);
        return entry;
      }
      entry = (async () => {
        const key = deriveSubkey(servingKey, label);
        const keyEpoch = options.keyEpoch === null ? label : `${options.keyEpoch}/${label}`;
        await options.register(key.keyId, keyEpoch);
        return { watermarker: createWatermarker(key, { specialTokenIds }), keyId: key.keyId, keyEpoch };
      })();
      entry.catch(() => cache.delete(label));
      cache.set(label, entry);
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
      return entry;
    },
  };
}
