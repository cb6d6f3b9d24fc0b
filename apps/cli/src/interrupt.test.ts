/**
 * Ctrl-C (SIGINT) or SIGTERM during a run: detect ends its output as one valid JSON value with the results
 * so far and a TM_ERR_INTERRUPTED error, scan prints that error alone; both exit 130.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture } from './capture.test-helper.ts';
import { run } from './cli.ts';
import { feedStdin, type Spawned, spawnCli } from './spawn.test-helper.ts';

const directory = mkdtempSync(join(tmpdir(), 'tracemark-interrupt-'));
const key = join(directory, 'key.json');
const corpus = join(directory, 'big.jsonl');
const spawned: Spawned[] = [];

/** JSONL of `count` short documents. */
function lines(count: number, from = 0): string {
  let text = '';
  for (let i = from; i < from + count; i++)
    text += `${JSON.stringify({ text: `The committee said on Tuesday that the weather was fine, number ${i}.` })}\n`;
  return text;
}

beforeAll(async () => {
  expect(await run(['keygen', '--out', key, '--json'], capture().io)).toBe(0);
  // About 20 MB: seconds of work, far more than is read before the signal.
  writeFileSync(corpus, lines(200_000));
});
afterAll(() => {
  for (const { child } of spawned) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(directory, { recursive: true, force: true });
});

function start(args: readonly string[]): Spawned {
  const process = spawnCli(args);
  spawned.push(process);
  return process;
}

describe('an interrupted run ends its output and exits 130', () => {
  it('detect --json on a file: SIGINT leaves one JSON value, the results so far and an error', async () => {
    const detect = start(['detect', '--key', key, corpus, '--json']);
    await detect.firstOutput;
    detect.child.kill('SIGINT');
    expect(await detect.exited).toBe(130);
    expect(detect.stderr()).toBe('');
    const report = JSON.parse(detect.stdout());
    expect(report.error.code).toBe('TM_ERR_INTERRUPTED');
    expect(report.error.message).toBe(
      `interrupted by SIGINT after ${report.summary.documents} documents: the output covers those only`,
    );
    expect(report.summary.documents).toBeGreaterThan(0);
    expect(report.summary.documents).toBeLessThan(200_000);
    expect(report.results).toHaveLength(report.summary.documents);
  });

  it('detect without --json: SIGTERM prints the verdicts so far and one line on stderr', async () => {
    const detect = start(['detect', '--key', key, corpus]);
    await detect.firstOutput;
    detect.child.kill('SIGTERM');
    expect(await detect.exited).toBe(130);
    const verdicts = detect.stdout().trimEnd().split('\n');
    expect(verdicts.every((line) => line.startsWith(`${corpus}:`))).toBe(true);
    expect(detect.stderr()).toBe(
      `error: interrupted by SIGTERM after ${verdicts.length} documents: the output covers those only\n`,
    );
  });

  it('detect --json on stdin that stays open: the wait for input ends too', async () => {
    const detect = start(['detect', '--key', key, '--format', 'jsonl', '--json']);
    await feedStdin(detect, Buffer.from(lines(5000)));
    detect.child.kill('SIGINT');
    expect(await detect.exited).toBe(130);
    const report = JSON.parse(detect.stdout());
    expect(report.error.code).toBe('TM_ERR_INTERRUPTED');
    expect(report.results).toHaveLength(report.summary.documents);
  });

  it('scan --json: the error alone (a verdict needs the whole corpus)', async () => {
    const scan = start(['scan', '--key', key, '--format', 'jsonl', '--json']);
    await feedStdin(scan, Buffer.from(lines(5000)));
    scan.child.kill('SIGINT');
    expect(await scan.exited).toBe(130);
    expect(scan.stderr()).toBe('');
    const { error, ...rest } = JSON.parse(scan.stdout());
    expect(rest).toEqual({});
    expect(error.code).toBe('TM_ERR_INTERRUPTED');
    expect(error.message).toMatch(/^interrupted by SIGINT after \d+ documents: no report/);
  });

  it('scan without --json: one line on stderr, no report', async () => {
    const scan = start(['scan', '--key', key, '--format', 'jsonl']);
    await feedStdin(scan, Buffer.from(lines(5000)));
    scan.child.kill('SIGTERM');
    expect(await scan.exited).toBe(130);
    expect(scan.stdout()).toBe('');
    expect(scan.stderr()).toMatch(
      /^error: interrupted by SIGTERM after \d+ documents: no report \(a scan needs the whole corpus\)\n$/,
    );
  });
});
