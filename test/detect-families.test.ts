/**
 * `tracemark keygen` and `tracemark detect` with transformers KGW, SynthID-Text and SGLang keys, as
 * real processes of the built CLI: the engine key comes from a variable (never argv) and is never
 * printed; ids marked with each family's core sampler are watermarked with the exact p-value of the
 * core detector's strict statistic; human text and a wrong engine key are not; bad input gives a
 * clear error. Run `pnpm build` first (or set TRACEMARK_CLI_FROM_SOURCE=1). The processes of all
 * families run before the tests, a few at a time.
 */
import { readFileSync, statSync } from 'node:fs';
import { createRandom } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAMILIES, type Family, type FamilyFiles, prepareFamilies, runAll } from './families.ts';
import type { SpawnResult } from './helpers.ts';
import { removeTemporaryDirectories } from './helpers.ts';

afterAll(removeTemporaryDirectories);

interface Outcomes {
  readonly files: FamilyFiles;
  readonly marked: number[][];
  readonly detectMarked: SpawnResult;
  readonly detectHuman: SpawnResult;
  readonly detectWrong: SpawnResult;
  readonly detectNarrow: SpawnResult;
}

const outcomes = new Map<string, Outcomes>();
let humanTexts: string[] = [];

beforeAll(async () => {
  humanTexts = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' }))
    .slice(0, 8)
    .map((d) => d.text);
  const prepared = await prepareFamilies('detect-families');
  const jobs = FAMILIES.map((family) => {
    const files = prepared.get(family.name)!;
    const random = createRandom(2026);
    const marked = [family.sample(random, 200), family.sample(random, 120)];
    const detect =
      (key: string, records: readonly object[], extra: string[] = []) =>
      () =>
        files.run(['detect', '--key', key, '--json', ...extra, files.jsonl(records)]);
    return {
      family,
      files,
      marked,
      commands: [
        // The last record has an id one past cl100k_base's vocabulary.
        detect(
          files.key,
          [...marked.map((ids) => ({ ids })), { ids: [...marked[1]!.slice(0, 10), 100_277] }],
          ['--field', 'ids'],
        ),
        detect(
          files.key,
          humanTexts.map((text) => ({ text })),
        ),
        detect(
          files.wrongKey,
          marked.map((ids) => ({ ids })),
          ['--field', 'ids'],
        ),
        // A key bound to a tokenizer tracemark does not ship: an id past its size, its own ids, text.
        detect(
          files.narrowKey,
          [{ ids: [5, 6, 7, 8, 9, 1000] }, { ids: marked[0] }, { ids: humanTexts[0] }],
          ['--field', 'ids'],
        ),
      ],
    };
  });
  const results = await runAll(jobs.flatMap((job) => job.commands));
  jobs.forEach((job, j) => {
    const [detectMarked, detectHuman, detectWrong, detectNarrow] = results.slice(4 * j, 4 * j + 4);
    outcomes.set(job.family.name, {
      files: job.files,
      marked: job.marked,
      detectMarked: detectMarked!,
      detectHuman: detectHuman!,
      detectWrong: detectWrong!,
      detectNarrow: detectNarrow!,
    });
  });
});

const json = (outcome: SpawnResult) => JSON.parse(outcome.stdout);

