/**
 * `tracemark scan` as a real process: radioactive and clean corpora, prompts, the supervised filter,
 * several keys, workers, errors and exit codes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createWatermarker,
  createWatermarkKey,
  generateTokens,
  serializeKeyFile,
  type WatermarkKey,
} from '@tracemark/core';
import { loadDefaultModel, loadHumanCorpus, logitsSource } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir, removeTemporaryDirectories, temporaryDirectory, tracemark } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const directory = temporaryDirectory('tracemark-scan-');
const tokenizer = getTokenizer('cl100k_base');
const key = createWatermarkKey({ secret: createHash('sha256').update('scan-e2e/key').digest() });
const otherKey = createWatermarkKey({ secret: createHash('sha256').update('scan-e2e/other').digest() });
const keyPath = join(directory, 'key.json');
const otherKeyPath = join(directory, 'other.json');
let markedTexts: string[] = [];
let humanTexts: string[] = [];

const PROMPTS = [
  'The committee said on Tuesday that',
  'In the early years of the century,',
  'She opened the letter and read',
];

async function generate(watermarkKey: WatermarkKey, count: number): Promise<string[]> {
  const model = await loadDefaultModel({ cacheDir });
  const watermarker = createWatermarker(watermarkKey, { specialTokenIds: tokenizer.specialTokenIds });
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const ids: number[] = [];
    for await (const { token } of generateTokens({
      source: logitsSource(model),
      prompt: tokenizer.encode(PROMPTS[i % PROMPTS.length]!),
      maxTokens: 120,
      watermarker,
      temperature: 1,
      topP: 0.95,
      seed: 100 + i,
    })) {
      ids.push(token);
    }
    texts.push(tokenizer.decode(ids));
  }
  return texts;
}

const jsonl = (records: readonly object[]): string => `${records.map((r) => JSON.stringify(r)).join('\n')}\n`;

function writeCorpus(name: string, records: readonly object[]): string {
  const path = join(directory, name);
  writeFileSync(path, jsonl(records));
  return path;
}

beforeAll(async () => {
  writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
  writeFileSync(otherKeyPath, serializeKeyFile(otherKey), { mode: 0o600 });
  markedTexts = await generate(key, 12);
  humanTexts = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' }))
    .slice(0, 60)
    .map((d) => d.text);
}, 120_000);

describe('tracemark scan, real processes', () => {
  it('a corpus half made of watermarked outputs is radioactive; --fail-on-radioactive exits 1', async () => {
    const path = writeCorpus('half.jsonl', [
      ...markedTexts.map((text, i) => ({ id: i, text })),
      ...humanTexts.slice(0, 12).map((text) => ({ text })),
    ]);
    const result = await tracemark(['scan', '--key', keyPath, path, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(key.keyId);
    const scan = report.keys[0];
    expect(scan.log10P).toBeLessThan(-10);
    expect(scan.calibration.rank).toBe(1);
    expect(scan.calibration.fakeKeys).toBe(100);
    expect(scan.calibration.uniform).toBe(true);
    expect(scan.effectInterval[0]).toBeGreaterThan(0);
    expect(scan.topDocuments[0].source).toMatch(/^.*half\.jsonl:([1-9]|1[0-2])$/);
    expect(report.summary.documents).toBe(24);
    expect(result.stdout).not.toContain(JSON.parse(serializeKeyFile(key)).secret);
    const failing = await tracemark(['scan', '--key', keyPath, path, '--fail-on-radioactive']);
    expect(failing.code).toBe(1);
    expect(failing.stdout).toMatch(/RADIOACTIVE/);
    expect(failing.stdout).toMatch(/rank 1 among 100 fake keys/);
    expect(failing.stdout).toMatch(/verdict: RADIOACTIVE/);
  });

  it('human text (a directory of text files, and stdin) is not radioactive', async () => {
    const folder = join(directory, 'human');
    mkdirSync(folder, { recursive: true });
    humanTexts.forEach((text, i) => {
      writeFileSync(join(folder, `${String(i).padStart(3, '0')}.txt`), text);
    });
    const result = await tracemark(['scan', '--key', keyPath, folder, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.verdict).not.toBe('radioactive');
    expect(report.numDocuments).toBe(60);
    const piped = await tracemark(['scan', '--key', keyPath, '-', '--json', '--fake-keys', '30'], {
      input: humanTexts.join('\n\n'),
    });
    expect(piped.code, piped.stderr).toBe(0);
    expect(JSON.parse(piped.stdout).verdict).not.toBe('radioactive');
    expect(JSON.parse(piped.stdout).fakeKeys.count).toBe(30);
  });

  it('--prompt-field: outputs that quote watermarked prompts are not evidence', async () => {
    const records = markedTexts.map((prompt, i) => ({
      prompt,
      output: `${prompt.slice(prompt.length / 2)} ${humanTexts[i]}`,
    }));
    const path = writeCorpus('echo.jsonl', records);
    const withPrompts = await tracemark([
      'scan',
      '--key',
      keyPath,
      path,
      '--field',
      'output',
      '--prompt-field',
      'prompt',
      '--json',
    ]);
    expect(withPrompts.code, withPrompts.stderr).toBe(0);
    const report = JSON.parse(withPrompts.stdout);
    expect(report.verdict).not.toBe('radioactive');
    expect(report.numPromptTokens).toBeGreaterThan(1000);
    expect(report.keys[0].tape.numExcludedByPrompt).toBeGreaterThan(100);
    const ignoringPrompts = await tracemark([
      'scan',
      '--key',
      keyPath,
      path,
      '--field',
      'output',
      '--no-prompt-field',
      '--json',
    ]);
    expect(JSON.parse(ignoringPrompts.stdout).verdict).toBe('radioactive');
  });

  it('--issued-file: the supervised scan reports the issued set and a dose estimate', async () => {
    const issued = writeCorpus(
      'issued.jsonl',
      markedTexts.slice(0, 6).map((text) => ({ text })),
    );
    const path = writeCorpus('copied.jsonl', [
      ...markedTexts.slice(0, 6).map((text) => ({ text })),
      ...humanTexts.slice(0, 6).map((text) => ({ text })),
    ]);
    const result = await tracemark(['scan', '--key', keyPath, path, '--issued-file', issued, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.supervised).toBe(true);
    expect(report.issued.numOutputs).toBe(6);
    expect(report.verdict).toBe('radioactive');
    expect(report.keys[0].dose.estimate).toBeGreaterThan(0.2);
    expect(report.keys[0].dose.issuedGreenFraction).toBeGreaterThan(0.4);
    // On the tape thread (--workers 2), which builds the window set from the issued outputs itself.
    const threaded = await tracemark([
      'scan',
      '--key',
      keyPath,
      path,
      '--issued-file',
      issued,
      '--json',
      '--workers',
      '2',
    ]);
    expect(threaded.code, threaded.stderr).toBe(0);
    const { summary: _here, ...reportHere } = report;
    const { summary: _threaded, ...reportThreaded } = JSON.parse(threaded.stdout);
    expect(JSON.stringify(reportThreaded)).toBe(JSON.stringify(reportHere));
    const human = await tracemark(['scan', '--key', keyPath, path, '--issued-file', issued]);
    expect(human.stdout).toMatch(/supervised by 6 issued outputs/);
    expect(human.stdout).toMatch(/dose {8}ρ ≈/);
    const broken = writeCorpus('issued-broken.jsonl', [{ text: 'fine' }, { other: 1 }]);
    const failed = await tracemark(['scan', '--key', keyPath, path, '--issued-file', broken, '--json']);
    expect(failed.code).toBe(3);
    expect(JSON.parse(failed.stdout).error.code).toBe('TM_ERR_ISSUED_FILE');
  });

  it('two keys: Holm-adjusted, the true one matched; workers and the tape thread give the same report as the main thread', async () => {
    const path = writeCorpus('two-keys.jsonl', [
      ...markedTexts.slice(0, 6).map((text) => ({ text })),
      ...humanTexts.slice(0, 12).map((text) => ({ text })),
    ]);
    const scan = async (workers: number) => {
      const result = await tracemark([
        'scan',
        '--key',
        otherKeyPath,
        '--key',
        keyPath,
        path,
        '--json',
        '--workers',
        String(workers),
      ]);
      expect(result.code, result.stderr).toBe(0);
      return JSON.parse(result.stdout);
    };
    // --workers 2 builds the tape on a thread of its own; 3 adds a thread that tokenizes.
    const [a, b, c] = [await scan(0), await scan(2), await scan(3)];
    expect([a.summary.workers, b.summary.workers, c.summary.workers]).toEqual([1, 2, 3]);
    expect(a.matchedKeyId).toBe(key.keyId);
    expect(a.keys.map((k: { keyId: string }) => k.keyId)).toEqual([otherKey.keyId, key.keyId]);
    expect(a.keys[1].log10PAdjusted).toBeCloseTo(Math.min(0, a.keys[1].log10P + Math.log10(2)), 9);
    // The whole report is the main thread's, byte for byte.
    const { summary: _a, ...reportA } = a;
    const { summary: _b, ...reportB } = b;
    const { summary: _c, ...reportC } = c;
    expect(JSON.stringify(reportB)).toBe(JSON.stringify(reportA));
    expect(JSON.stringify(reportC)).toBe(JSON.stringify(reportA));
  });

  it('bad lines are named and skipped (exit 3); unreadable keys and mixed tokenizers are errors', async () => {
    const path = join(directory, 'bad.jsonl');
    writeFileSync(
      path,
      `${JSON.stringify({ text: markedTexts[0] })}\nnot json\n${JSON.stringify({ body: 'x' })}\n`,
    );
    const result = await tracemark(['scan', '--key', keyPath, path, '--json', '--fake-keys', '20']);
    expect(result.code).toBe(3);
    const report = JSON.parse(result.stdout);
    expect(report.summary.errors).toBe(2);
    expect(report.errors.map((e: { source: string }) => e.source)).toEqual([`${path}:2`, `${path}:3`]);
    expect(report.numDocuments).toBe(1);
    const missing = await tracemark(['scan', '--key', join(directory, 'absent.json'), path, '--json']);
    expect(missing.code).toBe(3);
    expect(JSON.parse(missing.stdout).error.code).toBe('TM_ERR_IO');
    const o200k = join(directory, 'o200k.json');
    writeFileSync(o200k, serializeKeyFile(createWatermarkKey({ tokenizer: 'o200k_base' })), { mode: 0o600 });
    const mixed = await tracemark(['scan', '--key', keyPath, '--key', o200k, path]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/different tokenizers/);
    const usage = await tracemark(['scan', '--key', keyPath, path, '--fake-keys', 'many']);
    expect(usage.code).toBe(2);
  });
});
