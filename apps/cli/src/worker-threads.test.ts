import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startWorkerThreads, WORKER_PREFETCH } from './worker-threads.ts';

// Workers speaking serveJobs' protocol, as plain scripts (the tests run from sources, with no compiled worker).
const directory = mkdtempSync(join(tmpdir(), 'tracemark-threads-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
function workerScript(name: string, body: string): URL {
  const path = join(directory, `${name}.mjs`);
  writeFileSync(path, `import { parentPort, workerData } from 'node:worker_threads';\n${body}\n`);
  return pathToFileURL(path);
}

/** Answers each job { n, ms } with { n, by: 'worker' } after busy-waiting ms; says it is ready after `startMs`. */
const busyWorker = workerScript(
  'busy',
  `const spin = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
   spin(workerData.startMs);
   let held = 0, most = 0;
   parentPort.on('message', ({ id, job }) => {
     held++; most = Math.max(most, held);
     setTimeout(() => {
       spin(job.ms);
       held--;
       if (job.n === -1) parentPort.postMessage({ id, failure: 'job -1 fails' });
       else parentPort.postMessage({ id, result: { n: job.n, by: 'worker', most } });
     }, 0);
   });
   parentPort.postMessage({ ready: true });`,
);
const neverReady = workerScript('never-ready', `setInterval(() => {}, 1000);`);
const crashing = workerScript(
  'crashing',
  `parentPort.postMessage({ ready: true }); throw new Error('engine failed to load');`,
);

interface Job {
  readonly n: number;
  readonly ms: number;
}
interface Result {
  readonly n: number;
  readonly by: string;
  readonly most?: number;
}
const spin = (ms: number): void => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};

/** The `local` option: the job run on this thread. */
const runHere = (job: Job): Result => {
  spin(job.ms);
  return { n: job.n, by: 'local' };
};

describe('startWorkerThreads', () => {
  it('this thread and the workers share one queue: every job answered once, by one of them, in any order', async () => {
    const threads = startWorkerThreads<Job, Result>(busyWorker, { startMs: 0 }, 2, { local: runHere });
    const results = await Promise.all(Array.from({ length: 40 }, (_, n) => threads.submit({ n, ms: 5 })));
    await threads.close();
    expect(results.map((result) => result.n)).toEqual(Array.from({ length: 40 }, (_, n) => n));
    const byWorker = results.filter((result) => result.by === 'worker');
    expect(byWorker.length).toBeGreaterThan(0);
    expect(results.length - byWorker.length).toBeGreaterThan(0);
    // a worker never holds more than its prefetch
    expect(Math.max(...byWorker.map((result) => result.most ?? 0))).toBeLessThanOrEqual(WORKER_PREFETCH);
  });

  it('this thread scores while a worker starts: jobs submitted before it is ready run here', async () => {
    const threads = startWorkerThreads<Job, Result>(busyWorker, { startMs: 400 }, 1, { local: runHere });
    const first = await Promise.all(Array.from({ length: 5 }, (_, n) => threads.submit({ n, ms: 2 })));
    expect(first.every((result) => result.by === 'local')).toBe(true);
    await threads.close();
  });

  it('a worker that never starts leaves every job to this thread; without this thread, jobs wait for it', async () => {
    const threads = startWorkerThreads<Job, Result>(neverReady, null, 2, {
      local: (job) => ({ n: job.n, by: 'local' }),
    });
    const results = await Promise.all(Array.from({ length: 10 }, (_, n) => threads.submit({ n, ms: 0 })));
    expect(results.every((result) => result.by === 'local')).toBe(true);
    await threads.close();
  });

  it("a job's failure in a worker rejects that job only; a crashed worker fails the jobs it had and those after", async () => {
    const threads = startWorkerThreads<Job, Result>(busyWorker, { startMs: 0 }, 1);
    await expect(threads.submit({ n: -1, ms: 0 })).rejects.toThrow('job -1 fails');
    expect((await threads.submit({ n: 3, ms: 0 })).n).toBe(3);
    await threads.close();

    const broken = startWorkerThreads<Job, Result>(crashing, null, 1);
    await expect(broken.submit({ n: 1, ms: 0 })).rejects.toThrow('engine failed to load');
    await expect(broken.submit({ n: 2, ms: 0 })).rejects.toThrow('engine failed to load');
    await broken.close();
  });

  it('a job this thread fails on is rejected, and the queue goes on', async () => {
    const threads = startWorkerThreads<Job, Result>(neverReady, null, 1, {
      local: (job) => {
        if (job.n === 0) throw new RangeError('bad job');
        return { n: job.n, by: 'local' };
      },
    });
    const outcomes = await Promise.allSettled([0, 1, 2].map((n) => threads.submit({ n, ms: 0 })));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    await threads.close();
  });
});
