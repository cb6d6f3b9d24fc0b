/**
 * vLLM keys end to end: `tracemark keygen --scheme vllm:…` and `tracemark detect` with them, on token
 * ids that vLLM's own sampler marked (packages/core/test/vectors/foreign/vllm.json), on tracemark's
 * marks, on human text (the false-positive rate), and with bad input. In-process from source, plus one
 * real process against the built CLI.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createRandom,
  createWatermarker,
  createWatermarkKey,
  log10BinomialSf,
  serializeKeyFile,
  type VllmKey,
} from '@tracemark/core';
import { createTextDetector, createVllmWatermarkKey, type VllmKeyOptions } from '@tracemark/detection';
import { loadHumanCorpus } from '@tracemark/lm';
import { getTokenizer } from '@tracemark/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirectories, runCli, temporaryDirectory, tracemark } from './helpers.ts';

afterAll(removeTemporaryDirectories);

interface VectorCase {
  name: string;
  scheme: VllmKey['scheme'];
  prf: string;
  engineKey: string;
  contextWidth: number;
  alpha?: number;
  gamma?: number;
  delta?: number;
  sbwScheme?: 'selfhash' | 'lefthash';
  tokens: number[];
  detections: { detectionKey: string; dedup: boolean; numScored: number; exactLog10: number }[];
}
const vectors = JSON.parse(
  readFileSync(new URL('../packages/core/test/vectors/foreign/vllm.json', import.meta.url), 'utf8'),
) as { cases: VectorCase[] };
const vectorCase = (name: string): VectorCase => vectors.cases.find((c) => c.name === name)!;

const cli = runCli;

const directory = temporaryDirectory('tracemark-vllm-keys-');
let written = 0;
const write = (name: string, text: string): string => {
  const path = join(directory, `${written++}-${name}`);
  writeFileSync(path, text);
  return path;
};
const idsFile = (tokens: readonly number[]): string =>
  write('ids.jsonl', `${JSON.stringify({ ids: tokens })}\n`);

/** keygen's flags for a vector case's configuration (optionally changed). */
function keygenArgs(c: VectorCase, change: Record<string, string> = {}): string[] {
  const flags: Record<string, string> = {
    '--scheme': `vllm:${c.scheme}`,
    '--engine-key': c.engineKey,
    '--context-width': String(c.contextWidth),
    ...(c.scheme === 'sbw' ? {} : { '--prf': c.prf }),
    ...(c.alpha === undefined ? {} : { '--alpha': String(c.alpha) }),
    ...(c.gamma === undefined ? {} : { '--gamma': String(c.gamma) }),
    ...(c.delta === undefined ? {} : { '--delta': String(c.delta) }),
    ...(c.sbwScheme === undefined ? {} : { '--sbw-scheme': c.sbwScheme }),
    ...change,
  };
  return Object.entries(flags).flat();
}

async function keygen(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ path: string; keyId: string }> {
  const path = join(directory, `${written++}-key.json`);
  const outcome = await cli(['keygen', ...args, '--out', path, '--json'], '', env);
  expect(outcome.code, outcome.stdout + outcome.stderr).toBe(0);
  return { path, keyId: JSON.parse(outcome.stdout).keyId };
}

async function detectJson(keys: string[], input: string, extra: string[] = []) {
  const outcome = await cli([
    'detect',
    ...keys.flatMap((key) => ['--key', key]),
    '--field',
    'ids',
    '--json',
    ...extra,
    input,
  ]);
  return { ...outcome, report: JSON.parse(outcome.stdout) };
}

/** A distinctive engine key that no output may show (below 2^63, so every scheme takes it). */
const SECRET = '1234567890123456789';

