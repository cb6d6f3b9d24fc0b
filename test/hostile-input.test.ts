/**
 * The CLI on suspect corpora that hold the inputs which once froze tokenization (long runs of one kind of
 * character): `detect` and `scan` finish in bounded time, report every document, and print valid JSON.
 */
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, temporaryDirectory, tracemark, writeFixedKeyFile } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const MIB = 1024 * 1024;

/** The worst inputs of each kind, about 1 MiB of UTF-8 each. */
const HOSTILE: Readonly<Record<string, string>> = {
  letters: 'a'.repeat(MIB),
  emoji: '😀'.repeat(262_000),
  nul: '\u0000'.repeat(MIB),
  combining: 'e\u0301'.repeat(350_000),
  spaces: `${' '.repeat(MIB - 1)}x`,
};

let dir = '';
let keyFile = '';

beforeAll(async () => {
  dir = temporaryDirectory('tracemark-hostile-');
  keyFile = join(dir, 'key.json');
  // A fixed key: under a fresh one each run, the short prose line was called watermarked about once in a
  // hundred thousand runs (a false positive at fpr 1e-4).
  writeFixedKeyFile(keyFile, 61);
  const lines = Object.entries(HOSTILE).map(([kind, text]) => JSON.stringify({ kind, text }));
  lines.push(
    JSON.stringify({ kind: 'prose', text: 'An ordinary sentence, for contrast, among the hostile ones.' }),
  );
  writeFileSync(join(dir, 'corpus.jsonl'), `${lines.join('\n')}\n`);
});

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('the CLI on a corpus of hostile runs', () => {
  it('detect --json reports every document, none watermarked, in bounded time', async () => {
    const started = performance.now();
    const result = await tracemark(['detect', '--key', keyFile, join(dir, 'corpus.jsonl'), '--json']);
    const seconds = (performance.now() - started) / 1000;
    expect(result.code, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout) as { results: { verdict?: string; error?: unknown }[] };
    expect(parsed.results).toHaveLength(Object.keys(HOSTILE).length + 1);
    for (const document of parsed.results) {
      expect(document.error).toBeUndefined();
      expect(document.verdict).not.toBe('watermarked');
    }
    // Quadratic tokenization took minutes on the emoji line alone; the bound is generous for a loaded CI.
    expect(seconds).toBeLessThan(60);
  });

  it('scan --json finishes with a verdict on the same corpus', async () => {
    const result = await tracemark([
      'scan',
      '--key',
      keyFile,
      join(dir, 'corpus.jsonl'),
      '--fake-keys',
      '10',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout) as { verdict: string };
    expect(parsed.verdict).not.toBe('radioactive');
  });
});
