/**
 * `scan --account-keys`: when the gateway served each account (or keyed cohort of accounts) a sub-key of
 * its key (`tracemark serve --account-keys`), a suspect that learned from many accounts carries each
 * sub-key's mark diluted. The scan then tests the service key, every sub-key of the accounts in the
 * issuance log, and the sub-keys pooled as one test (extraction `PoolScan`), all in one Holm family.
 */
import {
  type AccountKeyMode,
  deriveAccountKey,
  describeAccountKeyMode,
  parseAccountKeyMode,
  type WatermarkKey,
} from '@tracemark/core';
import { CliError, EXIT } from '../io.ts';
import type { IssuedOutput } from './issued.ts';

export interface AccountScanKeys {
  readonly mode: AccountKeyMode;
  /** One per account (or cohort) of the log, in the accounts' order, without repeats. */
  readonly subKeys: readonly WatermarkKey[];
  /** Distinct accounts in the log. */
  readonly accounts: number;
  /** Sub-keys that marked at least one output of the log. */
  readonly seenInLog: number;
}

/** `account` or `cohort:N` from the option's text; a usage error otherwise. */
export function parseScanAccountKeyMode(text: string): AccountKeyMode {
  const mode = parseAccountKeyMode(text);
  if (mode === null || mode.kind === 'off') {
    throw new CliError(
      'TM_ERR_USAGE',
      `--account-keys must be account or cohort:N (as the gateway was served with), got ${JSON.stringify(text)}`,
      EXIT.usage,
    );
  }
  return mode;
}

/**
 * The sub-keys of `serviceKey` for the accounts of the issuance log. Refuses a log in which none of them
 * marked anything: the key or the mode is not the one the gateway served with.
 */
export function accountScanKeys(
  serviceKey: WatermarkKey,
  mode: AccountKeyMode,
  outputs: readonly IssuedOutput[],
): AccountScanKeys {
  const accounts = [...new Set(outputs.map((output) => output.account))].sort();
  const options = mode.kind === 'cohort' ? { cohorts: mode.cohorts } : {};
  const byId = new Map<string, WatermarkKey>();
  for (const account of accounts) {
    const key = deriveAccountKey(serviceKey, account, options);
    if (!byId.has(key.keyId)) byId.set(key.keyId, key);
  }
  const marked = new Set(outputs.map((output) => output.watermarkKeyId));
  const seenInLog = [...byId.keys()].filter((id) => marked.has(id)).length;
  if (accounts.length > 0 && seenInLog === 0) {
    throw new CliError(
      'TM_ERR_USAGE',
      `--account-keys ${describeAccountKeyMode(mode)}: none of the ${byId.size} sub-keys of key ${serviceKey.keyId} for the log's ${accounts.length} accounts marked any output in it; give the key and the mode the gateway served with (an epoch's key when it served an epoch)`,
      EXIT.usage,
    );
  }
  return { mode, subKeys: [...byId.values()], accounts: accounts.length, seenInLog };
}
