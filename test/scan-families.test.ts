/**
 * `tracemark scan` (the corpus-wide radioactivity test) with transformers KGW, SynthID-Text and SGLang
 * keys, as real processes of the built CLI: a corpus marked with each family's core sampler is
 * radioactive with the exact p-value of its distinct units (computed here from the core detectors),
 * repeated documents add nothing, human text and a wrong engine key are not radioactive, and bad
 * input gives clear errors without the engine key. Run `pnpm build` first (or set
 * TRACEMARK_CLI_FROM_SOURCE=1). The processes of all families run before the tests, a few at a time.
 */
import { createRandom } from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAMILIES, type Family, type FamilyFiles, prepareFamilies, runAll } from './families.ts';
import type { SpawnResult } from './helpers.ts';
import { removeTemporaryDirectories } from './helpers.ts';

afterAll(removeTemporaryDirectories);

interface Outcomes {
  readonly files: FamilyFiles;
  readonly documents: number[][];
  readonly repeated: number[][];
  readonly scanMarked: SpawnResult;
  readonly scanHuman: SpawnResult;
  readonly scanBad: SpawnResult;
}

const outcomes = new Map<string, Outcomes>();
let mixedTokenizers: SpawnResult;
let humanTexts: string[] = [];

beforeAll(async () => {
  humanTexts = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' }))
    .slice(0, 20)
    .map((d) => d.text);
  const prepared = await prepareFamilies('scan-families');
  const jobs = FAMILIES.map((family) => {
    const files = prepared.get(family.name)!;
    const random = createRandom(7);
    const documents = Array.from({ length: 6 }, () => family.sample(random, 120));
    // Documents 0 and 1 again, and the first half of 2: nothing new to count.
    const repeated = [...documents, documents[0]!, documents[1]!, documents[2]!.slice(0, 60)];
    const scan =
      (keys: string[], records: readonly object[], extra: string[] = []) =>
      () =>
        files.run([
          'scan',
          ...keys.flatMap((key) => ['--key', key]),
          '--json',
          ...extra,
          files.jsonl(records),
        ]);
    const ids = (corpus: readonly number[][]) => corpus.map((tokens) => ({ ids: tokens }));
    return {
      family,
      files,
      documents,
      repeated,
      commands: [
        // The right key and a wrong one, Holm over both.
        scan([files.key, files.wrongKey], ids(repeated), ['--field', 'ids']),
        scan(
          [files.key],
          humanTexts.map((text) => ({ text })),
        ),
        // A key bound to a tokenizer tracemark does not ship: an id past its size, its own ids, text.
        scan(
          [files.narrowKey],
          [{ ids: [5, 6, 7, 8, 9, 1000] }, { ids: documents[0] }, { ids: humanTexts[0] }],
          ['--field', 'ids'],
        ),
      ],
    };
  });
  const first = prepared.get('transformers')!;
  const results = await runAll([
    ...jobs.flatMap((job) => job.commands),
    // Keys bound to different tokenizers in one scan.
    () =>
      first.run([
        'scan',
        '--key',
        first.key,
        '--key',
        prepared.get('synthid')!.narrowKey,
        '--field',
        'ids',
        '--json',
        first.jsonl([{ ids: [1, 2, 3] }]),
      ]),
  ]);
  jobs.forEach((job, j) => {
    const [scanMarked, scanHuman, scanBad] = results.slice(3 * j, 3 * j + 3);
    outcomes.set(job.family.name, {
      files: job.files,
      documents: job.documents,
      repeated: job.repeated,
      scanMarked: scanMarked!,
      scanHuman: scanHuman!,
      scanBad: scanBad!,
    });
  });
  mixedTokenizers = results[results.length - 1]!;
});

const json = (outcome: SpawnResult) => JSON.parse(outcome.stdout);

