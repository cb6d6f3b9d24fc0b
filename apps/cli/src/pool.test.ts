import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { measureInputs } from './inputs.ts';
import { BYTES_PER_WORKER, workersFor } from './pool.ts';

describe('workersFor', () => {
  it.each([
    ['small input: the main thread alone', { bytes: BYTES_PER_WORKER - 1, jobs: 100 }, 8, 0],
    ['one core: no worker, whatever the size', { bytes: 100 * BYTES_PER_WORKER, jobs: 1000 }, 1, 0],
    ['one worker per started 4 MB', { bytes: 2.5 * BYTES_PER_WORKER, jobs: 1000 }, 8, 3],
    ['no more than the cores', { bytes: 100 * BYTES_PER_WORKER, jobs: 1000 }, 2, 2],
    ['no more than the jobs to share', { bytes: 3 * BYTES_PER_WORKER, jobs: 2 }, 8, 2],
    ['unknown size (stdin, a directory): every core', { bytes: Infinity, jobs: Infinity }, 4, 4],
  ])('%s', (_name, input, cores, expected) => {
    expect(workersFor(input, cores)).toBe(expected);
  });
});

describe('measureInputs', () => {
  it('counts bytes and jobs by format; stdin and directories are of unknown size; unreadable files count 0', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'tracemark-pool-'));
    const jsonl = join(directory, 'a.jsonl');
    const text = join(directory, 'b.txt');
    writeFileSync(jsonl, 'x'.repeat(1_200_000));
    writeFileSync(text, 'y'.repeat(100));
    expect(await measureInputs([jsonl, text, join(directory, 'missing.txt')], undefined)).toEqual({
      bytes: 1_200_100,
      jobs: 3 + 1,
    });
    expect(await measureInputs([jsonl], 'text')).toEqual({ bytes: 1_200_000, jobs: 1 });
    expect(await measureInputs([jsonl, '-'], undefined)).toEqual({ bytes: Infinity, jobs: Infinity });
    expect(await measureInputs([], undefined)).toEqual({ bytes: Infinity, jobs: Infinity });
    expect(await measureInputs([directory], undefined)).toEqual({ bytes: Infinity, jobs: Infinity });
  });
});
