/**
 * `detect` runs the gateway's spoofing-artefact test (@tracemark/detection `createSpoofingChecker`, Brown
 * bigram counts from @tracemark/lm) on each watermarked document: the same numbers as the shared checker
 * gives for the same text and key, a forged mark flagged, nothing for unmarked text, the verdict kept.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  sampleToken,
  serializeKeyFile,
} from '@tracemark/core';
import { createSpoofingChecker } from '@tracemark/detection';
import {
  BROWN_BIGRAMS_LEARNABILITY,
  brownBigramCounts,
  loadDefaultModel,
  loadHumanCorpus,
} from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture } from './capture.test-helper.ts';
import { run } from './cli.ts';

const directory = mkdtempSync(join(tmpdir(), 'tracemark-detect-spoofing-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

// LeftHash(1), the default scheme: the context width where learned spoofing is easiest.
const key = createWatermarkKey({
  secret: new Uint8Array(32).fill(41),
  scheme: { name: 'lefthash', contextWidth: 1 },
});
const keyPath = join(directory, 'key.json');
const tokenizer = getTokenizer('cl100k_base');
const checker = createSpoofingChecker(tokenizer, {
  bigrams: () => brownBigramCounts(tokenizer),
  learnability: BROWN_BIGRAMS_LEARNABILITY,
});
const PROMPT = 'The committee said on Tuesday that';

let genuine: string;
let spoofed: string;
let human: string;
let jsonl: string;
let genuineFile: string;

beforeAll(async () => {
  writeFileSync(keyPath, serializeKeyFile(key), { mode: 0o600 });
  // (a) The embedded model's watermarked completion, as `tracemark generate` writes it.
  const generated = capture();
  expect(
    await run(
      ['generate', '--key', keyPath, '--prompt', PROMPT, '--max-tokens', '250', '--seed', '11', '--json'],
      generated.io,
    ),
  ).toBe(0);
  genuine = JSON.parse(generated.out()).text;
  // (b) A spoof as the stealing experiment makes one: the unwatermarked model pushed toward the tokens it
  // believes green, which a spoofer knows only on pairs common in text it could learn from (here: seen
  // at least 20 times in Brown, coloured with the key this test holds); elsewhere the model as it is.
  const model = await loadDefaultModel({ tokenizerId: 'cl100k_base' });
  const bigrams = await brownBigramCounts(tokenizer);
  const watermarker = createWatermarker(key);
  const random = createRandom(8);
  const tokens: number[] = Array.from(tokenizer.encodeFast('The report said that the'));
  const start = tokens.length;
  while (tokens.length < start + 250) {
    const candidates = model.candidates(tokens, 64);
    const green = watermarker.candidateTester(tokens);
    const logits = Float32Array.from(candidates.logits);
    const previous = tokens.at(-1)!;
    for (let i = 0; i < logits.length; i++) {
      const candidate = candidates.ids[i]!;
      if (green(candidate) === 1 && bigrams.count(Uint32Array.of(previous, candidate), 1) >= 20)
        logits[i]! += 6;
    }
    tokens.push(sampleToken({ ids: candidates.ids, logits }, tokens, random, { temperature: 0.8 }).token);
  }
  spoofed = tokenizer.decode(tokens.slice(start));
  // (c) Human text the key never touched.
  human = (await loadHumanCorpus({ split: 'test', source: 'brown' }))[0]!.text.slice(0, 3000);
  jsonl = join(directory, 'documents.jsonl');
  writeFileSync(
    jsonl,
    `${[{ prompt: PROMPT, text: genuine }, { text: spoofed }, { text: human }]
      .map((record) => JSON.stringify(record))
      .join('\n')}\n`,
  );
  genuineFile = join(directory, 'genuine.txt');
  writeFileSync(genuineFile, genuine);
}, 120_000);

const detect = async (...argv: string[]) => {
  const result = capture();
  const code = await run(['detect', '--key', keyPath, ...argv], result.io);
  return { code, out: result.out(), err: result.err() };
};

describe('detect: the spoofing-artefact test beside the verdict', () => {
  it('--json: the shared checker’s numbers on genuine text, a flag on the spoof, null on human text', async () => {
    const { code, out } = await detect('--json', jsonl, genuineFile);
    expect(code).toBe(0);
    const [prompted, forged, unmarked, wholeFile] = JSON.parse(out).results;
    // (a) Genuine, with its prompt (JSONL) and as a text file: not flagged, exactly the checker's result.
    expect(prompted.verdict).toBe('watermarked');
    expect(prompted.spoofing).toEqual(await checker.check(key, { text: genuine, prompt: PROMPT }));
    expect(prompted.spoofing).toMatchObject({
      test: 'tracemark-spoof-fisher-v1',
      learnability: BROWN_BIGRAMS_LEARNABILITY,
      keyId: key.keyId,
      alpha: 0.01,
      flagged: false,
    });
    expect(prompted.spoofing.numScored).toBeGreaterThan(150);
    expect(wholeFile.source).toBe(genuineFile);
    expect(wholeFile.verdict).toBe('watermarked');
    expect(wholeFile.spoofing).toEqual(await checker.check(key, { text: genuine }));
    expect(wholeFile.spoofing.flagged).toBe(false);
    // (b) The spoof carries the mark (the verdict stands) and is flagged.
    expect(forged.verdict).toBe('watermarked');
    expect(forged.spoofing).toEqual(await checker.check(key, { text: spoofed }));
    expect(forged.spoofing.flagged).toBe(true);
    expect(forged.spoofing.commonMarkedShare).toBeGreaterThan(forged.spoofing.rareMarkedShare);
    // (c) Unmarked: not tested.
    expect(unmarked.verdict).not.toBe('watermarked');
    expect(unmarked.spoofing).toBeNull();
  });

  it('human output: one line after each tested verdict; the exit code follows the verdicts alone', async () => {
    const { code, out } = await detect('--fail-on-detect', jsonl);
    expect(code).toBe(1);
    const lines = out.split('\n');
    const at = (source: string) => lines.findIndex((line) => line.startsWith(`${source}: `));
    expect(lines[at(`${jsonl}:1`) + 1]).toMatch(
      new RegExp(
        `^${jsonl}:1: spoofing test passed, log10 p = -?[\\d.]+ \\(flagged at p ≤ 0\\.01\\), marked [\\d.]+% of tokens on common word pairs, [\\d.]+% on rare, \\d+ scored, key ${key.keyId}$`,
      ),
    );
    expect(lines[at(`${jsonl}:2`)]).toMatch(/: WATERMARKED, /);
    expect(lines[at(`${jsonl}:2`) + 1]).toMatch(
      new RegExp(`^${jsonl}:2: spoofing test FLAGGED, .*; .*it may be forged \\(the verdict stands\\)$`),
    );
    expect(lines[at(`${jsonl}:3`) + 1] ?? '').not.toMatch(/spoofing test/);
    expect(out.match(/spoofing test/g)).toHaveLength(2);
  });

  it('--no-spoof-test: every spoofing null, no line, the verdicts unchanged', async () => {
    const tested = JSON.parse((await detect('--json', jsonl)).out).results;
    const skipped = await detect('--json', '--no-spoof-test', jsonl);
    expect(skipped.code).toBe(0);
    const results = JSON.parse(skipped.out).results;
    expect(results.map((result: { spoofing: unknown }) => result.spoofing)).toEqual([null, null, null]);
    expect(results).toEqual(tested.map((result: object) => ({ ...result, spoofing: null })));
    expect((await detect('--no-spoof-test', jsonl)).out).not.toMatch(/spoofing test/);
  });
});
