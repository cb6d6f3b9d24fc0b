/**
 * `tracemark detect --json` end to end on the token sequences of the reference vectors
 * (packages/core/test/vectors/detect.json, from the Python reference): each case's key is written as
 * a key file, its tokens (and prompt) go in as JSONL token ids, and the numbers the CLI prints must
 * be the reference's. An off-by-one green anywhere between the scorer and the printer fails here.
 * Runs the CLI in-process from source; test/cli.test.ts spawns the built one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWatermarkKey, DEFAULT_FPR, serializeKeyFile } from '@tracemark/core';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, repositoryRoot, runCli, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

interface DetectVector {
  readonly name: string;
  readonly secret: string;
  readonly scheme: { name: 'lefthash' | 'selfhash'; contextWidth: number; gamma: number };
  readonly tokens: number[];
  readonly prompt: number[] | null;
  readonly special: number[];
  readonly numTokens: number;
  readonly numScored: number;
  readonly numGreen: number;
  readonly z: number;
  readonly log10P: number;
}

const vectors: DetectVector[] = JSON.parse(
  readFileSync(join(repositoryRoot, 'packages/core/test/vectors/detect.json'), 'utf8'),
).cases;
const tokenizer = getTokenizer('cl100k_base');

/**
 * The CLI scores with cl100k_base's special tokens, the vectors with their own list: a case carries
 * over when its ids are cl100k ids and the same of them are special under both lists.
 */
const applicable = vectors.filter((c) => {
  const ids = [...c.tokens, ...(c.prompt ?? [])];
  const ownSpecial = new Set(c.special);
  return ids.every(
    (id) =>
      (id < tokenizer.ordinaryTokenCount || tokenizer.specialTokenIds.has(id)) &&
      tokenizer.specialTokenIds.has(id) === ownSpecial.has(id),
  );
});

const cli = (argv: string[]) => runCli(argv);

function expectLog10P(actual: number, expected: number, label: string): void {
  if (expected === 0) expect(actual, label).toBe(0);
  else expect(Math.abs(actual - expected) / Math.abs(expected), label).toBeLessThan(1e-9);
}

describe('tracemark detect --json prints the reference numbers (detect.json)', () => {
  const directory = temporaryDirectory('tracemark-vectors-');

  it('covers nearly every vector, from empty to far tails', () => {
    expect(applicable.length).toBeGreaterThanOrEqual(60);
    expect(applicable.some((c) => c.numScored === 0)).toBe(true);
    expect(applicable.some((c) => c.log10P < -500)).toBe(true);
    expect(applicable.some((c) => c.prompt !== null && c.prompt.length > 0)).toBe(true);
  });

  it.each(applicable.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const keyPath = join(directory, `key-${i}.json`);
    const key = createWatermarkKey({
      secret: Uint8Array.from(Buffer.from(c.secret, 'hex')),
      scheme: c.scheme,
      tokenizer: 'cl100k_base',
    });
    writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
    const inputPath = join(directory, `case-${i}.jsonl`);
    writeFileSync(
      inputPath,
      `${JSON.stringify({ ids: c.tokens, ...(c.prompt === null ? {} : { promptIds: c.prompt }) })}\n`,
    );
    const { code, stdout, stderr } = await cli([
      'detect',
      '--key',
      keyPath,
      '--field',
      'ids',
      '--prompt-field',
      'promptIds',
      '--json',
      inputPath,
    ]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.results).toHaveLength(1);
    const result = report.results[0];
    expect(result.source).toBe(`${inputPath}:1`);
    expect(result.keyId).toBe(key.keyId);
    expect(result.numTokens).toBe(c.numTokens);
    expect(result.numScored).toBe(c.numScored);
    expect(result.numGreen).toBe(c.numGreen);
    expectLog10P(result.log10P, c.log10P, 'log10P');
    expectLog10P(result.log10PAdjusted, c.log10P, 'log10PAdjusted');
    expect(result.z).toBeCloseTo(c.z, 9);
    expect(result.greenFraction).toBe(c.numScored === 0 ? 0 : c.numGreen / c.numScored);
    expect(result.verdict === 'watermarked').toBe(c.numScored > 0 && c.log10P <= Math.log10(DEFAULT_FPR));
    expect(result.tokensToSettle === 0).toBe(result.verdict !== 'insufficient');
    expect(report.summary.documents).toBe(1);
    expect(report.summary.numTokens).toBe(c.numTokens);
  });
});
