import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  parseKeyFile,
  serializeKeyFile,
} from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { run } from './cli.ts';
import type { CliIo } from './io.ts';

function capture(input = ''): { io: CliIo; out: () => string; err: () => string } {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      stdin: Readable.from([Buffer.from(input)]),
      stdoutIsTTY: false,
      stderrIsTTY: false,
      env: {},
    },
    out: () => stdout,
    err: () => stderr,
  };
}

const directory = mkdtempSync(join(tmpdir(), 'tracemark-cli-'));
const key = join(directory, 'key.json');

describe('argv → exit code and output (in-process)', () => {
  it('keygen then detect on stdin', async () => {
    const created = capture();
    expect(await run(['keygen', '--out', key, '--json'], created.io)).toBe(0);
    const { keyId } = JSON.parse(created.out());
    const detected = capture('A short human sentence, written by a person, about the weather today.');
    expect(await run(['detect', '--key', key, '--json'], detected.io)).toBe(0);
    const report = JSON.parse(detected.out());
    expect(report.results[0].source).toBe('-');
    expect(report.results[0].keyId).toBe(keyId);
    expect(['not_watermarked', 'insufficient']).toContain(report.results[0].verdict);
  });

  const table: [string, string[], number, RegExp][] = [
    ['unknown command', ['frobnicate'], 2, /unknown command/],
    ['missing --key', ['detect', '-'], 2, /--key/],
    ['bad --gamma', ['keygen', '--out', join(directory, 'g.json'), '--gamma', '0'], 2, /--gamma/],
    ['bad --scheme', ['keygen', '--out', join(directory, 's.json'), '--scheme', 'minhash'], 2, /--scheme/],
    [
      'bad --tokenizer',
      ['keygen', '--out', join(directory, 't.json'), '--tokenizer', 'bert'],
      2,
      /--tokenizer/,
    ],
    ['bad --format', ['detect', '--key', key, '--format', 'xml', '-'], 2, /--format/],
    ['missing key file', ['detect', '--key', join(directory, 'nope.json'), '-'], 3, /cannot read key file/],
    [
      'bad --max-tokens',
      ['generate', '--key', key, '--prompt', 'x', '--max-tokens', '-5'],
      2,
      /--max-tokens/,
    ],
  ];
  it.each(table)('%s', async (_name, argv, code, message) => {
    const result = capture();
    expect(await run(argv, result.io)).toBe(code);
    expect(result.err()).toMatch(message);
  });

  it('--json errors are JSON with a stable code', async () => {
    const result = capture();
    expect(await run(['detect', '--key', join(directory, 'nope.json'), '--json', '-'], result.io)).toBe(3);
    expect(JSON.parse(result.out()).error.code).toBe('TM_ERR_IO');
  });

  it('--help and --version exit 0', async () => {
    const help = capture();
    expect(await run(['--help'], help.io)).toBe(0);
    expect(help.out()).toMatch(/detect/);
    const version = capture();
    expect(await run(['--version'], version.io)).toBe(0);
  });

  it('a corrupt key file names the file and exits 3', async () => {
    const corrupt = join(directory, 'corrupt.json');
    writeFileSync(corrupt, '{"format":"tracemark-key"');
    const result = capture('text');
    expect(await run(['detect', '--key', corrupt, '-'], result.io)).toBe(3);
    expect(result.err()).toMatch(/corrupt\.json/);
  });
});

/** Token ids whose every scored position is green under `keyFile` (a LeftHash or SelfHash key). */
function greenIds(keyFile: string, length: number, seed: number): number[] {
  const watermarker = createWatermarker(parseKeyFile(readFileSync(keyFile, 'utf8')));
  const random = createRandom(seed);
  const ids = [random.nextUint32() % 100_000];
  while (ids.length < length) {
    const test = watermarker.candidateTester(ids);
    let candidate = random.nextUint32() % 100_000;
    while (test(candidate) === 0) candidate = random.nextUint32() % 100_000;
    ids.push(candidate);
  }
  return ids;
}

const fixedKey = (name: string, fill: number, delta: number): string => {
  const path = join(directory, name);
  writeFileSync(
    path,
    serializeKeyFile(createWatermarkKey({ secret: new Uint8Array(32).fill(fill), scheme: { delta } })),
    { mode: 0o600 },
  );
  return path;
};

const HUMAN =
  'The committee met on a wet Tuesday in the old town hall. Nobody had much to say about the budget, ' +
  'so the chairman read out the minutes of the last meeting, a letter from the bus company, and a ' +
  'complaint about the noise from the market on Saturday mornings. Then they went home.';

