/**
 * `tracemark scan --issued … --account-keys`: a gateway serving each account a sub-key of its key
 * (`--account-keys account`); a suspect corpus built from several accounts' answers. The scan derives
 * the accounts' sub-keys from the service key and the log, tests each and all of them pooled (one Holm
 * family); the service key alone finds nothing, since it marked nothing. Runs in-process through
 * the CLI's `run`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunningGateway, resolveConfig, startServer } from '@tracemark/gateway';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir, removeTemporaryDirectories, runCli, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

process.env.TRACEMARK_CACHE_DIR = cacheDir;

async function scan(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const result = await runCli(['scan', ...argv], '', {
    PATH: process.env.PATH,
    TRACEMARK_CACHE_DIR: cacheDir,
  });
  return { code: result.code, out: result.stdout, err: result.stderr };
}

const ACCOUNTS = ['acme', 'bolt', 'cobalt', 'delta', 'ember', 'flint'];

describe('tracemark scan --account-keys', () => {
  let running: RunningGateway;
  let dataDir: string;
  let keyFile: string;
  let corpus: string;

  beforeAll(async () => {
    dataDir = temporaryDirectory('tracemark-scan-account-keys-');
    running = await startServer(
      resolveConfig(
        { port: 0, host: '127.0.0.1', dataDir, accountKeys: 'account' },
        { TRACEMARK_CACHE_DIR: cacheDir },
      ),
      { logger: false, handleSignals: false },
    );
    keyFile = join(dataDir, 'watermark-key.json');
    expect(existsSync(keyFile)).toBe(true);
    const call = async (path: string, key: string, body: unknown) => {
      const response = await fetch(`${running.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status, path).toBeLessThan(300);
      return (await response.json()) as any;
    };
    const answers: string[] = [];
    for (const [a, account] of ACCOUNTS.entries()) {
      const created = await call('/v1/admin/keys', running.firstStart.devApiKey!, {
        scopes: ['generate'],
        account,
        name: account,
      });
      for (let i = 0; i < 8; i++) {
        const completion = await call('/v1/chat/completions', created.key, {
          model: 'tracemark-ngram',
          messages: [{ role: 'user', content: `${account} asks question ${i} about topic ${i * 5 + a}.` }],
          max_tokens: 120,
          temperature: 1,
          seed: 100 * a + i,
        });
        answers.push(completion.choices[0].message.content as string);
      }
    }
    const human = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' })).slice(0, 30);
    corpus = join(dataDir, 'suspect.jsonl');
    writeFileSync(
      corpus,
      `${[...answers, ...human.map((d) => d.text.slice(0, 1200))].map((text) => JSON.stringify({ text })).join('\n')}\n`,
    );
  }, 180_000);

  afterAll(async () => {
    await running?.close();
  });

  it("tests the service key, each account's sub-key and the pool in one Holm family", async () => {
    const result = await scan([
      '--key',
      keyFile,
      '--issued',
      dataDir,
      '--account-keys',
      'account',
      '--fake-keys',
      '20',
      '--json',
      corpus,
    ]);
    expect(result.err).toBe('');
    const report = JSON.parse(result.out);
    expect(report.accountKeys).toEqual({
      mode: 'account',
      accounts: ACCOUNTS.length,
      subKeys: ACCOUNTS.length,
      seenInLog: ACCOUNTS.length,
    });
    expect(report.keys).toHaveLength(1 + ACCOUNTS.length);
    const [service, ...subKeys] = report.keys;
    // The service key marked nothing: no evidence under it alone.
    expect(service.verdict).not.toBe('radioactive');
    const pool = report.pool;
    expect(pool.keyIds).toEqual(subKeys.map((k: any) => k.keyId));
    expect(pool.numScored).toBe(subKeys.reduce((sum: number, k: any) => sum + k.numScored, 0));
    expect(pool.numGreen).toBe(subKeys.reduce((sum: number, k: any) => sum + k.numGreen, 0));
    expect(pool.verdict).toBe('radioactive');
    expect(report.verdict).toBe('radioactive');
    // Holm over the service key, six sub-keys and the pool: the smallest p is multiplied by 8.
    const smallest = Math.min(service.log10P, pool.log10P, ...subKeys.map((k: any) => k.log10P));
    const adjusted = Math.min(
      service.log10PAdjusted,
      pool.log10PAdjusted,
      ...subKeys.map((k: any) => k.log10PAdjusted),
    );
    expect(adjusted).toBeCloseTo(smallest + Math.log10(8), 6);

    const text = await scan(['--key', keyFile, '--issued', dataDir, '--account-keys', 'account', corpus]);
    expect(text.out).toMatch(
      /pool of 6 sub-keys \(γ=0\.25, green counts summed over the keys\): RADIOACTIVE/,
    );
    expect(text.out).toMatch(
      /account keys \(account\): 6 sub-keys for the log's 6 accounts, 6 of them marked outputs in it/,
    );

    // Without --account-keys the scan tests the service key alone, which marked nothing here.
    const alone = JSON.parse((await scan(['--key', keyFile, '--issued', dataDir, '--json', corpus])).out);
    expect(alone.pool).toBeNull();
    expect(alone.verdict).not.toBe('radioactive');
  }, 120_000);

  it('refuses a mode the log was not served with, and the combinations it does not support', async () => {
    const cohorts = await scan(['--key', keyFile, '--issued', dataDir, '--account-keys', 'cohort:4', corpus]);
    expect(cohorts.code).toBe(2);
    expect(cohorts.err).toMatch(/none of the \d sub-keys of key .* marked any output in it/);
    for (const [argv, message] of [
      [['--account-keys', 'account'], /needs --issued/],
      [['--issued', dataDir, '--account-keys', 'per-user'], /must be account or cohort:N/],
      [['--issued', dataDir, '--account-keys', 'off'], /must be account or cohort:N/],
      [['--issued', dataDir, '--account-keys', 'account', '--attribute'], /cannot be combined/],
      [
        ['--issued', dataDir, '--account-keys', 'account', '--evidence', join(dataDir, 'e.json')],
        /--evidence/,
      ],
    ] as const) {
      const result = await scan(['--key', keyFile, ...argv, corpus]);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.err, argv.join(' ')).toMatch(message);
    }
  }, 60_000);
});
