import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, temporaryDirectory, tracemark, writeFixedKeyFile } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const directory = temporaryDirectory();
const keyPath = join(directory, 'key.json');
let keyId = '';
// Unwatermarked text is judged under a fixed key: under keygen's fresh key each run, each text was called
// watermarked about once in fifteen thousand runs (a false positive at fpr 1e-4), over 20 texts here.
const fixedKeyPath = join(directory, 'fixed-key.json');
writeFixedKeyFile(fixedKeyPath, 53);

beforeAll(async () => {
  const created = await tracemark(['keygen', '--out', keyPath]);
  expect(created.code).toBe(0);
  keyId = created.stdout.trim();
}, 120_000);

/** 200 tokens from the embedded model for a fixed prompt and seed. */
const generate200 = (...extra: string[]) =>
  tracemark([
    'generate',
    '--key',
    keyPath,
    '--prompt',
    'The committee said on Tuesday that',
    '--max-tokens',
    '200',
    '--seed',
    '7',
    '--json',
    ...extra,
  ]);

describe('tracemark CLI, real processes', () => {
  it('keygen writes a 0600 key file, prints the key id and never the secret', () => {
    const file = JSON.parse(readFileSync(keyPath, 'utf8'));
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(keyId).toMatch(/^tmk1_[0-9a-f]{24}$/);
    expect(file.keyId).toBe(keyId);
  });

  it('keygen refuses to overwrite a key without --force', async () => {
    const again = await tracemark(['keygen', '--out', keyPath]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists/);
  });

  it('generate 200 tokens → detect says watermarked with log10P ≤ −6', async () => {
    const generated = await generate200();
    expect(generated.code, generated.stderr).toBe(0);
    const output = JSON.parse(generated.stdout);
    expect(output.numTokens).toBe(200);
    expect(output.keyId).toBe(keyId);
    expect(generated.stdout).not.toContain(JSON.parse(readFileSync(keyPath, 'utf8')).secret);
    const textPath = join(directory, 'marked.txt');
    writeFileSync(textPath, output.text);
    const detected = await tracemark(['detect', '--key', keyPath, textPath, '--json']);
    expect(detected.code).toBe(0);
    const result = JSON.parse(detected.stdout).results[0];
    expect(result.verdict).toBe('watermarked');
    expect(result.log10P).toBeLessThanOrEqual(-6);
    expect(result.keyId).toBe(keyId);
    const failing = await tracemark(['detect', '--key', keyPath, textPath, '--fail-on-detect']);
    expect(failing.code).toBe(1);
    expect(failing.stdout).toMatch(/WATERMARKED/);
  });

  it('the same generation with --no-watermark says not_watermarked', async () => {
    const generated = await generate200('--no-watermark');
    const output = JSON.parse(generated.stdout);
    expect(output.watermarked).toBe(false);
    const detected = await tracemark(['detect', '--key', fixedKeyPath, '-', '--json'], {
      input: output.text,
    });
    expect(JSON.parse(detected.stdout).results[0].verdict).toBe('not_watermarked');
  });

  it('human text from nlp-corpus says not_watermarked', async () => {
    const documents = await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' });
    const lines = documents
      .filter((d) => d.text.length > 1500)
      .slice(0, 20)
      .map((d) => JSON.stringify({ text: d.text }))
      .join('\n');
    const path = join(directory, 'human.jsonl');
    writeFileSync(path, `${lines}\n`);
    const detected = await tracemark(['detect', '--key', fixedKeyPath, path, '--json']);
    expect(detected.code).toBe(0);
    const report = JSON.parse(detected.stdout);
    expect(report.results).toHaveLength(20);
    for (const result of report.results) expect(result.verdict).toBe('not_watermarked');
    expect(report.summary.notWatermarked).toBe(20);
  });

  it('bad JSONL lines and missing fields are named with file and line; the rest is still processed', async () => {
    const path = join(directory, 'mixed.jsonl');
    writeFileSync(
      path,
      [
        '{"text": "a perfectly ordinary sentence about the weather"}',
        '{not json',
        '{"body": "x"}',
        '',
        '{"text": "another ordinary sentence"}',
      ].join('\n'),
    );
    const detected = await tracemark(['detect', '--key', keyPath, path, '--json']);
    expect(detected.code).toBe(3);
    const report = JSON.parse(detected.stdout);
    expect(report.results.map((r: { source: string }) => r.source)).toEqual([
      `${path}:1`,
      `${path}:2`,
      `${path}:3`,
      `${path}:5`,
    ]);
    expect(report.results[1].error.code).toBe('TM_ERR_INVALID_JSON');
    expect(report.results[2].error).toEqual({
      code: 'TM_ERR_MISSING_FIELD',
      message: `${path}:3: missing field "text"`,
    });
    expect(report.summary.errors).toBe(2);
  });

  it('a document of one run of millions of letters is an error of its own; the others are still processed', async () => {
    // 4 Mi CJK letters with no space: one pre-tokenized piece, past the regular-expression engine's stack
    // on Node 20 (a newer engine that splits it must give its tokens instead).
    const path = join(directory, 'one-long-run.jsonl');
    const run = '中'.repeat(1 << 22);
    writeFileSync(
      path,
      [
        '{"text": "a perfectly ordinary sentence about the weather"}',
        JSON.stringify({ text: run }),
        '{"text": "another ordinary sentence"}',
      ].join('\n'),
    );
    const detected = await tracemark(['detect', '--key', keyPath, path, '--json', '--workers', '0']);
    const report = JSON.parse(detected.stdout);
    expect(report.results).toHaveLength(3);
    for (const at of [0, 2]) {
      expect(report.results[at].source).toBe(`${path}:${at + 1}`);
      expect(report.results[at].error).toBeUndefined();
      expect(report.results[at].numTokens).toBeGreaterThan(0);
    }
    if (report.results[1].error === undefined) {
      expect(detected.code).toBe(0);
      expect(report.results[1].numTokens).toBeGreaterThan(0);
    } else {
      expect(detected.code).toBe(3);
      expect(report.results[1].error.code).toBe('TM_ERR_PIECE_TOO_LONG');
      expect(report.results[1].error.message).toMatch(
        /:2: the text from character 0 on is one piece too long/,
      );
    }
  }, 60_000);

  it('binary input, a missing file and a corrupt key give clear errors and exit 3', async () => {
    const binary = join(directory, 'blob.bin');
    writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 1, 2, 3]));
    const result = await tracemark(['detect', '--key', keyPath, binary, join(directory, 'missing.txt')]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`${binary}: binary data`);
    expect(result.stderr).toContain('missing.txt: cannot read (ENOENT)');
    const corrupt = join(directory, 'corrupt.json');
    writeFileSync(
      corrupt,
      readFileSync(keyPath, 'utf8').replace(
        /"keyId": "tmk1_[0-9a-f]+"/,
        '"keyId": "tmk1_000000000000000000000000"',
      ),
    );
    const bad = await tracemark(['detect', '--key', corrupt, binary, '--json']);
    expect(bad.code).toBe(3);
    expect(JSON.parse(bad.stdout).error.code).toBe('TM_ERR_KEY_FILE');
  });

  it('usage errors exit 2 with a message naming the option', async () => {
    const result = await tracemark(['detect', '--key', keyPath, '--fpr', '3']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--fpr/);
    const json = await tracemark(['keygen', '--out', join(directory, 'x.json'), '--gamma', '1.5', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).error.code).toBe('TM_ERR_USAGE');
  });

  it('a key bound to another tokenizer is refused with a clear error', async () => {
    const other = join(directory, 'o200k.json');
    await tracemark(['keygen', '--out', other, '--tokenizer', 'o200k_base']);
    const result = await tracemark(['detect', '--key', keyPath, '--key', other, '-'], { input: 'hello' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/different tokenizers/);
  });

  it('workers give the same results as the main thread', async () => {
    const documents = await loadHumanCorpus({ source: 'brown', split: 'test' });
    const path = join(directory, 'brown.jsonl');
    writeFileSync(
      path,
      documents
        .slice(0, 40)
        .map((d) => JSON.stringify({ text: d.text }))
        .join('\n'),
    );
    const single = JSON.parse(
      (await tracemark(['detect', '--key', keyPath, path, '--json', '--workers', '0'])).stdout,
    );
    const pooled = JSON.parse(
      (await tracemark(['detect', '--key', keyPath, path, '--json', '--workers', '2'])).stdout,
    );
    expect(pooled.summary.workers).toBe(2);
    expect(pooled.results).toEqual(single.results);
  });

  it('a key made with keygen --delta 0: detect gives insufficient (tokensToSettle null), never an error', async () => {
    const flat = join(directory, 'flat.json');
    const created = await tracemark(['keygen', '--out', flat, '--delta', '0', '--json']);
    expect(created.code, created.stderr).toBe(0);
    // Detected under a fixed key of the same scheme: under keygen's fresh secret the text was called
    // watermarked about once in thirty thousand runs.
    const fixedFlat = join(directory, 'flat-fixed.json');
    const fixed = createWatermarkKey({ secret: new Uint8Array(32).fill(59), scheme: { delta: 0 } });
    expect(JSON.parse(readFileSync(flat, 'utf8')).scheme).toEqual(JSON.parse(serializeKeyFile(fixed)).scheme);
    writeFileSync(fixedFlat, serializeKeyFile(fixed), { mode: 0o600 });
    const text = 'A person wrote this on a Sunday afternoon, with the window open and the radio on.';
    const detected = await tracemark(['detect', '--key', fixedFlat, '-', '--json'], { input: text });
    expect(detected.code, detected.stderr).toBe(0);
    const report = JSON.parse(detected.stdout);
    expect(report.error).toBeUndefined();
    expect(report.results[0]).toMatchObject({ verdict: 'insufficient', tokensToSettle: null });
    const human = await tracemark(['detect', '--key', fixedFlat, '-'], { input: text });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/insufficient evidence/);
  });
});