describe('a key made with --delta 0 (spec §5.2)', () => {
  const flatKey = join(directory, 'flat.json');

  it('keygen --delta 0 then detect on text: insufficient, tokensToSettle null, exit 0', async () => {
    const created = capture();
    expect(await run(['keygen', '--out', flatKey, '--delta', '0', '--json'], created.io)).toBe(0);
    expect(JSON.parse(created.out()).scheme.delta).toBe(0);
    const detected = capture(HUMAN);
    expect(await run(['detect', '--key', flatKey, '--json'], detected.io)).toBe(0);
    const report = JSON.parse(detected.out());
    expect(report.error).toBeUndefined();
    expect(report.results[0].verdict).toBe('insufficient');
    expect(report.results[0].tokensToSettle).toBeNull();
    expect(report.results[0].numScored).toBeGreaterThan(40);
    expect(report.summary).toMatchObject({ documents: 1, insufficient: 1, errors: 0 });
  });

  it('all-green token ids under that key are watermarked (p ≤ α needs no alternative)', async () => {
    const path = join(directory, 'flat-green.jsonl');
    writeFileSync(path, `${JSON.stringify({ ids: greenIds(flatKey, 40, 1) })}\n`);
    const detected = capture();
    expect(await run(['detect', '--key', flatKey, '--field', 'ids', '--json', path], detected.io)).toBe(0);
    const result = JSON.parse(detected.out()).results[0];
    expect(result.verdict).toBe('watermarked');
    expect(result.tokensToSettle).toBe(0);
  });

  it('the human line says that no amount of text is sure to settle it', async () => {
    const detected = capture(HUMAN);
    expect(await run(['detect', '--key', flatKey], detected.io)).toBe(0);
    expect(detected.out()).toMatch(/insufficient evidence.*no amount of text/);
    expect(detected.out()).not.toMatch(/about \d+ more/);
  });
});

describe('several keys: the document verdict and the reported key (spec §5.4)', () => {
  const strong = fixedKey('strong.json', 21, 2);
  const weak = fixedKey('weak.json', 22, 0.5);
  const flat = fixedKey('flat-fixed.json', 23, 0);
  const strong2 = fixedKey('strong2.json', 24, 2);
  const detectJson = async (keys: string[], input: string, field?: string) => {
    const result = capture(input);
    const argv = ['detect', ...keys.flatMap((key) => ['--key', key]), '--json'];
    if (field !== undefined) argv.push('--format', 'jsonl', '--field', field);
    expect(await run(argv, result.io)).toBe(0);
    return JSON.parse(result.out()).results[0];
  };

  it('none matching, one key ruled out and one not yet: insufficient, the undecided key, tokensToSettle > 0', async () => {
    const result = await detectJson([strong, weak], HUMAN);
    expect(result.keys.map((k: { verdict: string }) => k.verdict)).toEqual([
      'not_watermarked',
      'insufficient',
    ]);
    expect(result.verdict).toBe('insufficient');
    expect(result.keyId).toBe(result.keys[1].keyId);
    expect(result.log10PAdjusted).toBe(result.keys[1].log10PAdjusted);
    expect(result.tokensToSettle).toBeGreaterThan(0);
    // Token ids where the ruled-out key even has the smaller p-value: reporting "the smallest p"
    // printed insufficient with tokensToSettle 0 here.
    const watermarkers = [strong, weak].map((path) =>
      createWatermarker(parseKeyFile(readFileSync(path, 'utf8'))),
    );
    const random = createRandom(3);
    let ids: number[] = [];
    for (let attempt = 0; attempt < 500; attempt++) {
      ids = Array.from({ length: 60 }, () => random.nextUint32() % 100_000);
      const [a, b] = detect(ids, watermarkers).results;
      if (
        a!.verdict === 'not_watermarked' &&
        b!.verdict === 'insufficient' &&
        a!.log10PAdjusted < b!.log10PAdjusted
      )
        break;
    }
    const crafted = await detectJson([strong, weak], `${JSON.stringify({ ids })}\n`, 'ids');
    expect(crafted.keys[0].log10PAdjusted).toBeLessThan(crafted.keys[1].log10PAdjusted);
    expect(crafted.verdict).toBe('insufficient');
    expect(crafted.keyId).toBe(crafted.keys[1].keyId);
    expect(crafted.tokensToSettle).toBeGreaterThan(0);
    // A δ = 0 key among them: the document can never be ruled out.
    const three = await detectJson([strong, weak, flat], HUMAN);
    expect(three.verdict).toBe('insufficient');
    expect(three.tokensToSettle).toBeNull();
    expect(['insufficient']).toContain(
      three.keys.find((k: { keyId: string }) => k.keyId === three.keyId).verdict,
    );
  });

  it('one matching: watermarked under the matched key, tokensToSettle 0', async () => {
    const ids = greenIds(weak, 60, 2);
    const result = await detectJson([strong, weak, flat], `${JSON.stringify({ ids })}\n`, 'ids');
    expect(result.verdict).toBe('watermarked');
    expect(result.keyId).toBe(result.keys[1].keyId);
    expect(result.keys[1].verdict).toBe('watermarked');
    expect(result.tokensToSettle).toBe(0);
  });

  it('all not_watermarked: the smallest Holm-adjusted p-value is reported, tokensToSettle 0', async () => {
    const long = `${HUMAN} ${HUMAN.split(' ').reverse().join(' ')} ${HUMAN.toUpperCase()}`;
    const result = await detectJson([strong, strong2], long);
    expect(result.keys.map((k: { verdict: string }) => k.verdict)).toEqual([
      'not_watermarked',
      'not_watermarked',
    ]);
    expect(result.verdict).toBe('not_watermarked');
    const best = Math.min(...result.keys.map((k: { log10PAdjusted: number }) => k.log10PAdjusted));
    expect(result.log10PAdjusted).toBe(best);
    expect(result.tokensToSettle).toBe(0);
  });
});