describe('tracemark keygen --scheme vllm:…', () => {
  it('writes a 0600 key file and prints its public id, never the engine key (flag, file, variable)', async () => {
    const keyFile = write('engine-key.txt', `${SECRET}\n`);
    const sources: [string[], NodeJS.ProcessEnv][] = [
      [['--engine-key', SECRET], {}],
      [['--engine-key-file', keyFile], {}],
      [['--engine-key-env', 'VLLM_WATERMARK_KEY'], { VLLM_WATERMARK_KEY: SECRET }],
      [['--engine-key', `0x${BigInt(SECRET).toString(16)}`], {}],
    ];
    const ids = new Set<string>();
    for (const [flags, env] of sources) {
      const path = join(directory, `${written++}-secret.json`);
      for (const json of [[], ['--json']]) {
        const outcome = await cli(
          ['keygen', '--scheme', 'vllm:gumbel', ...flags, '--out', path, '--force', ...json],
          '',
          env,
        );
        expect(outcome.code, outcome.stderr).toBe(0);
        expect(outcome.stdout + outcome.stderr).not.toContain(SECRET);
        const keyId = json.length > 0 ? JSON.parse(outcome.stdout).keyId : outcome.stdout.trim();
        expect(keyId).toMatch(/^vllm1_[0-9a-f]{24}$/);
        ids.add(keyId);
      }
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const file = JSON.parse(readFileSync(path, 'utf8'));
      expect(file).toMatchObject({ format: 'tracemark-vllm-key', version: 1, engineKey: SECRET });
    }
    expect(ids.size).toBe(1);
  });

  it('prints a JSON summary without the engine key, every parameter resolved', async () => {
    const outcome = await cli([
      'keygen',
      '--scheme',
      'vllm:sbw',
      '--engine-key',
      SECRET,
      '--sbw-scheme',
      'lefthash',
      '--tokenizer',
      'meta-llama/Llama-3.1-8B',
      '--vocab-size',
      '128256',
      '--out',
      join(directory, 'summary.json'),
      '--json',
    ]);
    expect(outcome.code).toBe(0);
    expect(JSON.parse(outcome.stdout)).toEqual({
      keyId: expect.stringMatching(/^vllm1_/),
      file: join(directory, 'summary.json'),
      scheme: 'vllm:sbw',
      prf: 'sbw-philox',
      contextWidth: 1,
      gamma: 0.5,
      delta: 2,
      sbwScheme: 'lefthash',
      sbwLefthashSeeds: 'detector',
      tokenizer: 'meta-llama/Llama-3.1-8B',
      vocabSize: 128256,
      readsText: false,
    });
  });

  it('never replaces a key file without --force', async () => {
    const { path } = await keygen(['--scheme', 'vllm:gumbel', '--engine-key', '1']);
    const before = readFileSync(path, 'utf8');
    const again = await cli([
      'keygen',
      '--scheme',
      'vllm:gumbel',
      '--engine-key',
      '2',
      '--out',
      path,
      '--json',
    ]);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stdout).error.code).toBe('TM_ERR_KEY_EXISTS');
    expect(readFileSync(path, 'utf8')).toBe(before);
    const forced = await cli([
      'keygen',
      '--scheme',
      'vllm:gumbel',
      '--engine-key',
      '2',
      '--out',
      path,
      '--force',
    ]);
    expect(forced.code).toBe(0);
    expect(JSON.parse(readFileSync(path, 'utf8')).engineKey).toBe('2');
  });

  const out = () => join(directory, `${written++}-bad.json`);
  const refused: [string, string[], RegExp, NodeJS.ProcessEnv?][] = [
    [
      'hmac with dual_key_gumbel',
      ['--scheme', 'vllm:dual_key_gumbel', '--prf', 'hmac-sha256-v1'],
      /^--prf: /,
    ],
    ['hmac with red_green', ['--scheme', 'vllm:red_green', '--prf', 'hmac-sha256-v1'], /^--prf: /],
    ['hmac with sbw', ['--scheme', 'vllm:sbw', '--prf', 'hmac-sha256-v1'], /^--prf: /],
    ['an unknown PRF', ['--scheme', 'vllm:gumbel', '--prf', 'md5'], /^--prf: /],
    [
      'an sbw key of 2^63',
      ['--scheme', 'vllm:sbw', '--engine-key', String(1n << 63n)],
      /^--engine-key: .*2\^63/,
    ],
    [
      'a philox key of 2^64',
      ['--scheme', 'vllm:gumbel', '--engine-key', String(1n << 64n)],
      /^--engine-key: .*2\^64/,
    ],
    [
      'an engine key that is not a number',
      ['--scheme', 'vllm:gumbel', '--engine-key', '12x34'],
      /^--engine-key: /,
    ],
    ['α on gumbel', ['--scheme', 'vllm:gumbel', '--alpha', '0.2'], /^--alpha: applies only/],
    ['α above 1', ['--scheme', 'vllm:dual_key_gumbel', '--alpha', '1.5'], /--alpha/],
    ['γ on gumbel', ['--scheme', 'vllm:gumbel', '--gamma', '0.3'], /^--gamma: applies only/],
    ['δ on dual_key_gumbel', ['--scheme', 'vllm:dual_key_gumbel', '--delta', '1'], /^--delta: applies only/],
    ['a negative δ', ['--scheme', 'vllm:sbw', '--delta', '-1'], /--delta/],
    ['context width 0', ['--scheme', 'vllm:gumbel', '--context-width', '0'], /--context-width/],
    ['context width 5000', ['--scheme', 'vllm:gumbel', '--context-width', '5000'], /--context-width/],
    ['sbw scheme on gumbel', ['--scheme', 'vllm:gumbel', '--sbw-scheme', 'selfhash'], /^--sbw-scheme: /],
    [
      'lefthash seeds on selfhash',
      ['--scheme', 'vllm:sbw', '--sbw-lefthash-seeds', 'generator'],
      /^--sbw-lefthash-seeds: /,
    ],
    [
      'a vocabulary size with cl100k_base',
      ['--scheme', 'vllm:gumbel', '--vocab-size', '100'],
      /^--vocab-size: /,
    ],
    ['an unknown vLLM scheme', ['--scheme', 'vllm:kgw'], /^--scheme /],
  ];
  it.each(refused)('refuses %s with a usage error naming the flag', async (_name, flags, message) => {
    // The key-range cases give their own engine key.
    const engineKey = flags.includes('--engine-key') ? [] : ['--engine-key', SECRET];
    const outcome = await cli(['keygen', ...flags, ...engineKey, '--out', out()]);
    expect(outcome.code).toBe(2);
    expect(outcome.stderr.replace(/^error: /, '')).toMatch(message);
    expect(outcome.stderr).not.toContain(SECRET);
  });

  it('needs the engine key exactly once, and names the variable or file it could not read', async () => {
    const base = ['keygen', '--scheme', 'vllm:gumbel', '--out', out()];
    expect((await cli(base)).stderr).toMatch(/--engine-key, --engine-key-file, --engine-key-env/);
    const twice = await cli([...base, '--engine-key', '1', '--engine-key-env', 'K'], '', { K: '2' });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/once/);
    const unset = await cli([...base, '--engine-key-env', 'NOT_SET_ANYWHERE']);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/--engine-key-env NOT_SET_ANYWHERE: the variable is not set/);
    const missing = await cli([...base, '--engine-key-file', join(directory, 'nope.txt')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/--engine-key-file .*nope\.txt: cannot read/);
    const garbage = await cli([...base, '--engine-key-env', 'K'], '', { K: `${SECRET}z` });
    expect(garbage.code).toBe(2);
    expect(garbage.stderr).not.toContain(SECRET);
  });

  it("vLLM-only flags are refused for tracemark's own schemes", async () => {
    for (const flags of [
      ['--prf', 'philox'],
      ['--engine-key', '1'],
      ['--alpha', '0.1'],
      ['--sbw-scheme', 'selfhash'],
    ]) {
      const outcome = await cli(['keygen', '--scheme', 'lefthash', ...flags, '--out', out()]);
      expect(outcome.code).toBe(2);
      expect(outcome.stderr).toMatch(new RegExp(`${flags[0]} applies only to [^\\n]*vLLM[^\\n]* keys`));
    }
    const wide = await cli(['keygen', '--context-width', '17', '--out', out()]);
    expect(wide.stderr).toMatch(/--context-width must be an integer from 1 to 16/);
  });
});