describe.each(FAMILIES)('tracemark scan --key $scheme (spawned CLI)', (family: Family) => {
  const get = (): Outcomes => outcomes.get(family.name)!;

  it('a marked corpus is radioactive with the exact p-value of its distinct units; repeats add nothing', () => {
    const { files, documents, repeated, scanMarked } = get();
    expect(files.keygen.code, files.keygen.stderr).toBe(0);
    expect(scanMarked.code, scanMarked.stderr).toBe(0);
    const report = json(scanMarked);
    const keyId = json(files.keygen).keyId;
    expect(report).toMatchObject({
      verdict: 'radioactive',
      matchedKeyId: keyId,
      numDocuments: repeated.length,
    });
    const [scan] = report.keys;
    expect(scan).toMatchObject({ keyId, family: family.name, scheme: family.scheme, calibration: null });
    expect(scan.log10PAdjusted).toBeCloseTo(scan.log10P + Math.log10(2), 9);
    // The reference pools the core detectors' strict units, each once where it first occurs.
    const expected = family.pool(repeated);
    expect(scan.numUnits).toBe(expected.numUnits);
    expect(scan.numScored).toBe(expected.numScored);
    expect(scan.numRepeated).toBe(expected.numUnits - expected.numScored);
    expect(scan.numRepeated).toBeGreaterThan(0);
    expect(scan.score).toBeCloseTo(expected.score, 8);
    expect(Math.abs(scan.log10P - expected.log10P)).toBeLessThan(1e-9 * Math.abs(expected.log10P));
    expect(scan.log10P).toBeLessThan(-30);
    // The repeated documents changed nothing: the numbers of the six documents alone.
    const once = family.pool(documents);
    expect([scan.numScored, scan.log10P]).toEqual([once.numScored, expect.closeTo(once.log10P, 9)]);
    // No prompts here: nothing excluded. The strongest documents are marked ones.
    expect(scan.numExcludedByPrompt).toBe(0);
    expect(scan.topDocuments[0].log10P).toBeLessThan(-6);
  });

  it('human text (tokenized with cl100k_base) is not radioactive', () => {
    const { scanHuman } = get();
    expect(scanHuman.code, scanHuman.stderr).toBe(0);
    const report = json(scanHuman);
    expect(report.numDocuments).toBe(humanTexts.length);
    const [scan] = report.keys;
    expect(scan.numScored).toBeGreaterThan(3000);
    expect(scan.log10P).toBeGreaterThan(-3);
    // A green-list key with a bias bounds the dose; the others' marks depend on entropy, unbounded.
    if (family.name === 'transformers') {
      expect(report.verdict).toBe('not_radioactive');
      expect(scan.doseUpperBound).toBeLessThan(0.05);
    } else {
      expect(report.verdict).toBe('insufficient');
      expect(scan.reason).toMatch(/^no evidence/);
      expect(scan.doseUpperBound).toBeNull();
    }
  });

  it('a wrong engine key finds nothing in the marked corpus', () => {
    const { scanMarked, files } = get();
    const wrong = json(scanMarked).keys[1];
    expect(wrong.keyId).toBe(files.wrongKeyId);
    expect(wrong.verdict).not.toBe('radioactive');
    expect(wrong.log10P).toBeGreaterThan(-3);
  });

  it('bad input: ids outside the vocabulary and text for a tokenizer tracemark does not ship are clear errors', () => {
    const { scanBad, documents } = get();
    expect(scanBad.code).toBe(3);
    const report = json(scanBad);
    expect(report.summary.errors).toBe(2);
    const [outside, text] = report.errors;
    expect(outside.code).toBe('TM_ERR_INVALID_TOKENS');
    expect(outside.message).toMatch(/\[5\].*1000/);
    expect(text.code).toBe('TM_ERR_TOKENIZER_UNAVAILABLE');
    expect(text.message).toContain('"vendor/model-1000"');
    // The readable document is still scanned.
    expect(report.numDocuments).toBe(1);
    expect(report.keys[0].numUnits).toBe(family.pool([documents[0]!]).numUnits);
  });

  it('no output of any command holds the engine key', () => {
    const o = get();
    for (const outcome of [o.files.keygen, o.scanMarked, o.scanHuman, o.scanBad, mixedTokenizers]) {
      expect(outcome.stdout.length).toBeGreaterThan(0);
      for (const form of [...family.secretForms, ...family.wrongSecretForms]) {
        expect(outcome.stdout + outcome.stderr).not.toContain(form);
      }
    }
  });
});

describe('tracemark scan with engines’ keys of different tokenizers', () => {
  it('is a usage error naming both tokenizers', () => {
    expect(mixedTokenizers.code).toBe(2);
    const error = json(mixedTokenizers).error;
    expect(error.code).toBe('TM_ERR_TOKENIZER_MISMATCH');
    expect(error.message).toContain('cl100k_base');
    expect(error.message).toContain('vendor/model-1000');
  });
});
