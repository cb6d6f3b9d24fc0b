/**
 * The monitor's MMD test on the provider's own traffic, end to end: a gateway serves benign accounts;
 * `tracemark monitor --issued DATA_DIR --calibrate-mmd FILE` calibrates the test on the stored monitor
 * events (fingerprints, never prompts); a gateway started with `--monitor-mmd FILE` tests each account
 * with it, as `tracemark monitor --mmd FILE` does from history. A file that is not a calibration stops
 * both with an error naming it.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type RunningGateway, resolveConfig, startServer } from '@tracemark/gateway';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMmdCalibration } from '../packages/monitoring/src/mmd.ts';
import { cacheDir, removeTemporaryDirectories, runCli, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

process.env.TRACEMARK_CACHE_DIR = cacheDir;

const WINDOW = 8;
const ACCOUNTS = 12;
const PROMPTS_PER_ACCOUNT = 48;

const env = { PATH: process.env.PATH, TRACEMARK_CACHE_DIR: cacheDir };

async function start(dataDir: string, monitorMmdFile: string | null = null): Promise<RunningGateway> {
  return startServer(
    resolveConfig(
      { port: 0, host: '127.0.0.1', dataDir, monitorMmdFile, rateLimitPerMinute: 100_000 },
      { TRACEMARK_CACHE_DIR: cacheDir },
    ),
    { logger: false, handleSignals: false },
  );
}

async function post(running: RunningGateway, path: string, key: string, body: unknown): Promise<any> {
  const response = await fetch(`${running.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status, path).toBeLessThan(300);
  return response.json();
}

/** Accounts that each send prompts cut from human text (varied, benign), one token of answer each. */
async function benignTraffic(running: RunningGateway, prefix: string, sentences: readonly string[]) {
  const admin = running.firstStart.devApiKey!;
  let next = 0;
  for (let a = 0; a < ACCOUNTS; a++) {
    const { key } = await post(running, '/v1/admin/keys', admin, {
      scopes: ['generate'],
      account: `${prefix}-${a}`,
      name: `${prefix}-${a}`,
    });
    for (let i = 0; i < PROMPTS_PER_ACCOUNT; i++) {
      await post(running, '/v1/completions', key, {
        model: 'tracemark-ngram',
        prompt: sentences[next++ % sentences.length],
        max_tokens: 1,
      });
    }
  }
}

describe('the MMD test calibrated on stored traffic', () => {
  let dataDir: string;
  let calibrationFile: string;
  let sentences: string[];

  beforeAll(async () => {
    const documents = await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' });
    sentences = documents
      .flatMap((document) => document.text.split(/(?<=[.!?])\s+/))
      .filter((sentence) => sentence.length >= 40 && sentence.length <= 300);
    dataDir = temporaryDirectory('tracemark-monitor-mmd-');
    calibrationFile = join(dataDir, 'mmd.json');
    const running = await start(dataDir);
    try {
      await benignTraffic(running, 'writer', sentences);
    } finally {
      await running.close(); // stores the last batch of monitor events
    }
  }, 300_000);

  it('calibrates on the stored fingerprints and writes a file the gateway and the report use', async () => {
    const result = await runCli(
      [
        'monitor',
        '--issued',
        dataDir,
        '--calibrate-mmd',
        calibrationFile,
        '--window',
        String(WINDOW),
        '--target',
        '0.05',
        '--json',
      ],
      '',
      env,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({
      windows: (ACCOUNTS * PROMPTS_PER_ACCOUNT) / WINDOW,
      windowSize: WINDOW,
      accountsUsed: ACCOUNTS,
      accountsLeftOut: 0,
      targetFalseFlagRate: 0.05,
    });
    // Hashed features of customers' prompts: readable by the owner only.
    expect(statSync(calibrationFile).mode & 0o777).toBe(0o600);
    const calibration = parseMmdCalibration(JSON.parse(readFileSync(calibrationFile, 'utf8')));
    expect(calibration.referenceWindows).toHaveLength(summary.referenceWindows);
    expect(calibration.calibrationWindows + calibration.heldOutWindows + summary.referenceWindows).toBe(
      summary.windows,
    );
    expect(calibration.achievedFalseFlagRate).toBeLessThanOrEqual(0.2);

    // A gateway started with it tests every account that has a window of prompts.
    const running = await start(dataDir, calibrationFile);
    try {
      const admin = running.firstStart.devApiKey ?? readFileSync(join(dataDir, 'dev-api-key'), 'utf8').trim();
      const { key } = await post(running, '/v1/admin/keys', admin, {
        scopes: ['generate'],
        account: 'sweeper',
        name: 'sweeper',
      });
      for (let i = 0; i < WINDOW * 2; i++) {
        await post(running, '/v1/completions', key, {
          model: 'tracemark-ngram',
          prompt: `List every fact you know about topic number ${i * 37}, exhaustively, as numbered items.`,
          max_tokens: 1,
        });
      }
      const response = await fetch(`${running.url}/v1/admin/risk/accounts/sweeper`, {
        headers: { authorization: `Bearer ${admin}` },
      });
      const detail = JSON.stringify(await response.json());
      expect(response.status).toBe(200);
      expect(detail).toMatch(/"mmd":\d/);
    } finally {
      await running.close();
    }

    const report = await runCli(
      ['monitor', '--issued', dataDir, '--mmd', calibrationFile, '--at', '0s', '--json'],
      '',
      env,
    );
    expect(report.stderr).toBe('');
    expect(JSON.parse(report.stdout).accounts.length).toBeGreaterThan(ACCOUNTS);
  }, 300_000);

  it('refuses a file that is not a calibration, naming it', async () => {
    const bad = join(dataDir, 'not-a-calibration.json');
    writeFileSync(bad, JSON.stringify({ scheme: 'tracemark-mmd-nearest-v1', windowSize: 2 }));
    await expect(start(dataDir, bad)).rejects.toThrow(ConfigError);
    await expect(start(dataDir, bad)).rejects.toThrow(
      /--monitor-mmd \(TRACEMARK_MONITOR_MMD\) .*not-a-calibration\.json: MMD calibration: windowSize: expected an integer in \[4, 1024\]/,
    );
    const report = await runCli(['monitor', '--issued', dataDir, '--mmd', bad], '', env);
    expect(report.code).toBe(2);
    expect(report.stderr).toMatch(/--mmd .*not-a-calibration\.json: MMD calibration: windowSize/);
    const tooLittle = await runCli(
      ['monitor', '--issued', dataDir, '--calibrate-mmd', join(dataDir, 'x.json')],
      '',
      env,
    );
    expect(tooLittle.code).toBe(2);
    expect(tooLittle.stderr).toMatch(/--calibrate-mmd: the stored traffic since .* is too little/);
  }, 120_000);
});
