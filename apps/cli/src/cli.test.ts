import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
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
