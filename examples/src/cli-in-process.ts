/**
 * The `tracemark` command called from a program: `run(argv, io)` runs one command in this process and
 * returns its exit code (only the `tracemark` binary sets the process's), and `--json` makes its output
 * one JSON value. Here: keygen, a watermarked and a plain generation, then detect with
 * `--fail-on-detect`, whose exit code 1 says a watermark was found.
 * Run: pnpm --filter @tracemark/examples run cli-in-process
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '@tracemark/cli';

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `tracemark ARGV…` in-process, with stdout and stderr captured instead of printed. */
async function tracemark(...argv: string[]): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: Readable.from([]),
    stdoutIsTTY: false, // no colour, no progress redrawn in place
    stderrIsTTY: false,
    env: process.env,
  });
  return { code, stdout, stderr };
}

const directory = await mkdtemp(join(tmpdir(), 'tracemark-cli-example-'));
try {
  const keyPath = join(directory, 'key.json');
  const keygen = await tracemark('keygen', '--out', keyPath, '--json'); // the secret is never printed
  console.log(`keygen: exit ${keygen.code}, key id ${JSON.parse(keygen.stdout).keyId}`);

  const prompt = 'The committee said on Tuesday that';
  for (const [name, flags] of [
    ['marked', ['--key', keyPath]],
    ['plain', ['--no-watermark']],
  ] as const) {
    const generated = await tracemark('generate', ...flags, '--prompt', prompt, '--seed', '1', '--json');
    await writeFile(join(directory, `${name}.txt`), JSON.parse(generated.stdout).text);
  }

  const detected = await tracemark(
    'detect',
    '--key',
    keyPath,
    join(directory, 'marked.txt'),
    join(directory, 'plain.txt'),
    '--json',
    '--fail-on-detect', // exit 1 when a document is watermarked
  );
  const { results } = JSON.parse(detected.stdout) as {
    results: { source: string; verdict: string; log10PAdjusted: number }[];
  };
  for (const result of results) {
    const name = result.source.slice(directory.length + 1);
    console.log(`${name}: ${result.verdict} (log10 p = ${result.log10PAdjusted.toFixed(1)})`);
  }
  console.log(`detect --fail-on-detect: exit ${detected.code}`);

  const usage = await tracemark('detect', '--json'); // no --key: a usage error, as JSON
  console.log(`detect without --key: exit ${usage.code}, ${JSON.parse(usage.stdout).error.code}`);
} finally {
  await rm(directory, { recursive: true, force: true });
}