describe.each(FAMILIES)('tracemark keygen and detect with $scheme keys (spawned CLI)', (family: Family) => {
  const get = (): Outcomes => outcomes.get(family.name)!;

  it('keygen reads the engine key from a variable, writes a 0600 file, and prints only public parameters', () => {
    const { files } = get();
    expect(files.keygen.code, files.keygen.stderr).toBe(0);
    const summary = json(files.keygen);
    expect(summary).toMatchObject({ scheme: family.scheme, tokenizer: 'cl100k_base', readsText: true });
    expect(summary.keyId).toMatch(family.keyIdPattern);
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    // The file holds the secret (that is what it is for); nothing printed does (last test).
    const file = readFileSync(files.key, 'utf8');
    expect(file).toContain(family.secretForms[0]);
  });

  it('marked token ids: watermarked, with the exact p-value of the strict statistic', () => {
    const { marked, detectMarked, files } = get();
    // Exit 3: the third record (an id outside the vocabulary) is a document error.
    expect(detectMarked.code, detectMarked.stderr).toBe(3);
    const report = json(detectMarked);
    marked.forEach((ids, i) => {
      const result = report.results[i];
      const expected = family.detect(ids);
      expect(result).toMatchObject({
        verdict: 'watermarked',
        keyId: json(files.keygen).keyId,
        scheme: family.scheme,
        dedup: 'strict',
        numTokens: ids.length,
        numScored: expected.numScored,
      });
      expect(result.score).toBeCloseTo(expected.score, 9);
      expect(Math.abs(result.log10P - expected.log10P)).toBeLessThan(1e-9 * Math.abs(expected.log10P));
      expect(result.log10P).toBeLessThan(-6);
    });
  });

  it('human text, tokenized with cl100k_base: not watermarked', () => {
    const { detectHuman } = get();
    expect(detectHuman.code, detectHuman.stderr).toBe(0);
    const results = json(detectHuman).results;
    expect(results).toHaveLength(humanTexts.length);
    for (const result of results) {
      expect(result.verdict).not.toBe('watermarked');
      expect(result.numScored).toBeGreaterThan(100);
      expect(result.log10PAdjusted).toBeGreaterThan(-4);
    }
    const verdicts = new Set(results.map((result: { verdict: string }) => result.verdict));
    // Only a green-list key with a bias bounds the score under the mark, so only it can clear text.
    if (family.name === 'transformers') expect(verdicts.has('not_watermarked')).toBe(true);
    else expect([...verdicts]).toEqual(['insufficient']);
  });

  it('a wrong engine key finds nothing on the marked ids', () => {
    const { detectWrong, files } = get();
    expect(detectWrong.code, detectWrong.stderr).toBe(0);
    for (const result of json(detectWrong).results) {
      expect(result.keyId).toBe(files.wrongKeyId);
      expect(result.verdict).not.toBe('watermarked');
      expect(result.log10P).toBeGreaterThan(-4);
    }
  });

  it('bad input: ids outside the vocabulary and text for a tokenizer tracemark does not ship are clear errors', () => {
    const { detectMarked, detectNarrow } = get();
    const outside = json(detectMarked).results[2].error;
    expect(outside.code).toBe('TM_ERR_INVALID_TOKENS');
    expect(outside.message).toMatch(/\[10\].*100277/);
    expect(detectNarrow.code).toBe(3);
    const [tooLarge, own, text] = json(detectNarrow).results;
    expect(tooLarge.error.code).toBe('TM_ERR_INVALID_TOKENS');
    expect(tooLarge.error.message).toMatch(/\[5\].*1000/);
    expect(text.error.code).toBe('TM_ERR_TOKENIZER_UNAVAILABLE');
    expect(text.error.message).toContain('"vendor/model-1000"');
    // The key reads ids below its size. For transformers the size is randperm's length: it decides
    // the green lists, so the mark made at cl100k_base's size is not there.
    expect(own.numScored).toBeGreaterThan(100);
    expect(own.verdict === 'watermarked').toBe(family.name !== 'transformers');
  });

  it('no output of any command holds the engine key', () => {
    const o = get();
    const all = [o.files.keygen, o.detectMarked, o.detectHuman, o.detectWrong, o.detectNarrow];
    for (const outcome of all) {
      expect(outcome.stdout.length).toBeGreaterThan(0);
      for (const form of [...family.secretForms, ...family.wrongSecretForms]) {
        expect(outcome.stdout + outcome.stderr).not.toContain(form);
      }
    }
  });
});
