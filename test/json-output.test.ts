/**
 * Every `--json` output is one valid JSON value, whatever fails: a document that cannot be read, a
 * bad key, a usage error, or an internal failure after `detect` has begun streaming its results.
 * The CLI runs in-process from source; the detection engine is wrapped so that a marker in the input
 * makes it throw as an unexpected bug would.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { removeTemporaryDirectories, runCli, temporaryDirectory, writeFixedKeyFile } from './helpers.ts';

afterAll(removeTemporaryDirectories);

const FAILURE_MARKER = 'tracemark-test-simulated-internal-failure';

vi.mock('../apps/cli/src/detect-engine.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../apps/cli/src/detect-engine.ts')>();
  return {
    ...original,
    createEngine: (options: Parameters<typeof original.createEngine>[0]) => {
      const engine = original.createEngine(options);
      return {
        ...engine,
        run: (job: Parameters<typeof engine.run>[0]) => {
          const texts = job.kind === 'lines' ? job.texts : job.kind === 'tokenize' ? [job.text] : [];
          if (texts.some((text) => text.includes(FAILURE_MARKER)))
            throw new Error('simulated internal failure');
          return engine.run(job);
        },
      };
    },
  };
});

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const cli = runCli;

/** Parses stdout as exactly one JSON value (JSON.parse rejects trailing text). */
// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the CLI printed.
function parsed(outcome: Outcome): any {
  try {
    return JSON.parse(outcome.stdout);
  } catch (error) {
    throw new Error(`stdout is not one JSON value (${(error as Error).message}):\n${outcome.stdout}`);
  }
}

const directory = temporaryDirectory('tracemark-json-');
const keyPath = join(directory, 'key.json');
writeFixedKeyFile(keyPath, 3);
const good = 'A short sentence, written by a person, about the weather on a grey morning.';
const write = (name: string, content: string | Buffer): string => {
  const path = join(directory, name);
  writeFileSync(path, content);
  return path;
};

describe('detect --json stays valid JSON', () => {
  it('an internal failure mid-stream (JSONL): the results so far, the summary, and a top-level error', async () => {
    const first = write('first.jsonl', `${JSON.stringify({ text: good })}\n`);
    const failing = write('failing.jsonl', `${JSON.stringify({ text: `${good} ${FAILURE_MARKER}` })}\n`);
    const after = write('after.jsonl', `${JSON.stringify({ text: good })}\n`);
    const outcome = await cli(['detect', '--key', keyPath, '--json', first, failing, after]);
    expect(outcome.code).toBe(3);
    const report = parsed(outcome);
    expect(report.results).toHaveLength(1);
    expect(report.results[0].source).toBe(`${first}:1`);
    expect(report.summary.documents).toBe(1);
    expect(report.error).toEqual({ code: 'TM_ERR_INTERNAL', message: 'simulated internal failure' });
  });

  it('an internal failure mid-stream (text files, stdin)', async () => {
    const first = write('first.txt', good);
    const failing = write('failing.txt', `${good} ${FAILURE_MARKER}`);
    const outcome = await cli(['detect', '--key', keyPath, '--json', first, failing]);
    expect(outcome.code).toBe(3);
    const report = parsed(outcome);
    expect(report.results.map((r: { source: string }) => r.source)).toEqual([first]);
    expect(report.error.code).toBe('TM_ERR_INTERNAL');
    const piped = await cli(['detect', '--key', keyPath, '--json'], `${good} ${FAILURE_MARKER}`);
    expect(piped.code).toBe(3);
    expect(parsed(piped)).toMatchObject({ results: [], error: { code: 'TM_ERR_INTERNAL' } });
  });

  it('without --json the failure is a plain error on stderr', async () => {
    const failing = write('plain-failing.txt', `${good} ${FAILURE_MARKER}`);
    const outcome = await cli(['detect', '--key', keyPath, failing]);
    expect(outcome.code).toBe(3);
    expect(outcome.stderr).toMatch(/simulated internal failure/);
  });

  it('document errors: each is a result with a stable code, the others are processed', async () => {
    mkdirSync(join(directory, 'tree'), { recursive: true });
    const binary = write('tree/blob.txt', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1]));
    const lines = write(
      'tree/lines.jsonl',
      ['{"text": "fine"}', '{broken', '{"body": 1}', '{"text": [1.5]}'].join('\n'),
    );
    const missing = join(directory, 'missing.txt');
    const outcome = await cli(['detect', '--key', keyPath, '--json', join(directory, 'tree'), missing]);
    expect(outcome.code).toBe(3);
    const report = parsed(outcome);
    const codes = report.results.map((r: { error?: { code: string } }) => r.error?.code ?? 'ok');
    expect(codes).toEqual([
      'TM_ERR_BINARY_INPUT',
      'ok',
      'TM_ERR_INVALID_JSON',
      'TM_ERR_MISSING_FIELD',
      'TM_ERR_MISSING_FIELD',
      'TM_ERR_IO',
    ]);
    expect(report.results[0].source).toBe(binary);
    expect(report.results[1].source).toBe(`${lines}:1`);
    expect(report.summary.errors).toBe(5);
    expect(report.error).toBeUndefined();
  });

  it('invalid token ids in JSONL are a document error', async () => {
    const ids = write('ids.jsonl', `${JSON.stringify({ ids: [1, 2, 4_000_000_000] })}\n`);
    const outcome = await cli(['detect', '--key', keyPath, '--field', 'ids', '--json', ids]);
    expect(outcome.code).toBe(3);
    expect(parsed(outcome).results[0].error.code).toBe('TM_ERR_INVALID_TOKENS');
  });

  it.each([
    ['a missing key file', () => ['--key', join(directory, 'nope.json')], 3, 'TM_ERR_IO'],
    [
      'a corrupt key file',
      () => ['--key', write('corrupt.json', '{"format":"tracemark-key"')],
      3,
      'TM_ERR_KEY_FILE',
    ],
    [
      'keys bound to different tokenizers',
      () => [
        '--key',
        keyPath,
        '--key',
        write(
          'o200k.json',
          serializeKeyFile(
            createWatermarkKey({ secret: new Uint8Array(32).fill(4), tokenizer: 'o200k_base' }),
          ),
        ),
      ],
      2,
      'TM_ERR_TOKENIZER_MISMATCH',
    ],
    ['a bad --fpr', () => ['--key', keyPath, '--fpr', '2'], 2, 'TM_ERR_USAGE'],
    ['a bad --format', () => ['--key', keyPath, '--format', 'xml'], 2, 'TM_ERR_USAGE'],
  ])('%s: one {"error"} object', async (_name, args, code, errorCode) => {
    const outcome = await cli(['detect', ...args(), '--json', '-'], good);
    expect(outcome.code).toBe(code);
    expect(parsed(outcome).error.code).toBe(errorCode);
  });

  it('a key with δ = 0 is not an error', async () => {
    const flat = write(
      'flat.json',
      serializeKeyFile(createWatermarkKey({ secret: new Uint8Array(32).fill(5), scheme: { delta: 0 } })),
    );
    const outcome = await cli(['detect', '--key', flat, '--json', '-'], good);
    expect(outcome.code).toBe(0);
    const result = parsed(outcome).results[0];
    expect(result.verdict).toBe('insufficient');
    expect(result.tokensToSettle).toBeNull();
  });
});

