import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from '../capture.test-helper.ts';
import { run } from '../cli.ts';
import { type Spawned, spawnCli } from '../spawn.test-helper.ts';

const directory = mkdtempSync(join(tmpdir(), 'tracemark-scan-worker-'));
const spawned: Spawned[] = [];
afterAll(() => {
  for (const { child } of spawned) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(directory, { recursive: true, force: true });
});

describe('scan-worker', () => {
  it('exits 3 when Redis cannot be reached, as scan --distributed does, instead of retrying forever', async () => {
    const key = join(directory, 'key.json');
    expect(await run(['keygen', '--out', key, '--json'], capture().io)).toBe(0);
    // Port 1: nothing listens there, so the connection is refused at once.
    const worker = spawnCli(['scan-worker', 'redis://127.0.0.1:1', '--key', key]);
    spawned.push(worker);
    const timeout = new Promise<'still running'>((resolve) =>
      setTimeout(() => resolve('still running'), 30_000).unref(),
    );
    expect(await Promise.race([worker.exited, timeout])).toBe(3);
    expect(worker.stderr()).toBe('error: cannot reach redis://127.0.0.1:1 (Connection is closed.)\n');
  });
});
