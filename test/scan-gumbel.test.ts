/**
 * `tracemark scan` with tracemark's Gumbel-max keys (`gumbel`, `dual_gumbel`): a marked corpus is
 * radioactive with the exact Gamma tail of its distinct (seed, token) pairs, human text is not,
 * repeated documents change nothing, green-list and Gumbel keys mix under Holm, and the options a
 * Gumbel key cannot take are usage errors. In-process through `run`.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  generateAll,
  gumbelLog10PValue,
  holmAdjustLog10,
  type RandomSource,
  type SchemeParams,
  serializeKeyFile,
  type WatermarkKey,
} from '@tracemark/core';
import { loadHumanCorpus } from '@tracemark/lm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, runCli, temporaryDirectory } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const cli = (argv: string[]) => runCli(argv);

const directory = temporaryDirectory('tracemark-scan-gumbel-');
let written = 0;
const write = (name: string, text: string): string => {
  const path = join(directory, `${written++}-${name}`);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};

const VOCAB = 100_000;
const keyOf = (label: string, scheme: SchemeParams): WatermarkKey =>
  createWatermarkKey({ secret: createHash('sha256').update(label).digest(), scheme });
const gumbelKey = keyOf('scan-gumbel/gumbel', { name: 'gumbel' });
const dualKey = keyOf('scan-gumbel/dual', { name: 'dual_gumbel' });
const greenListKey = keyOf('scan-gumbel/lefthash', {});

/** A model over 16 random cl100k ids per step with logits ~ 1.5·N(0, 1). */
function randomSource(random: RandomSource) {
  const normal = () =>
    Math.sqrt(-2 * Math.log(1 - random.nextFloat())) * Math.cos(2 * Math.PI * random.nextFloat());
  return {
    nextLogits: () => ({
      ids: Uint32Array.from({ length: 16 }, () => Math.floor(random.nextFloat() * VOCAB)),
      logits: Float32Array.from({ length: 16 }, () => 1.5 * normal()),
    }),
  };
}

interface Record {
  readonly ids: number[];
  readonly prompt: number[];
}

async function markedCorpus(key: WatermarkKey, count: number, seed: number): Promise<Record[]> {
  const random = createRandom(seed);
  const records: Record[] = [];
  for (let i = 0; i < count; i++) {
    const prompt = Array.from({ length: 10 }, () => Math.floor(random.nextFloat() * VOCAB));
    const ids = await generateAll({
      source: randomSource(random),
      prompt,
      maxTokens: 80,
      watermarker: createWatermarker(key),
      temperature: 1,
      seed: seed + i,
    });
    records.push({ ids: Array.from(ids), prompt });
  }
  return records;
}

const corpus = (records: readonly Record[]): string =>
  write('corpus.jsonl', `${records.map((record) => JSON.stringify(record)).join('\n')}\n`);

let gumbelPath = '';
let dualPath = '';
let greenListPath = '';
let marked: Record[] = [];
let markedDual: Record[] = [];
let humanPath = '';

beforeAll(async () => {
  gumbelPath = write('gumbel-key.json', serializeKeyFile(gumbelKey));
  dualPath = write('dual-key.json', serializeKeyFile(dualKey));
  greenListPath = write('key.json', serializeKeyFile(greenListKey));
  marked = await markedCorpus(gumbelKey, 5, 100);
  markedDual = await markedCorpus(dualKey, 5, 200);
  const human = (await loadHumanCorpus({ source: 'nlp-corpus', split: 'test' })).slice(0, 20);
  humanPath = write('human.jsonl', `${human.map((d) => JSON.stringify({ text: d.text })).join('\n')}\n`);
}, 120_000);

