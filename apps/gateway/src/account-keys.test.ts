import { join } from 'node:path';
import { createWatermarkKey, deriveAccountKey, deriveSubkey } from '@tracemark/core';
import { createTextDetector, readKeyFile } from '@tracemark/detection';
import { afterAll, describe, expect, it } from 'vitest';
import { keyForStoredEpoch, parseAccountKeyMode, subkeyPath } from './account-keys.ts';
import { resolveConfig } from './config.ts';
import {
  removeTemporaryDirectories,
  startTestGateway,
  type TestGateway,
  temporaryDirectory,
  writeFixedKeyFile,
} from './test-support/harness.ts';

const open: TestGateway[] = [];
afterAll(async () => {
  for (const gateway of open) await gateway.close();
  removeTemporaryDirectories();
});

describe('settings and stored labels', () => {
  it('parses off, account and cohort:N, and refuses anything else with the setting named', () => {
    expect(parseAccountKeyMode('off')).toEqual({ kind: 'off' });
    expect(parseAccountKeyMode('account')).toEqual({ kind: 'account' });
    expect(parseAccountKeyMode('cohort:16')).toEqual({ kind: 'cohort', cohorts: 16 });
    for (const bad of ['cohort:0', 'cohort:4294967296', 'cohort:', 'accounts', 'cohort:1.5', '']) {
      expect(parseAccountKeyMode(bad), bad).toBeNull();
    }
    expect(() => resolveConfig({ accountKeys: 'per-user' }, {})).toThrow(
      /--account-keys \(TRACEMARK_ACCOUNT_KEYS\) must be off, account or cohort:N/,
    );
  });

  it('a stored key_epoch names its derivation from the root key: epochs as before, accounts under an epoch', () => {
    expect(subkeyPath('2026-10')).toEqual(['epoch/2026-10']);
    expect(subkeyPath('account/acme')).toEqual(['account/acme']);
    expect(subkeyPath('2026-10/account/acme/x')).toEqual(['epoch/2026-10', 'account/acme/x']);
    expect(subkeyPath('cohort/16/3')).toEqual(['cohort/16/3']);
    const root = createWatermarkKey({ secret: new Uint8Array(32).fill(3) });
    const epoch = deriveSubkey(root, 'epoch/2026-10');
    expect(keyForStoredEpoch(root, '2026-10').keyId).toBe(epoch.keyId);
    expect(keyForStoredEpoch(root, '2026-10/account/acme').keyId).toBe(deriveAccountKey(epoch, 'acme').keyId);
    expect(keyForStoredEpoch(root, 'account/acme').keyId).toBe(deriveAccountKey(root, 'acme').keyId);
  });
});

describe('a gateway serving each account under its own sub-key', () => {
  it('marks, records and verifies per account; the matching key is the account’s', async () => {
    const dataDir = temporaryDirectory();
    // A fixed root key, which the gateway finds in its data directory: with a fresh one each run, beta's key
    // called alpha's text watermarked about once in twenty thousand runs (a false positive at fpr 1e-4).
    writeFixedKeyFile(join(dataDir, 'watermark-key.json'), 43);
    const gateway = await startTestGateway({
      config: { dataDir, accountKeys: 'account', keyEpoch: '2026-12' },
    });
    open.push(gateway);
    const keys = new Map<string, string>();
    for (const account of ['alpha', 'beta']) {
      const created = await gateway.call('POST', '/v1/admin/keys', {
        scopes: ['generate', 'verify'],
        account,
      });
      expect(created.status).toBe(201);
      keys.set(account, created.json.key);
    }
    const texts = new Map<string, string>();
    for (const [account, key] of keys) {
      const response = await gateway.call(
        'POST',
        '/v1/completions',
        {
          model: 'tracemark-ngram',
          prompt: 'The harbour master said on Tuesday that',
          max_tokens: 160,
          seed: 4,
        },
        key,
      );
      expect(response.status).toBe(200);
      texts.set(account, response.json.choices[0].text);
    }
    const root = await readKeyFile(join(dataDir, 'watermark-key.json'));
    const serving = deriveSubkey(root, 'epoch/2026-12');
    const accountKey = (account: string) => deriveAccountKey(serving, account);
    // The log names each output's key: the account's sub-key, stored under the epoch.
    const log = (await gateway.call('GET', '/v1/admin/issuance')).json.data;
    for (const account of ['alpha', 'beta']) {
      const record = log.find((entry: { account: string }) => entry.account === account);
      expect(record.watermarkKeyId).toBe(accountKey(account).keyId);
      expect(record.keyEpoch).toBe(`2026-12/account/${account}`);
    }
    // The same seed and prompt: the texts differ because the keys do.
    expect(texts.get('alpha')).not.toBe(texts.get('beta'));
    // Verification tests the serving key and both sub-keys (Holm), as detection does with those keys.
    const tested = [serving, accountKey('alpha'), accountKey('beta')];
    const result = (await gateway.call('POST', '/v1/verify', { text: texts.get('alpha') })).json;
    const expected = createTextDetector({ keys: tested }).detectText(texts.get('alpha')!);
    expect(result.verdict).toBe('watermarked');
    expect(result.detection).toMatchObject({
      keyId: accountKey('alpha').keyId,
      log10PAdjusted: expected.log10PAdjusted,
      keysTested: 3,
    });
    // Under beta's key alone, alpha's text is not marked.
    expect(
      createTextDetector({ keys: [accountKey('beta')] }).detectText(texts.get('alpha')!).verdict,
    ).not.toBe('watermarked');
  });
});
