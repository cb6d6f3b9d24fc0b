/**
 * `tracemark scan` with engines' keys (vLLM): a corpus sampled with vLLM's Gumbel-max PRF is
 * radioactive with the exact p-value of its distinct units, clean and repeated corpora are not, keys
 * mix with tracemark's under Holm, and bad input gives clear errors. In-process through `run`.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createRandom,
  createVllmDetector,
  createWatermarkKey,
  holmAdjustLog10,
  log10GammaSf,
  type RandomSource,
  serializeKeyFile,
} from '@tracemark/core';
import { createVllmKeyScorer, createVllmWatermarkKey, serializeVllmKeyFile } from '@tracemark/detection';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, runCli, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const cli = (argv: string[]) => runCli(argv);

const directory = temporaryDirectory('tracemark-scan-foreign-');
let written = 0;
const write = (name: string, text: string): string => {
  const path = join(directory, `${written++}-${name}`);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};
const idsCorpus = (documents: readonly number[][]): string =>
  write('corpus.jsonl', `${documents.map((ids) => JSON.stringify({ ids })).join('\n')}\n`);

/** A distinctive engine key that no output may show. */
const ENGINE_KEY = 9_876_543_210_987_654_321n;
const vllmKey = createVllmWatermarkKey({ scheme: 'gumbel', engineKey: ENGINE_KEY, tokenizer: 'cl100k_base' });
const scorer = createVllmKeyScorer(vllmKey, 1e-6);
const VOCAB = 100_000;

/**
 * vLLM's gumbel sampling (docs/spec/foreign-vllm.md §6.1) over a random distribution at each step:
 * `candidates` random token ids with logits ~ 1.5·N(0, 1); the token is argmax_v u_v^(1/p_v), u_v the
 * PRF uniform of (context, v) and the context the previous output tokens (−1 before the start).
 */
function sampleMarked(length: number, random: RandomSource, candidates = 16): number[] {
  const detector = createVllmDetector({ scheme: 'gumbel', engineKey: ENGINE_KEY });
  const width = detector.key.contextWidth;
  const ids: number[] = [];
  const normal = () =>
    Math.sqrt(-2 * Math.log(1 - random.nextFloat())) * Math.cos(2 * Math.PI * random.nextFloat());
  for (let t = 0; t < length; t++) {
    const context = Array.from({ length: width }, (_, i) => (t - width + i >= 0 ? ids[t - width + i]! : -1));
    const tokens = Array.from({ length: candidates }, () => Math.floor(random.nextFloat() * VOCAB));
    const weights = tokens.map(() => Math.exp(1.5 * normal()));
    const total = weights.reduce((a, b) => a + b, 0);
    let best = 0;
    let bestValue = Number.NEGATIVE_INFINITY;
    tokens.forEach((token, j) => {
      // argmax u^(1/p) = argmax ln(u)/p
      const value = Math.log(detector.scoreToken(context, token).uniforms[0]!) / (weights[j]! / total);
      if (value > bestValue) {
        bestValue = value;
        best = token;
      }
    });
    ids.push(best);
  }
  return ids;
}

let vllmKeyPath = '';
let tracemarkKeyPath = '';
let marked: number[][] = [];
let humanTexts: string[] = [];

beforeAll(async () => {
  vllmKeyPath = write('vllm-key.json', serializeVllmKeyFile(vllmKey));
  tracemarkKeyPath = write(
    'key.json',
    serializeKeyFile(
      createWatermarkKey({ secret: createHash('sha256').update('scan-foreign/key').digest() }),
    ),
  );
  const random = createRandom(2026);
  marked = Array.from({ length: 6 }, () => sampleMarked(80, random));
  humanTexts = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' }))
    .slice(0, 20)
    .map((d) => d.text);
}, 120_000);