describe('tracemark scan --key GUMBEL_KEY', () => {
  it('a marked corpus is radioactive with the exact Gamma tail; one document equals detect', async () => {
    const outcome = await cli(['scan', '--key', gumbelPath, '--field', 'ids', '--json', corpus(marked)]);
    expect(outcome.code, outcome.stderr).toBe(0);
    const report = JSON.parse(outcome.stdout);
    expect(report.verdict).toBe('radioactive');
    expect(report.matchedKeyId).toBe(gumbelKey.keyId);
    const [scan] = report.keys;
    expect(scan).toMatchObject({
      family: 'tracemark',
      label: 'tracemark',
      scheme: 'gumbel',
      calibration: null,
    });
    expect(scan.log10P).toBeCloseTo(gumbelLog10PValue(gumbelKey.scheme, scan.numScored, scan.score), 9);
    expect(scan.log10P).toBeLessThan(-30);
    expect(scan.nullDistribution).toMatch(/Gamma\(n, 1\)/);
    const one = JSON.parse(
      (await cli(['scan', '--key', gumbelPath, '--field', 'ids', '--json', corpus(marked.slice(0, 1))]))
        .stdout,
    ).keys[0];
    const detected = detect(marked[0]!.ids, createWatermarker(gumbelKey), { prompt: marked[0]!.prompt })
      .results[0]!;
    expect(one.numScored).toBe(detected.numScored);
    expect(one.score).toBe(detected.score);
    expect(one.log10P).toBe(detected.log10P);
    const text = await cli(['scan', '--key', gumbelPath, '--field', 'ids', corpus(marked)]);
    expect(text.stdout).toContain(`key ${gumbelKey.keyId} (tracemark gumbel, contextWidth=4): RADIOACTIVE`);
    expect(text.stdout).toMatch(/null {8}exact: .*; no fake keys/);
  });

  it('dual_gumbel: radioactive with the exact weighted-Gamma tail', async () => {
    const report = JSON.parse(
      (await cli(['scan', '--key', dualPath, '--field', 'ids', '--json', corpus(markedDual)])).stdout,
    );
    const [scan] = report.keys;
    expect(scan.scheme).toBe('dual_gumbel');
    expect(scan.parameters).toEqual({ scheme: 'dual_gumbel', contextWidth: 4, alpha: 0.1 });
    expect(scan.log10P).toBeCloseTo(gumbelLog10PValue(dualKey.scheme, scan.numScored, scan.score), 9);
    expect(report.verdict).toBe('radioactive');
  });

  it('human text is not radioactive (and never not_radioactive)', async () => {
    const outcome = await cli(['scan', '--key', gumbelPath, '--json', humanPath]);
    expect(outcome.code, outcome.stderr).toBe(0);
    const report = JSON.parse(outcome.stdout);
    expect(report.keys[0].numScored).toBeGreaterThan(1000);
    expect(report.keys[0].log10P).toBeGreaterThan(-3);
    expect(report.verdict).toBe('insufficient');
  });

  it('repeated documents change nothing', async () => {
    const once = JSON.parse(
      (await cli(['scan', '--key', gumbelPath, '--field', 'ids', '--json', corpus(marked.slice(0, 2))]))
        .stdout,
    ).keys[0];
    const repeated = JSON.parse(
      (
        await cli([
          'scan',
          '--key',
          gumbelPath,
          '--field',
          'ids',
          '--json',
          corpus([...marked.slice(0, 2), ...marked.slice(0, 2), marked[0]!]),
        ])
      ).stdout,
    ).keys[0];
    expect(repeated.numScored).toBe(once.numScored);
    expect(repeated.score).toBe(once.score);
    expect(repeated.log10P).toBe(once.log10P);
    expect(repeated.numRepeated).toBe(repeated.numUnits - once.numUnits);
  });

  it('green-list and Gumbel keys in one scan: Holm over both', async () => {
    const outcome = await cli([
      'scan',
      '--key',
      greenListPath,
      '--key',
      gumbelPath,
      '--key',
      dualPath,
      '--field',
      'ids',
      '--fake-keys',
      '20',
      '--json',
      corpus(marked),
    ]);
    expect(outcome.code, outcome.stderr).toBe(0);
    const report = JSON.parse(outcome.stdout);
    expect(report.keys.map((k: { scheme: string }) => k.scheme)).toEqual([
      'lefthash',
      'gumbel',
      'dual_gumbel',
    ]);
    expect(report.keys.map((k: { log10PAdjusted: number }) => k.log10PAdjusted)).toEqual(
      holmAdjustLog10(report.keys.map((k: { log10P: number }) => k.log10P)),
    );
    expect(report.keys.map((k: { verdict: string }) => k.verdict)).toEqual([
      'not_radioactive',
      'radioactive',
      'insufficient',
    ]);
    expect(report.keys[0].calibration.fakeKeys).toBe(20);
    expect(report.matchedKeyId).toBe(gumbelKey.keyId);
  });

  it('options a Gumbel key cannot take are usage errors naming the option and the key', async () => {
    const path = corpus(marked);
    const usage = async (extra: string[], pattern: RegExp) => {
      const outcome = await cli(['scan', '--key', gumbelPath, '--field', 'ids', ...extra, path]);
      expect(outcome.code).toBe(2);
      expect(outcome.stderr).toMatch(pattern);
      expect(outcome.stderr).toContain(gumbelKey.keyId);
    };
    await usage(['--issued-file', path], /--issued-file selects green-list windows/);
    await usage(['--evidence', join(directory, 'evidence.json')], /--evidence does not support Gumbel keys/);
    await usage(['--fake-keys', '50'], /--fake-keys calibrates green-list keys/);
  });
});
