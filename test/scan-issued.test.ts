/**
 * `tracemark scan --issued` on a real gateway's issuance log: the SQLite file (read-only), the gateway
 * over HTTP (GET /v1/admin/issuance) and PostgreSQL (a gateway running on a fresh schema); `--account`;
 * `--attribute` naming the account whose outputs the corpus was built from, and not the other one.
 * Runs in-process through commander (as cli.ts registers the command).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type RunningGateway, resolveConfig, startServer } from '@tracemark/gateway';
import { loadHumanCorpus } from '@tracemark/lm';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerEvidence } from '../apps/cli/src/commands/evidence.ts';
import { registerScan } from '../apps/cli/src/commands/scan.ts';
import { CliError, type CliIo } from '../apps/cli/src/io.ts';
import { TEST_DATABASE_URL } from '../apps/gateway/src/test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../apps/gateway/src/test-support/services.ts';
import { cacheDir, removeTemporaryDirectories, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

process.env.TRACEMARK_CACHE_DIR = cacheDir;

type Result = { code: number; out: string; err: string };

function scan(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return cli(['scan', ...argv], env);
}

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    stdin: new PassThrough(),
    stdoutIsTTY: false,
    stderrIsTTY: false,
    env: { PATH: process.env.PATH, TRACEMARK_CACHE_DIR: cacheDir, ...env },
  };
  let code = 0;
  const program = new Command('tracemark').exitOverride().configureOutput({
    writeOut: (t) => (out += t),
    writeErr: (t) => (err += t),
  });
  const setExit = (c: number) => {
    code = c;
  };
  registerScan(program, io, setExit);
  registerEvidence(program, io, setExit);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) code = error.exitCode === 0 ? 0 : 2;
    else if (error instanceof CliError) {
      err += `error: ${error.message}\n`;
      code = error.exitCode;
    } else throw error;
  }
  return { code, out, err };
}

interface Gateway {
  readonly running: RunningGateway;
  readonly dataDir: string;
  readonly adminKey: string;
  call(path: string, key: string, body?: unknown): Promise<{ status: number; json: any }>;
}

async function startGateway(databaseUrl: string | null = null): Promise<Gateway> {
  const dataDir = temporaryDirectory('tracemark-scan-issued-');
  const running = await startServer(
    resolveConfig({ port: 0, host: '127.0.0.1', dataDir, databaseUrl }, { TRACEMARK_CACHE_DIR: cacheDir }),
    { logger: false, handleSignals: false },
  );
  const adminKey = running.firstStart.devApiKey!;
  const call = async (path: string, key: string, body?: unknown) => {
    const response = await fetch(`${running.url}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, json: await response.json() };
  };
  return { running, dataDir, adminKey, call };
}

async function accountKey(gateway: Gateway, account: string): Promise<string> {
  const created = await gateway.call('/v1/admin/keys', gateway.adminKey, {
    scopes: ['generate'],
    account,
    name: account,
  });
  expect(created.status).toBe(201);
  return created.json.key as string;
}

/** `count` chat completions with varied prompts; returns the answers. */
async function harvest(
  gateway: Gateway,
  key: string,
  label: string,
  count: number,
  firstSeed: number,
): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await gateway.call('/v1/chat/completions', key, {
      model: 'tracemark-ngram',
      messages: [{ role: 'user', content: `${label} question ${i}: tell me about topic ${i * 7 + 3}.` }],
      max_tokens: 160,
      temperature: 1,
      seed: firstSeed + i,
    });
    expect(response.status).toBe(200);
    answers.push(response.json.choices[0].message.content as string);
  }
  return answers;
}

const jsonl = (texts: readonly string[]): string =>
  `${texts.map((text) => JSON.stringify({ text })).join('\n')}\n`;