/** One configuration per scheme × PRF that vLLM shipped. */
const POSITIVE: [string, Record<string, string>][] = [
  ['gumbel-philox-k42-w4', {}],
  ['gumbel-hmac-k256-w4', {}],
  ['dual-philox-k42-w4-a0.1', {}],
  ['redgreen-philox-k42-w4-g0.25', {}],
  ['sbw-selfhash-k42-w4', {}],
  ['sbw-lefthash-k42-w1', { '--sbw-lefthash-seeds': 'generator' }],
];

describe('tracemark detect --key VLLM_KEY on token ids vLLM marked', () => {
  it.each(POSITIVE)('%s: watermarked, the stable contract plus the vLLM fields', async (name, change) => {
    const c = vectorCase(name);
    const { path, keyId } = await keygen(keygenArgs(c, change));
    const { code, report } = await detectJson([path], idsFile(c.tokens), ['--dedup', 'context']);
    expect(code).toBe(0);
    const result = report.results[0];
    expect(result).toMatchObject({
      verdict: 'watermarked',
      numTokens: c.tokens.length,
      keyId,
      keysTested: 1,
      tokensToSettle: 0,
      scheme: `vllm:${c.scheme}`,
      dedup: 'context',
    });
    for (const field of ['numScored', 'log10P', 'log10PAdjusted', 'score', 'peerLog10P', 'z']) {
      expect(typeof result[field], field).toBe('number');
    }
    expect(result.log10P).toBeLessThanOrEqual(-4);
    const vllmDetection = c.detections.find((d) => d.detectionKey === c.engineKey && d.dedup)!;
    if (change['--sbw-lefthash-seeds'] === undefined) {
      expect(result.numScored).toBe(vllmDetection.numScored);
      expect(result.log10P).toBeCloseTo(vllmDetection.exactLog10, 6);
    }
    if (c.scheme === 'gumbel' || c.scheme === 'dual_key_gumbel') expect(result.numGreen).toBeNull();
    else expect(typeof result.numGreen).toBe('number');
    // The default deduplication finds it too.
    expect((await detectJson([path], idsFile(c.tokens))).report.results[0].verdict).toBe('watermarked');
  });

  it('the human line names the scheme and vLLM’s own p-value', async () => {
    const c = vectorCase('gumbel-philox-k42-w4');
    const { path } = await keygen(keygenArgs(c));
    const outcome = await cli(['detect', '--key', path, '--field', 'ids', idsFile(c.tokens)]);
    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toMatch(
      /WATERMARKED, log10 p = -98\.96, .*score 472\.25 over 96 scored tokens .*\(vllm:gumbel; the engine's own formula: log10 p = -98\.96\)/,
    );
  });

  it('--fpr sets the level: a tiny α leaves the same text insufficient, exit 0', async () => {
    const c = vectorCase('redgreen-philox-k42-w4-g0.25');
    const { path } = await keygen(keygenArgs(c));
    const { code, report } = await detectJson([path], idsFile(c.tokens), ['--fpr', '1e-30']);
    expect(code).toBe(0);
    expect(report.results[0].verdict).toBe('insufficient');
    expect(report.results[0].fpr).toBe(1e-30);
  });

  it('Holm over a tracemark key and a vLLM key; --fail-on-detect exits 1', async () => {
    const c = vectorCase('gumbel-hmac-k256-w4');
    const { path, keyId } = await keygen(keygenArgs(c));
    const tracemarkKey = write('tracemark.json', serializeKeyFile(createWatermarkKey()));
    const outcome = await cli([
      'detect',
      '--key',
      tracemarkKey,
      '--key',
      path,
      '--field',
      'ids',
      '--json',
      '--fail-on-detect',
      idsFile(c.tokens),
    ]);
    expect(outcome.code).toBe(1);
    const result = JSON.parse(outcome.stdout).results[0];
    expect(result).toMatchObject({ verdict: 'watermarked', keyId, keysTested: 2 });
    expect(result.log10PAdjusted).toBeCloseTo(result.log10P + Math.log10(2), 10);
    expect(result.keys).toHaveLength(2);
    expect(result.keys[0].scheme).toBeUndefined();
    expect(result.keys[1].scheme).toBe('vllm:gumbel');
  });
});

/** Token ids whose every scored position is green under a tracemark key. */
function tracemarkMarked(length: number, seed: number): { ids: number[]; keyFile: string } {
  const key = createWatermarkKey({ secret: new Uint8Array(32).fill(seed) });
  const watermarker = createWatermarker(key);
  const random = createRandom(seed);
  const ids = [random.nextUint32() % 100_000];
  while (ids.length < length) {
    const test = watermarker.candidateTester(ids);
    let candidate = random.nextUint32() % 100_000;
    while (test(candidate) === 0) candidate = random.nextUint32() % 100_000;
    ids.push(candidate);
  }
  return { ids, keyFile: write('marked-key.json', serializeKeyFile(key)) };
}

describe('bad input: a clear error, or an honest verdict, never a false watermarked', () => {
  it.each(POSITIVE)('%s under a wrong engine key and a wrong context width', async (name, change) => {
    const c = vectorCase(name);
    const engineKey = BigInt(c.engineKey);
    const wrongKey = await keygen(keygenArgs(c, { ...change, '--engine-key': String(engineKey + 1n) }));
    const changes = [wrongKey];
    // sbw selfhash at another width shares its seeds' minima: a true mark of the same engine key.
    if (c.sbwScheme !== 'selfhash') {
      changes.push(await keygen(keygenArgs(c, { ...change, '--context-width': String(c.contextWidth + 1) })));
    }
    for (const { path } of changes) {
      const { code, report } = await detectJson([path], idsFile(c.tokens));
      expect(code).toBe(0);
      expect(report.results[0].verdict).not.toBe('watermarked');
      expect(report.results[0].log10PAdjusted).toBeGreaterThan(-4);
    }
  });

  it('vLLM keys on tracemark-marked ids, and a tracemark key on vLLM-marked ids', async () => {
    const marked = tracemarkMarked(200, 11);
    expect((await detectJson([marked.keyFile], idsFile(marked.ids))).report.results[0].verdict).toBe(
      'watermarked',
    );
    for (const [name, change] of POSITIVE) {
      const c = vectorCase(name);
      const { path } = await keygen(keygenArgs(c, change));
      const onTracemark = (await detectJson([path], idsFile(marked.ids))).report.results[0];
      expect(onTracemark.verdict, name).not.toBe('watermarked');
      const onVllm = (await detectJson([marked.keyFile], idsFile(c.tokens))).report.results[0];
      expect(onVllm.verdict, name).not.toBe('watermarked');
    }
  });

  it('ids outside the vocabulary are a document error (exit 3), with a shipped tokenizer or --vocab-size', async () => {
    const c = vectorCase('gumbel-philox-k42-w4');
    const cl100k = await keygen(keygenArgs(c));
    const sized = await keygen(keygenArgs(c, { '--tokenizer': 'vendor/model-128', '--vocab-size': '128' }));
    for (const [key, id] of [
      [cl100k.path, 100_277],
      [sized.path, 128],
      [sized.path, -1],
    ] as const) {
      const { code, report } = await detectJson([key], idsFile([...c.tokens, id]));
      expect(code).toBe(3);
      expect(report.results[0].error.code).toBe('TM_ERR_INVALID_TOKENS');
      expect(report.results[0].error.message).toMatch(/tokens\[96\]/);
    }
    expect((await detectJson([sized.path], idsFile(c.tokens))).report.results[0].verdict).toBe('watermarked');
  });

  it('text for a key bound to a tokenizer tracemark does not ship: a clear error; its token ids work', async () => {
    const c = vectorCase('gumbel-philox-k42-w4');
    const { path, keyId } = await keygen(keygenArgs(c, { '--tokenizer': 'meta-llama/Llama-3.1-8B' }));
    const message = `key ${keyId} is bound to tokenizer "meta-llama/Llama-3.1-8B"; give token ids (JSONL field of ids) or a key bound to one of cl100k_base, o200k_base, gpt2`;
    const textFile = write('text.txt', 'Some text a person wrote.');
    const text = await cli(['detect', '--key', path, '--json', textFile]);
    expect(text.code).toBe(3);
    expect(JSON.parse(text.stdout).results[0].error).toEqual({
      code: 'TM_ERR_TOKENIZER_UNAVAILABLE',
      message: `${textFile}: ${message}`,
    });
    const stdin = await cli(['detect', '--key', path], 'Some text a person wrote.');
    expect(stdin.code).toBe(3);
    expect(stdin.stderr).toContain(message);
    const jsonlText = await detectJson(
      [path],
      write('t.jsonl', `${JSON.stringify({ ids: 'words, not ids' })}\n`),
    );
    expect(jsonlText.report.results[0].error.code).toBe('TM_ERR_TOKENIZER_UNAVAILABLE');
    const ids = await detectJson([path], idsFile(c.tokens));
    expect(ids.report.results[0]).toMatchObject({
      verdict: 'watermarked',
      tokenizer: 'meta-llama/Llama-3.1-8B',
    });
  });

  it('text with a vLLM key bound to cl100k_base is read; human text is not watermarked', async () => {
    const { path } = await keygen(['--scheme', 'vllm:red_green', '--engine-key', '5']);
    const human =
      'The committee met on a wet Tuesday in the old town hall. Nobody had much to say about the budget, ' +
      'so the chairman read out the minutes of the last meeting, a letter from the bus company, and a ' +
      'complaint about the noise from the market on Saturday mornings. Then they went home.';
    const outcome = await cli(['detect', '--key', path, '--json'], human);
    expect(outcome.code).toBe(0);
    const result = JSON.parse(outcome.stdout).results[0];
    expect(result.verdict).not.toBe('watermarked');
    expect(result.numScored).toBeGreaterThan(40);
    expect(result.scheme).toBe('vllm:red_green');
  });

  it('--window with a vLLM key; usage errors: --dedup, mixed tokenizers', async () => {
    const c = vectorCase('sbw-selfhash-k42-w4');
    const { path } = await keygen(keygenArgs(c));
    const input = idsFile(c.tokens);
    const windowed = await cli(['detect', '--key', path, '--window', '--field', 'ids', '--json', input]);
    expect(windowed.code).toBe(0);
    const result = JSON.parse(windowed.stdout).results[0];
    expect(result.window.windowsSearched).toBeGreaterThanOrEqual(1);
    expect(result.log10PAdjusted).toBe(result.window.log10PCorrected);
    expect((await cli(['detect', '--key', path, '--dedup', 'some', input])).code).toBe(2);
    const vllmRule = await cli(['detect', '--key', path, '--dedup', 'context', '--field', 'ids', input]);
    expect(vllmRule.code).toBe(0);
    expect(vllmRule.stderr).toMatch(/not valid on natural text/);
    const other = await keygen(keygenArgs(c, { '--tokenizer': 'o200k_base' }));
    const mixed = await cli(['detect', '--key', path, '--key', other.path, '--field', 'ids', input]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/different tokenizers/);
  });

  it('a corrupt or edited vLLM key file: exit 3, naming the file and the field, never the engine key', async () => {
    const { path } = await keygen(['--scheme', 'vllm:gumbel', '--engine-key', SECRET]);
    const file = JSON.parse(readFileSync(path, 'utf8'));
    const edited = write('edited.json', JSON.stringify({ ...file, contextWidth: 5 }));
    const outcome = await cli(['detect', '--key', edited, '-'], 'text');
    expect(outcome.code).toBe(3);
    expect(outcome.stderr).toMatch(/edited\.json: key file: "keyId" does not match/);
    expect(outcome.stderr).not.toContain(SECRET);
  });

  it('commands that take tracemark keys only say so for a vLLM key', async () => {
    const { path } = await keygen(['--scheme', 'vllm:gumbel', '--engine-key', SECRET]);
    // generate samples with tracemark's own schemes; detect and scan read engines' keys.
    for (const argv of [['generate', '--key', path, '--prompt', 'x', '--max-tokens', '4']]) {
      const outcome = await cli(argv, 'some text');
      expect(outcome.code, argv[0]).toBe(2);
      expect(outcome.stderr, argv[0]).toMatch(/this command does not support vLLM keys yet/);
      expect(outcome.stderr).not.toContain(SECRET);
    }
  });
});

describe('false positives: human text under random vLLM keys', () => {
  const KEYS = 20;
  const TOKENS = 1000;
  const CONFIGS: [string, Omit<VllmKeyOptions, 'engineKey'>][] = [
    ['gumbel philox', { scheme: 'gumbel' }],
    ['gumbel hmac-sha256-v1', { scheme: 'gumbel', prf: 'hmac-sha256-v1' }],
    ['dual_key_gumbel', { scheme: 'dual_key_gumbel' }],
    ['red_green', { scheme: 'red_green' }],
    ['sbw selfhash', { scheme: 'sbw' }],
    ['sbw selfhash, width 1', { scheme: 'sbw', contextWidth: 1 }],
    ['sbw lefthash', { scheme: 'sbw', sbwScheme: 'lefthash' }],
    [
      'sbw lefthash, generator seeds',
      { scheme: 'sbw', sbwScheme: 'lefthash', sbwLefthashSeeds: 'generator' },
    ],
  ];
  let documents: number[][] = [];
  beforeAll(async () => {
    const tokenizer = getTokenizer('cl100k_base');
    const corpus = await loadHumanCorpus({ source: 'brown', split: 'test' });
    documents = corpus.map((document) => Array.from(tokenizer.encodeFast(document.text).subarray(0, TOKENS)));
  });

  /** The smallest count k with P[Bin(n, p) ≥ k] ≤ 1e−6: more would mean the p-values are not valid. */
  const bound = (n: number, p: number): number => {
    let k = 0;
    while (log10BinomialSf(k, n, p) > -6) k++;
    return k;
  };

  /** p ≤ 1e−2 and watermarked counts over KEYS random keys × the documents. */
  function falsePositives(
    config: Omit<VllmKeyOptions, 'engineKey'>,
    seed: number,
    vllmDedup?: 'context',
  ): { tests: number; atOnePercent: number; watermarked: number } {
    const random = createRandom(seed);
    const bits = config.prf === 'hmac-sha256-v1' ? 256 : config.scheme === 'sbw' ? 63 : 64;
    const counts = { tests: 0, atOnePercent: 0, watermarked: 0 };
    for (let k = 0; k < KEYS; k++) {
      let engineKey = 0n;
      for (let word = 0; word < Math.ceil(bits / 32); word++) {
        engineKey = (engineKey << 32n) | BigInt(random.nextUint32());
      }
      engineKey &= (1n << BigInt(bits)) - 1n;
      const detector = createTextDetector({
        keys: [createVllmWatermarkKey({ ...config, engineKey })],
        ...(vllmDedup === undefined ? {} : { vllmDedup }),
      });
      for (const ids of documents) {
        const result = detector.detectTokens(ids);
        counts.tests++;
        if (result.log10P <= -2) counts.atOnePercent++;
        if (result.verdict === 'watermarked') counts.watermarked++;
      }
    }
    return counts;
  }

  it.each(CONFIGS)(
    '%s: the share with p ≤ 1e−2 and the share watermarked at α = 1e−4 within binomial bounds',
    (name, config) => {
      expect(documents.length).toBeGreaterThanOrEqual(20);
      const { tests, atOnePercent, watermarked } = falsePositives(
        config,
        CONFIGS.findIndex(([n]) => n === name) + 1,
      );
      expect(atOnePercent, `${atOnePercent} of ${tests}`).toBeLessThan(bound(tests, 1e-2));
      expect(watermarked, `${watermarked} of ${tests}`).toBeLessThan(bound(tests, 1e-4));
    },
  );

  it("why strict is the default: under vLLM's context rule sbw selfhash flags human text", () => {
    const { tests, atOnePercent, watermarked } = falsePositives(
      { scheme: 'sbw', contextWidth: 1 },
      6,
      'context',
    );
    expect(atOnePercent).toBeGreaterThan(bound(tests, 1e-2));
    expect(watermarked).toBeGreaterThan(bound(tests, 1e-4));
  });
});

describe('a real process (the built CLI)', () => {
  it('keygen from an environment variable, then detect token ids', async () => {
    const c = vectorCase('dual-philox-k42-w4-a0.1');
    const path = join(directory, 'spawned.json');
    // The helper copies the environment when it spawns, so the variable is set only for that call.
    process.env.TRACEMARK_TEST_ENGINE_KEY = c.engineKey;
    const pending = tracemark([
      'keygen',
      '--scheme',
      'vllm:dual_key_gumbel',
      '--engine-key-env',
      'TRACEMARK_TEST_ENGINE_KEY',
      '--alpha',
      '0.1',
      '--out',
      path,
    ]);
    delete process.env.TRACEMARK_TEST_ENGINE_KEY;
    const created = await pending;
    expect(created.code, created.stderr).toBe(0);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const detected = await tracemark([
      'detect',
      '--key',
      path,
      '--field',
      'ids',
      '--json',
      idsFile(c.tokens),
    ]);
    expect(detected.code, detected.stderr).toBe(0);
    expect(JSON.parse(detected.stdout).results[0]).toMatchObject({
      verdict: 'watermarked',
      keyId: created.stdout.trim(),
      scheme: 'vllm:dual_key_gumbel',
    });
  });
});
