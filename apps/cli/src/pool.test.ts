import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { measureInputs } from './inputs.ts';
import { BYTES_PER_WORKER, DOCUMENT_COST_BYTES, workersFor } from './pool.ts';

describe('workersFor', () => {
  it.each([
    ['small input: the main thread alone', { bytes: BYTES_PER_WORKER - 301, jobs: 100, documents: 1 }, 8, 0],
    [
      'one core: no worker, whatever the size',
      { bytes: 100 * BYTES_PER_WORKER, jobs: 1000, documents: 1 },
      1,
      0,
    ],
    ['one thread per started 4 MB', { bytes: 2.5 * BYTES_PER_WORKER, jobs: 1000, documents: 1 }, 8, 3],
    [
      'short documents count as more work than their bytes',
      { bytes: BYTES_PER_WORKER / 2, jobs: 8, documents: BYTES_PER_WORKER / DOCUMENT_COST_BYTES },
      8,
      2,
    ],
    ['no more than the cores', { bytes: 100 * BYTES_PER_WORKER, jobs: 1000, documents: 1 }, 2, 2],
    ['no more than the jobs to share', { bytes: 3 * BYTES_PER_WORKER, jobs: 2, documents: 1 }, 8, 2],
    [
      'unknown size (stdin, a directory): every thread allowed',
      { bytes: Infinity, jobs: Infinity, documents: Infinity },
      4,
      4,
    ],
  ])('%s', (_name, input, cores, expected) => {
    expect(workersFor(input, cores)).toBe(expected);
  });
});

describe('measureInputs', () => {
  it('counts bytes and jobs by format; stdin and directories are of unknown size; unreadable files count 0', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'tracemark-pool-'));
    onTestFinished(() => rmSync(directory, { recursive: true, force: true }));
    const jsonl = join(directory, 'a.jsonl');
    const text = join(directory, 'b.txt');
    // 1.2 MB of 64-byte lines (63 characters and a newline): 19,000 documents, estimated from the first 64 KB.
    writeFileSync(jsonl, `${'x'.repeat(63)}\n`.repeat(19_000));
    writeFileSync(text, 'y'.repeat(100));
    const unknown = { bytes: Infinity, jobs: Infinity, documents: Infinity };
    expect(await measureInputs([jsonl, text, join(directory, 'missing.txt')], undefined)).toEqual({
      bytes: 1_216_100,
      jobs: 3 + 1,
      documents: 19_000 + 1,
    });
    expect(await measureInputs([jsonl], 'text')).toEqual({ bytes: 1_216_000, jobs: 1, documents: 1 });
    expect(await measureInputs([jsonl, '-'], undefined)).toEqual(unknown);
    expect(await measureInputs([], undefined)).toEqual(unknown);
    expect(await measureInputs([directory], undefined)).toEqual(unknown);
  });
});