describe('tracemark scan --issued', () => {
  let gateway: Gateway;
  let keyFile: string;
  let corpus: string;
  let cleanCorpus: string;

  beforeAll(async () => {
    gateway = await startGateway();
    keyFile = join(gateway.dataDir, 'watermark-key.json');
    expect(existsSync(keyFile)).toBe(true);
    const [alpha, beta] = [await accountKey(gateway, 'alpha'), await accountKey(gateway, 'beta')];
    const alphaAnswers = await harvest(gateway, alpha, 'alpha', 40, 1000);
    await harvest(gateway, beta, 'beta', 40, 5000);
    const human = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' })).slice(0, 40);
    // The suspect corpus: alpha's answers among human text.
    corpus = join(gateway.dataDir, 'suspect.jsonl');
    writeFileSync(corpus, jsonl([...alphaAnswers, ...human.map((d) => d.text.slice(0, 1200))]));
    cleanCorpus = join(gateway.dataDir, 'clean.jsonl');
    writeFileSync(cleanCorpus, jsonl(human.map((d) => d.text.slice(0, 2000))));
  }, 120_000);

  afterAll(async () => {
    await gateway?.running.close();
  });

  it('reads the SQLite log read-only, supervised, and attributes the corpus to alpha, not beta', async () => {
    const result = await scan([
      '--key',
      keyFile,
      '--issued',
      gateway.dataDir,
      '--attribute',
      '--fake-keys',
      '20',
      '--json',
      corpus,
    ]);
    expect(result.err).toBe('');
    const report = JSON.parse(result.out);
    expect(report.supervised).toBe(true);
    expect(report.issuedLog).toMatchObject({ numOutputs: 80, pruned: 0, account: null });
    expect(report.verdict).toBe('radioactive');
    expect(report.keys[0].dose).not.toBeNull();
    const { attribution } = report;
    expect(attribution.accountsTested).toBe(2);
    expect(attribution.attributedTo).toEqual(['alpha']);
    const byName = Object.fromEntries(attribution.accounts.map((row: any) => [row.account, row]));
    expect(byName.alpha.log10PAdjusted).toBeLessThan(-6);
    expect(byName.beta.log10PAdjusted).toBeGreaterThan(-2);
    expect(byName.alpha.numScored).toBeGreaterThan(0);
    // Holm over two accounts: the smallest p is doubled.
    expect(byName.alpha.log10PAdjusted).toBeCloseTo(Math.min(0, byName.alpha.log10P + Math.log10(2)), 6);
  }, 60_000);

  it('--account narrows the supervised filter; text output names the log', async () => {
    const alpha = await scan(['--key', keyFile, '--issued', gateway.dataDir, '--account', 'alpha', corpus]);
    expect(alpha.out).toMatch(/issued outputs from .*\(account alpha\): 40/);
    expect(alpha.out).toMatch(/verdict: RADIOACTIVE/);
    const clean = await scan([
      '--key',
      keyFile,
      '--issued',
      gateway.dataDir,
      '--attribute',
      '--json',
      cleanCorpus,
    ]);
    const report = JSON.parse(clean.out);
    expect(report.verdict).not.toBe('radioactive');
    expect(report.attribution.attributedTo).toEqual([]);
  }, 60_000);

  it('reads the log over HTTP with an admin key from --api-key-env', async () => {
    const unset = await scan([
      '--key',
      keyFile,
      '--issued',
      gateway.running.url,
      '--api-key-env',
      'TM_ADMIN',
      corpus,
    ]);
    expect(unset.code).toBe(2);
    expect(unset.err).toMatch(/TM_ADMIN is not set/);
    const ok = await scan(
      [
        '--key',
        keyFile,
        '--issued',
        gateway.running.url,
        '--api-key-env',
        'TM_ADMIN',
        '--attribute',
        '--json',
        corpus,
      ],
      { TM_ADMIN: gateway.adminKey },
    );
    const report = JSON.parse(ok.out);
    expect(report.issuedLog.numOutputs).toBe(80);
    expect(report.attribution.attributedTo).toEqual(['alpha']);
  }, 60_000);

  it('--evidence writes a signed report that `tracemark evidence verify` accepts; tampering fails', async () => {
    const out = join(gateway.dataDir, 'scan-evidence.json');
    const result = await scan([
      '--key',
      keyFile,
      '--issued',
      gateway.dataDir,
      '--attribute',
      '--evidence',
      out,
      '--data-dir',
      gateway.dataDir,
      corpus,
    ]);
    expect(result.err).toBe('');
    expect(result.out).toMatch(/evidence report saved to/);
    const file = JSON.parse(readFileSync(out, 'utf8'));
    expect(Object.keys(file).sort()).toEqual(['envelope', 'format', 'keyId', 'verifierKey', 'version']);
    const statement = JSON.parse(Buffer.from(file.envelope.payload, 'base64').toString('utf8'));
    const description = JSON.parse(statement.predicate.text.content);
    expect(description.format).toBe('tracemark-corpus');
    expect(description.inputs).toEqual([
      {
        path: corpus,
        bytes: readFileSync(corpus).byteLength,
        sha256: createHash('sha256').update(readFileSync(corpus)).digest('hex'),
      },
    ]);
    expect(statement.subject[0].digest.sha256).toBe(
      createHash('sha256').update(statement.predicate.text.content).digest('hex'),
    );
    expect(statement.predicate.detection.verdict).toBe('detected');
    expect(statement.predicate.algorithm.keyIds).toHaveLength(1);
    expect(JSON.stringify(statement)).not.toMatch(/secret/i);
    expect(statement.predicate.scan.attribution.attributedTo).toEqual(['alpha']);
    // Unpinned: every check holds, but the signer is only the key the report names (exit 4).
    const unpinned = await cli(['evidence', 'verify', out, '--json']);
    expect(unpinned.code).toBe(4);
    const checks = JSON.parse(unpinned.out).checks as { name: string; ok: boolean }[];
    expect(checks.filter((check) => check.name !== 'signer-key').every((check) => check.ok)).toBe(true);
    // Pinned to the verifier key the gateway publishes.
    const keys = await fetch(`${gateway.running.url}/.well-known/tracemark/keys.json`).then((r) => r.text());
    const keysFile = join(gateway.dataDir, 'keys.json');
    writeFileSync(keysFile, keys);
    const pinned = await cli(['evidence', 'verify', out, '--public-key', keysFile, '--json']);
    expect(JSON.parse(pinned.out).ok).toBe(true);
    expect(pinned.code).toBe(0);
    // A changed number breaks the signature.
    const tampered = structuredClone(file);
    const changed = {
      ...statement,
      predicate: {
        ...statement.predicate,
        scan: { ...statement.predicate.scan, verdict: 'not_radioactive' },
      },
    };
    tampered.envelope.payload = Buffer.from(JSON.stringify(changed)).toString('base64');
    const tamperedPath = join(gateway.dataDir, 'tampered.json');
    writeFileSync(tamperedPath, JSON.stringify(tampered));
    const bad = await cli(['evidence', 'verify', tamperedPath, '--public-key', keysFile, '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out).ok).toBe(false);
  }, 60_000);

  it('refuses a missing database and combining --issued with --issued-file', async () => {
    const missing = await scan(['--key', keyFile, '--issued', join(gateway.dataDir, 'nope.sqlite'), corpus]);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toMatch(/cannot open the issuance log/);
    const both = await scan(['--key', keyFile, '--issued', gateway.dataDir, '--issued-file', corpus, corpus]);
    expect(both.err).toMatch(/cannot be combined/);
  });
});

const pgAvailable = await postgresReachable(TEST_DATABASE_URL);
if (!pgAvailable && process.env.CI)
  throw new Error('PostgreSQL is not reachable at TRACEMARK_TEST_DATABASE_URL');

describe.skipIf(!pgAvailable)('tracemark scan --issued postgres://', () => {
  it('reads a PostgreSQL issuance log read-only and attributes to the right account', async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    const gateway = await startGateway(schema.url);
    try {
      const keyFile = join(gateway.dataDir, 'watermark-key.json');
      const [alpha, beta] = [await accountKey(gateway, 'alpha'), await accountKey(gateway, 'beta')];
      const alphaAnswers = await harvest(gateway, alpha, 'alpha', 25, 200);
      await harvest(gateway, beta, 'beta', 25, 700);
      const human = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' })).slice(50, 75);
      const corpus = join(gateway.dataDir, 'suspect.jsonl');
      writeFileSync(corpus, jsonl([...human.map((d) => d.text.slice(0, 1000)), ...alphaAnswers]));
      const result = await scan(['--key', keyFile, '--issued', schema.url, '--attribute', '--json', corpus]);
      expect(result.err).toBe('');
      const report = JSON.parse(result.out);
      expect(report.issuedLog.numOutputs).toBe(50);
      expect(report.issuedLog.source).not.toContain(':tracemark@');
      expect(report.verdict).toBe('radioactive');
      expect(report.attribution.attributedTo).toEqual(['alpha']);
      // Read only: the scan wrote nothing (the log still holds exactly the 50 records).
      const after = await gateway.call('/v1/admin/issuance?limit=1000', gateway.adminKey);
      expect(after.json.total).toBe(50);
    } finally {
      await gateway.running.close();
      await schema.drop();
    }
  }, 120_000);
});