describe('tracemark scan --key VLLM_KEY', () => {
  it('a vLLM-gumbel-marked corpus is radioactive with the exact p-value of its distinct units', async () => {
    const outcome = await cli(['scan', '--key', vllmKeyPath, '--field', 'ids', '--json', idsCorpus(marked)]);
    expect(outcome.code, outcome.stderr).toBe(0);
    const report = JSON.parse(outcome.stdout);
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(vllmKey.keyId);
    const [scan] = report.keys;
    expect(scan.scheme).toBe('vllm:gumbel');
    expect(scan.family).toBe('vllm');
    // All units distinct: the corpus test is the per-document scorer's numbers, pooled.
    const perDocument = marked.map((ids) => scorer.score(ids, 'strict'));
    const n = perDocument.reduce((sum, r) => sum + r.numScored, 0);
    const s = perDocument.reduce((sum, r) => sum + r.score, 0);
    expect(scan.numRepeated).toBe(0);
    expect(scan.numScored).toBe(n);
    expect(scan.score).toBeCloseTo(s, 9);
    expect(scan.log10P).toBeCloseTo(log10GammaSf(n, s), 9);
    // The per-document scorer on the concatenation scores the same tokens, all but the first w of each
    // later document under other contexts: the same order of evidence.
    const concatenation = scorer.score(marked.flat(), 'strict');
    expect(concatenation.numScored).toBe(n);
    expect(Math.abs(concatenation.log10P - scan.log10P)).toBeLessThan(0.25 * Math.abs(scan.log10P));
    expect(scan.log10P).toBeLessThan(-15);
    expect(outcome.stdout).not.toContain(String(ENGINE_KEY));
  });

  it('repeated documents do not inflate the score', async () => {
    const once = JSON.parse(
      (await cli(['scan', '--key', vllmKeyPath, '--field', 'ids', '--json', idsCorpus(marked.slice(0, 2))]))
        .stdout,
    );
    const repeated = JSON.parse(
      (
        await cli([
          'scan',
          '--key',
          vllmKeyPath,
          '--field',
          'ids',
          '--json',
          idsCorpus([...marked.slice(0, 2), ...marked.slice(0, 2), marked[0]!]),
        ])
      ).stdout,
    );
    expect(repeated.keys[0].log10P).toBe(once.keys[0].log10P);
    expect(repeated.keys[0].numScored).toBe(once.keys[0].numScored);
    expect(repeated.keys[0].numRepeated).toBeGreaterThan(0);
  });

  it('an unmarked text corpus (tokenized with the key’s shipped tokenizer) is not radioactive; the text names the scheme', async () => {
    const path = write('human.jsonl', `${humanTexts.map((text) => JSON.stringify({ text })).join('\n')}\n`);
    const json = JSON.parse((await cli(['scan', '--key', vllmKeyPath, '--json', path])).stdout);
    expect(json.verdict).not.toBe('radioactive');
    expect(json.keys[0].numScored).toBeGreaterThan(1000);
    expect(json.keys[0].log10P).toBeGreaterThan(-3);
    const text = await cli(['scan', '--key', vllmKeyPath, path]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`key ${vllmKey.keyId} (vLLM vllm:gumbel`);
    expect(text.stdout).toMatch(/null {8}exact/);
  });

  it('tracemark and vLLM keys in one scan: Holm over both', async () => {
    const outcome = await cli([
      'scan',
      '--key',
      tracemarkKeyPath,
      '--key',
      vllmKeyPath,
      '--field',
      'ids',
      '--fake-keys',
      '20',
      '--json',
      idsCorpus(marked),
    ]);
    expect(outcome.code, outcome.stderr).toBe(0);
    const report = JSON.parse(outcome.stdout);
    expect(report.keys.map((k: { scheme: string }) => k.scheme)).toEqual(['lefthash', 'vllm:gumbel']);
    expect(report.keys.map((k: { log10PAdjusted: number }) => k.log10PAdjusted)).toEqual(
      holmAdjustLog10(report.keys.map((k: { log10P: number }) => k.log10P)),
    );
    expect(report.keys[0].verdict).not.toBe('radioactive');
    expect(report.keys[1].verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(vllmKey.keyId);
  });

  it('bad input gives clear errors, never a crash', async () => {
    // A key bound to a tokenizer tracemark does not ship reads token ids only.
    const llamaKey = write(
      'llama-key.json',
      serializeVllmKeyFile(
        createVllmWatermarkKey({
          scheme: 'gumbel',
          engineKey: ENGINE_KEY,
          tokenizer: 'meta-llama/Llama-3.1-8B',
          vocabSize: 1000,
        }),
      ),
    );
    const text = await cli([
      'scan',
      '--key',
      llamaKey,
      '--json',
      write('t.jsonl', '{"text":"some words"}\n'),
    ]);
    expect(text.code).toBe(3);
    expect(JSON.parse(text.stdout).errors[0].code).toBe('TM_ERR_TOKENIZER_UNAVAILABLE');
    const plain = await cli(['scan', '--key', llamaKey, write('t.txt', 'some words')]);
    expect(plain.code).toBe(3);
    expect(plain.stderr).toContain('give token ids');
    const outside = await cli([
      'scan',
      '--key',
      llamaKey,
      '--field',
      'ids',
      '--json',
      idsCorpus([[1, 2, 5000]]),
    ]);
    expect(outside.code).toBe(3);
    const error = JSON.parse(outside.stdout).errors[0];
    expect(error.code).toBe('TM_ERR_INVALID_TOKENS');
    expect(error.message).toContain('[2]');
    // A tracemark key and a key bound to another tokenizer.
    const mixed = await cli([
      'scan',
      '--key',
      tracemarkKeyPath,
      '--key',
      llamaKey,
      '--json',
      idsCorpus([[1]]),
    ]);
    expect(mixed.code).toBe(2);
    expect(JSON.parse(mixed.stdout).error.code).toBe('TM_ERR_TOKENIZER_MISMATCH');
    // Options that do not apply to engines' keys.
    for (const extra of [
      ['--issued-file', idsCorpus([[1, 2, 3]])],
      ['--fake-keys', '50'],
      ['--evidence', join(directory, 'e.json'), '--signing-key', join(directory, 'none')],
    ]) {
      const outcome = await cli(['scan', '--key', vllmKeyPath, ...extra, '--json', idsCorpus([[1, 2, 3]])]);
      expect(outcome.code, extra.join(' ')).toBe(2);
      expect(JSON.parse(outcome.stdout).error.code).toBe('TM_ERR_USAGE');
      expect(JSON.parse(outcome.stdout).error.message).toContain(extra[0]);
    }
    for (const outcome of [text, plain, outside, mixed]) {
      expect(outcome.stdout + outcome.stderr).not.toContain(String(ENGINE_KEY));
    }
  });
});