describe('the other commands print one JSON value on failure too', () => {
  it.each([
    ['keygen over an existing file', () => ['keygen', '--out', keyPath, '--json'], 2],
    [
      'keygen with a bad --gamma',
      () => ['keygen', '--out', join(directory, 'g.json'), '--gamma', '2', '--json'],
      2,
    ],
    [
      'generate with a missing key',
      () => ['generate', '--key', join(directory, 'nope.json'), '--prompt', 'x', '--json'],
      3,
    ],
    ['scan with a missing key', () => ['scan', '--key', join(directory, 'nope.json'), '--json', '-'], 3],
    ['verify without a server', () => ['verify', write('verify.txt', good), '--json'], 2],
    [
      'verify against a server that is not there',
      () => [
        'verify',
        write('verify2.txt', good),
        '--server',
        'http://127.0.0.1:9',
        '--timeout',
        '5',
        '--json',
      ],
      3,
    ],
    [
      'evidence verify of a missing report',
      () => ['evidence', 'verify', join(directory, 'nope.report'), '--json'],
      3,
    ],
    [
      'evidence verify of a file that is not a report',
      () => ['evidence', 'verify', write('not-a-report.json', '{}'), '--json'],
      3,
    ],
    [
      'probe with a missing prompts file',
      () => [
        'probe',
        '--endpoint',
        'http://127.0.0.1:9',
        '--model',
        'm',
        '--prompts',
        join(directory, 'nope.txt'),
        '--out',
        join(directory, 'probe.jsonl'),
        '--json',
      ],
      3,
    ],
    [
      'keys revoke of an unknown id',
      () => ['keys', 'revoke', 'nope', '--data-dir', join(directory, 'data'), '--json'],
      2,
    ],
    ['an unknown option', () => ['detect', '--key', keyPath, '--frobnicate', '--json'], 2],
  ])('%s', async (_name, argv, code) => {
    const outcome = await cli(argv(), good, { TRACEMARK_API_KEY: 'tmk_test_not_a_real_key' });
    expect(outcome.code).toBe(code);
    const value = parsed(outcome);
    expect(typeof value.error?.code).toBe('string');
    expect(value.error.code).toMatch(/^TM_ERR_/);
  });

  it('scan with an unreadable input: the report, with the error listed', async () => {
    const outcome = await cli(
      ['scan', '--key', keyPath, '--fake-keys', '0', '--json', join(directory, 'missing-corpus.jsonl')],
      '',
    );
    expect(outcome.code).toBe(3);
    const report = parsed(outcome);
    expect(report.summary.errors).toBe(1);
  });
});
