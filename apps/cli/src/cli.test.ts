import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  detect,
  parseKeyFile,
  serializeKeyFile,
} from '@tracemark/core';
import { DEFAULT_PORT, SCOPES } from '@tracemark/gateway';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from './capture.test-helper.ts';
import { commandsToLoad, run } from './cli.ts';
import { API_KEY_SCOPES } from './commands/keys.ts';
import { GATEWAY_DEFAULT_PORT, loadGateway } from './commands/serve.ts';
import { gatewayDataDir } from './gateway-data-dir.test-helper.ts';
import { CliError, type CliIo } from './io.ts';
import { benjaminiHochberg } from './multiple-testing.ts';
import { spawnCli } from './spawn.test-helper.ts';

const directory = mkdtempSync(join(tmpdir(), 'tracemark-cli-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
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

/** A captured terminal with some of its properties changed (a TTY, the environment). */
function terminal(
  overrides: Partial<Pick<CliIo, 'stdoutIsTTY' | 'stderrIsTTY' | 'stdinIsTTY' | 'env'>>,
  input = '',
): { io: CliIo; out: () => string; err: () => string } {
  const captured = capture(input);
  return { ...captured, io: { ...captured.io, ...overrides } };
}

describe('papercuts a new user met', () => {
  const papercutKey = fixedKey('papercut.json', 31, 2);

  describe('probe output is read by detect and scan without flags', () => {
    const records = [HUMAN, HUMAN.toUpperCase(), HUMAN.split(' ').reverse().join(' ')].map((text, index) => ({
      index,
      promptSha256: '0'.repeat(64),
      prompt: text,
      output: text,
      model: 'suspect',
      finishReason: 'stop',
      createdAt: '2026-01-01T00:00:00.000Z',
    }));
    const probeFile = join(directory, 'probe-out.jsonl');
    writeFileSync(probeFile, `${records.map((record) => JSON.stringify(record)).join('\n')}\n`);

    it('detect reads "output" and excludes the "prompt" (each output repeats its prompt)', async () => {
      const detected = capture();
      expect(await run(['detect', '--key', papercutKey, '--json', probeFile], detected.io)).toBe(0);
      const report = JSON.parse(detected.out());
      expect(report.summary).toMatchObject({ documents: 3, errors: 0 });
      for (const result of report.results) {
        expect(result.numTokens).toBeGreaterThan(40);
        // Only the pair that joins the prompt to the output is new.
        expect(result.numScored).toBeLessThanOrEqual(1);
      }
      // --no-prompt-field scores the whole output.
      const unprompted = capture();
      expect(
        await run(['detect', '--key', papercutKey, '--no-prompt-field', '--json', probeFile], unprompted.io),
      ).toBe(0);
      for (const result of JSON.parse(unprompted.out()).results) expect(result.numScored).toBeGreaterThan(40);
    });

    it('"text" wins over "output" when a record has both; an explicit --field still rules', async () => {
      const path = join(directory, 'both-fields.jsonl');
      writeFileSync(path, `${JSON.stringify({ text: HUMAN, output: 'short' })}\n`);
      const both = capture();
      expect(await run(['detect', '--key', papercutKey, '--json', path], both.io)).toBe(0);
      expect(JSON.parse(both.out()).results[0].numTokens).toBeGreaterThan(40);
      const explicit = capture();
      expect(
        await run(['detect', '--key', papercutKey, '--field', 'output', '--json', path], explicit.io),
      ).toBe(0);
      expect(JSON.parse(explicit.out()).results[0].numTokens).toBeLessThan(3);
    });

    it('scan reads "output" and uses "prompt" as the prompt', async () => {
      const scanned = capture();
      expect(
        await run(
          ['scan', '--key', papercutKey, '--fake-keys', '0', '--quiet', '--json', probeFile],
          scanned.io,
        ),
        scanned.err(),
      ).toBe(0);
      const report = JSON.parse(scanned.out());
      expect(report.summary).toMatchObject({ documents: 3, errors: 0 });
      expect(report.numPromptTokens).toBeGreaterThan(120);
      const unprompted = capture();
      expect(
        await run(
          ['scan', '--key', papercutKey, '--fake-keys', '0', '--no-prompt-field', '--json', probeFile],
          unprompted.io,
        ),
      ).toBe(0);
      expect(JSON.parse(unprompted.out()).numPromptTokens).toBe(0);
    });

    it('--help states the rule', async () => {
      for (const command of ['detect', 'scan']) {
        const help = capture();
        expect(await run([command, '--help'], help.io)).toBe(0);
        expect(help.out()).toMatch(/"text", else "output"/);
        expect(help.out()).toMatch(/--no-prompt-field/);
      }
    });
  });

  describe('NO_COLOR and FORCE_COLOR', () => {
    it('on a terminal one document is shown with coloured tokens, but not with NO_COLOR', async () => {
      const coloured = terminal({ stdoutIsTTY: true }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], coloured.io)).toBe(0);
      expect(coloured.out()).toContain('\u001b[');
      const plain = terminal({ stdoutIsTTY: true, env: { NO_COLOR: '1' } }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], plain.io)).toBe(0);
      expect(plain.out()).not.toContain('\u001b[');
      expect(plain.out()).toMatch(/^-: (insufficient evidence|not watermarked)/);
    });

    it('an empty NO_COLOR is ignored; FORCE_COLOR colours a pipe and FORCE_COLOR=0 a terminal not', async () => {
      const empty = terminal({ stdoutIsTTY: true, env: { NO_COLOR: '' } }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], empty.io)).toBe(0);
      expect(empty.out()).toContain('\u001b[');
      const forced = terminal({ env: { FORCE_COLOR: '1' } }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], forced.io)).toBe(0);
      expect(forced.out()).toContain('\u001b[');
      const off = terminal({ stdoutIsTTY: true, env: { FORCE_COLOR: '0' } }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], off.io)).toBe(0);
      expect(off.out()).not.toContain('\u001b[');
    });
  });

  const usage: [string, string[], RegExp][] = [
    ['a mistyped required flag', ['detect', '--kye', 'k.json', 'file.txt'], /unknown option '--kye'.*--key/s],
    ['a mistyped required flag of scan', ['scan', '--kyy', 'k.json'], /unknown option '--kyy'.*--key/s],
    [
      'a mistyped flag of keys create',
      ['keys', 'create', '--scope', 'verify'],
      /unknown option '--scope'.*--scopes/s,
    ],
    ['generate without --key', ['generate', '--prompt', 'x'], /--key.*--no-watermark/],
    [
      'generate with an unknown --tokenizer',
      ['generate', '--no-watermark', '--prompt', 'x', '--tokenizer', 'bert'],
      /--tokenizer/,
    ],
  ];
  it.each(usage)('%s: a usage error, exit 2', async (_name, argv, message) => {
    const result = capture();
    expect(await run(argv, result.io)).toBe(2);
    expect(result.err()).toMatch(message);
    expect(result.err()).not.toMatch(/required option/);
  });

  it('a missing required flag is still reported, after unknown options', async () => {
    const result = capture();
    expect(await run(['detect', 'file.txt'], result.io)).toBe(2);
    expect(result.err()).toMatch(/required option '--key <file>' not specified/);
  });

  it('generate --no-watermark with a key of another tokenizer than --tokenizer is refused', async () => {
    const result = capture();
    expect(
      await run(
        ['generate', '--no-watermark', '--key', papercutKey, '--tokenizer', 'o200k_base', '--prompt', 'x'],
        result.io,
      ),
    ).toBe(2);
    expect(result.err()).toMatch(/cl100k_base.*o200k_base|o200k_base.*cl100k_base/);
  });

  it('keys list prints a header row (not in --json)', async () => {
    const dataDir = await gatewayDataDir(join(directory, 'keys-data'));
    const created = capture();
    expect(
      await run(['keys', 'create', '--scopes', 'verify', '--name', 'ci', '--data-dir', dataDir], created.io),
    ).toBe(0);
    const human = capture();
    expect(await run(['keys', 'list', '--data-dir', dataDir], human.io)).toBe(0);
    const lines = human.out().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ID\s+STATE\s+SCOPES\s+ACCOUNT\s+EXPIRES\s+NAME$/);
    expect(lines[1]).toMatch(/\s+active\s+verify\s+default\s+never\s+ci$/);
    // The columns line up: each heading starts where its value does.
    expect(lines[1]!.indexOf(' active') + 1).toBe(lines[0]!.indexOf('STATE'));
    const json = capture();
    expect(await run(['keys', 'list', '--data-dir', dataDir, '--json'], json.io)).toBe(0);
    expect(JSON.parse(json.out()).keys).toHaveLength(1);
  });

  describe('stdin on a terminal', () => {
    it('detect with no path and stdin a terminal fails fast with a usage error', async () => {
      const result = terminal({ stdinIsTTY: true }, HUMAN);
      expect(await run(['detect', '--key', papercutKey], result.io)).toBe(2);
      expect(result.err()).toMatch(/no input: give a file or directory, or pipe text/);
      const json = terminal({ stdinIsTTY: true }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '--json'], json.io)).toBe(2);
      expect(JSON.parse(json.out()).error.code).toBe('TM_ERR_USAGE');
      const scan = terminal({ stdinIsTTY: true }, HUMAN);
      expect(await run(['scan', '--key', papercutKey], scan.io)).toBe(2);
      expect(scan.err()).toMatch(/no input/);
    });

    it('- still reads the terminal, with a one-line hint on stderr (not with --quiet)', async () => {
      const result = terminal({ stdinIsTTY: true }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], result.io)).toBe(0);
      expect(result.err()).toMatch(/^reading from the terminal.*Ctrl-D.*\n$/);
      expect(result.out()).toMatch(/^-: /);
      const quiet = terminal({ stdinIsTTY: true }, HUMAN);
      expect(await run(['detect', '--key', papercutKey, '--quiet', '-'], quiet.io)).toBe(0);
      expect(quiet.err()).toBe('');
      const piped = capture(HUMAN);
      expect(await run(['detect', '--key', papercutKey, '-'], piped.io)).toBe(0);
      expect(piped.err()).toBe('');
    });
  });

  describe('many documents: expected false positives and --correct bh', () => {
    // Ten documents: one strongly watermarked (39 green tokens), one just past α = 1e-4 on its own (7 of
    // 7 green, p = 0.25^7 ≈ 6.1e-5) and eight of random tokens. Benjamini–Hochberg at α keeps the first
    // (p ≤ α·1/10) and drops the second (p > α·2/10 = 2e-5).
    const lines = [
      { ids: greenIds(papercutKey, 40, 11) },
      { ids: greenIds(papercutKey, 8, 12) },
      ...Array.from({ length: 8 }, (_, i) => {
        const random = createRandom(100 + i);
        return { ids: Array.from({ length: 60 }, () => random.nextUint32() % 100_000) };
      }),
    ];
    const path = join(directory, 'many.jsonl');
    writeFileSync(path, `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
    const argv = ['detect', '--key', papercutKey, '--field', 'ids', path];

    it('the human summary states N·α', async () => {
      const result = capture();
      expect(await run(argv, result.io)).toBe(0);
      expect(result.out()).toMatch(/^10 documents: 2 watermarked, /m);
      expect(result.out()).toMatch(
        /of 10 documents, about 0\.001 would be flagged by chance at α = 0\.0001 \(--correct bh controls the false discovery rate instead\)/,
      );
    });

    it('N·α is the decimal it is, without floating-point noise, in JSON and in words', async () => {
      // 3 × 0.0001 in doubles is 0.00030000000000000003.
      const three = join(directory, 'three.jsonl');
      writeFileSync(
        three,
        `${lines
          .slice(0, 3)
          .map((line) => JSON.stringify(line))
          .join('\n')}\n`,
      );
      const json = capture();
      expect(await run(['detect', '--key', papercutKey, '--field', 'ids', three, '--json'], json.io)).toBe(0);
      expect(json.out()).toContain('"expectedFalsePositives":0.0003,');
      expect(JSON.parse(json.out()).summary.expectedFalsePositives).toBe(0.0003);
      const human = capture();
      expect(await run(['detect', '--key', papercutKey, '--field', 'ids', three], human.io)).toBe(0);
      expect(human.out()).toMatch(
        /^of 3 documents, about 0\.0003 would be flagged by chance at α = 0\.0001 /m,
      );
      // α = 0.07: 3 × 0.07 = 0.21000000000000002 in doubles.
      const wide = capture();
      expect(
        await run(
          ['detect', '--key', papercutKey, '--field', 'ids', three, '--fpr', '0.07', '--json'],
          wide.io,
        ),
      ).toBe(0);
      expect(JSON.parse(wide.out()).summary.expectedFalsePositives).toBe(0.21);
    });

    it('--json: summary.expectedFalsePositives; --correct bh adds log10PCorrected and verdictCorrected', async () => {
      const plain = capture();
      expect(await run([...argv, '--json'], plain.io)).toBe(0);
      const uncorrected = JSON.parse(plain.out());
      expect(uncorrected.summary.expectedFalsePositives).toBe(0.001);
      expect(uncorrected.summary.correction).toBe('none');
      expect(uncorrected.results[0]).not.toHaveProperty('verdictCorrected');
      expect(uncorrected.results.slice(0, 2).map((r: { verdict: string }) => r.verdict)).toEqual([
        'watermarked',
        'watermarked',
      ]);
      expect(uncorrected.results[1].log10PAdjusted).toBeCloseTo(7 * Math.log10(0.25), 10);

      const bh = capture();
      expect(await run([...argv, '--correct', 'bh', '--json'], bh.io)).toBe(0);
      const corrected = JSON.parse(bh.out());
      // The existing fields are unchanged.
      expect(
        corrected.results.map(
          ({ log10PCorrected, verdictCorrected, ...rest }: object & Record<string, unknown>) => rest,
        ),
      ).toEqual(uncorrected.results);
      expect(corrected.results.map((r: { verdictCorrected: string }) => r.verdictCorrected)).toEqual([
        'watermarked',
        'insufficient',
        ...uncorrected.results.slice(2).map((r: { verdict: string }) => r.verdict),
      ]);
      const expected = benjaminiHochberg(
        uncorrected.results.map((r: { log10PAdjusted: number }) => r.log10PAdjusted),
        1e-4,
      );
      expect(corrected.results.map((r: { log10PCorrected: number }) => r.log10PCorrected)).toEqual(
        expected.map((e) => e.log10PAdjusted),
      );
      expect(corrected.summary).toMatchObject({
        documents: 10,
        watermarked: 2,
        correction: 'bh',
        watermarkedCorrected: 1,
        expectedFalsePositives: uncorrected.summary.expectedFalsePositives,
      });
    });

    it('--correct bh changes the human verdicts, and --fail-on-detect follows them', async () => {
      const result = capture();
      expect(await run([...argv, '--correct', 'bh', '--fail-on-detect'], result.io)).toBe(1);
      const out = result.out();
      expect(out).toMatch(
        new RegExp(`^${path}:1: WATERMARKED, log10 p = -23\\.48, BH-adjusted -22\\.48`, 'm'),
      );
      expect(out).toMatch(
        new RegExp(
          `^${path}:2: insufficient evidence, log10 p = -4\\.21, BH-adjusted -3\\.52, .*; watermarked at α = 0\\.0001 alone, not after`,
          'm',
        ),
      );
      expect(out).toMatch(/^10 documents: 1 watermarked after Benjamini–Hochberg \(2 at α alone\)/m);
      const onlyOne = capture();
      const weak = join(directory, 'weak.jsonl');
      writeFileSync(weak, `${JSON.stringify(lines[1])}\n${JSON.stringify(lines[2])}\n`);
      expect(
        await run(
          ['detect', '--key', papercutKey, '--field', 'ids', '--correct', 'bh', '--fail-on-detect', weak],
          onlyOne.io,
        ),
      ).toBe(0);
    });

    it('--correct takes none or bh', async () => {
      const result = capture();
      expect(await run([...argv, '--correct', 'holm'], result.io)).toBe(2);
      expect(result.err()).toMatch(/--correct must be none or bh/);
    });
  });
});

describe('commands load lazily: the gateway is an optional package', () => {
  const ALL = [
    'keygen',
    'generate',
    'detect',
    'serve',
    'keys',
    'scan',
    'scan-worker',
    'probe',
    'monitor',
    'verify',
    'evidence',
  ];
  it.each([
    [['--version'], []],
    [['-V'], []],
    [['detect', '--key', 'k.json', 'a.txt'], ['detect']],
    [['help', 'scan'], ['scan']],
    [['keys', 'list', '--json'], ['keys']],
    [[], ALL],
    [['--help'], ALL],
    [['detcet'], ALL],
  ])('%j loads %j', (argv, names) => {
    expect(commandsToLoad(argv)).toEqual(names);
  });

  it('a mistyped command still gets a suggestion; help lists every command', async () => {
    const mistyped = capture();
    expect(await run(['detcet'], mistyped.io)).toBe(2);
    expect(mistyped.err()).toMatch(/Did you mean detect\?/);
    const help = capture();
    expect(await run(['--help'], help.io)).toBe(0);
    for (const name of ALL) expect(help.out()).toMatch(new RegExp(`^  ${name} `, 'm'));
  });

  it('--version prints the version of the package.json, and loads no command', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const result = capture();
    expect(await run(['--version'], result.io)).toBe(0);
    expect(result.out()).toBe(`${version}\n`);
  });

  it("the help's copies of the gateway's default port and scopes agree with the gateway", () => {
    expect(GATEWAY_DEFAULT_PORT).toBe(DEFAULT_PORT);
    expect(API_KEY_SCOPES).toEqual(SCOPES);
  });

  it('without the gateway installed, the error names the package (exit 3)', async () => {
    // A real failed import of a package that is not installed, in place of the gateway.
    const missing = () => import('@tracemark/not-installed' as string) as never;
    const error = await loadGateway('tracemark serve', missing).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(3);
    expect((error as CliError).code).toBe('TM_ERR_GATEWAY_MISSING');
    expect((error as CliError).message).toMatch(
      /^tracemark serve needs the package @tracemark\/gateway, which is installed without its dependency @tracemark\/not-installed/,
    );
    // Another failure passes through unchanged.
    const other = new Error('disk on fire');
    await expect(loadGateway('tracemark serve', () => Promise.reject(other))).rejects.toBe(other);
    expect((await loadGateway('tracemark serve')).DEFAULT_PORT).toBe(DEFAULT_PORT);
  });
});

describe('keygen: flags of other schemes, and --out', () => {
  const out = (name: string) => join(directory, `keygen-${name}.json`);

  it.each([
    // dual_gumbel takes --alpha too: a message naming vLLM keys alone sent users away from it.
    [
      '--alpha',
      ['--scheme', 'gumbel', '--alpha', '0.3'],
      '--alpha applies only to --scheme dual_gumbel and to vLLM keys of --scheme vllm:dual_key_gumbel',
    ],
    [
      '--alpha (default scheme)',
      ['--alpha', '0.3'],
      '--alpha applies only to --scheme dual_gumbel and to vLLM keys of --scheme vllm:dual_key_gumbel',
    ],
    [
      '--mixing-probability',
      ['--mixing-probability', '0.5'],
      '--mixing-probability applies only to SGLang keys of --scheme sglang:dual_key_gumbel',
    ],
    ['--prf', ['--prf', 'philox'], '--prf applies only to vLLM keys (--scheme vllm:gumbel, …)'],
    [
      '--ngram-len',
      ['--ngram-len', '5'],
      '--ngram-len applies only to SynthID-Text keys (--scheme synthid:tournament)',
    ],
  ])('%s on a tracemark scheme names every scheme that takes it', async (name, flags, message) => {
    const result = capture();
    expect(await run(['keygen', '--out', out(name), ...flags], result.io)).toBe(2);
    expect(result.err()).toBe(`error: ${message}\n`);
  });

  it('--scheme dual_gumbel --alpha is accepted', async () => {
    const result = capture();
    expect(
      await run(
        ['keygen', '--out', out('dual'), '--scheme', 'dual_gumbel', '--alpha', '0.3', '--json'],
        result.io,
      ),
    ).toBe(0);
    expect(JSON.parse(result.out()).scheme).toEqual({ name: 'dual_gumbel', contextWidth: 4, alpha: 0.3 });
  });

  it.each([[[]], [['--force']]])(
    '--out DIR %j is refused as a directory, and the directory is left as it was',
    async (force) => {
      const docs = mkdtempSync(join(directory, 'docs-'));
      const result = capture();
      expect(await run(['keygen', '--out', docs, ...force], result.io)).toBe(2);
      expect(result.err()).toBe(`error: --out ${docs} is a directory: name a file\n`);
      expect(readdirSync(docs)).toEqual([]);
      expect(readdirSync(directory).filter((entry) => entry.includes('.tmp'))).toEqual([]);
    },
  );
});

describe("an engine's key where only tracemark keys work", () => {
  const vllmKey = join(directory, 'vllm-key.json');

  it('generate --key vllm-key.json is a usage error (exit 2), not an I/O error', async () => {
    expect(
      await run(['keygen', '--scheme', 'vllm:gumbel', '--engine-key', '42', '--out', vllmKey], capture().io),
    ).toBe(0);
    const result = capture();
    expect(await run(['generate', '--key', vllmKey, '--prompt', 'x', '--json'], result.io)).toBe(2);
    expect(JSON.parse(result.out()).error).toEqual({
      code: 'TM_ERR_UNSUPPORTED_KEY',
      message: expect.stringMatching(
        /^.*vllm-key\.json: this command does not support vLLM keys yet \(key vllm1_\w+, vllm:gumbel\)$/,
      ),
    });
  });

  it('serve --key vllm-key.json points to engine-native mode (exit 2)', async () => {
    const serve = spawnCli([
      'serve',
      '--key',
      vllmKey,
      '--data-dir',
      join(directory, 'serve-vllm'),
      '--port',
      '0',
    ]);
    expect(await serve.exited).toBe(2);
    expect(serve.stderr()).toMatch(
      /error: .*vllm-key\.json: this command does not support vLLM keys yet \(key vllm1_\w+, vllm:gumbel\); to serve an engine that marks its output with this key, use engine-native mode: tracemark serve --upstream URL --upstream-watermark \S*vllm-key\.json\n$/,
    );
  }, 60_000);
});
