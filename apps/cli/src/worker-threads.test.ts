import { spawnSync } from 'node:child_process';
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

describe('compileWorkersInline', () => {
  // The compiled module (pnpm build), in a process of its own that traces V8's optimizing compiles.
  const compiled = new URL('../dist/worker-threads.js', import.meta.url).href;
  const compileModes = (inline: boolean): string[] => {
    const script = `import { Worker } from 'node:worker_threads';
      import { compileWorkersInline } from ${JSON.stringify(compiled)};
      if (${inline}) compileWorkersInline();
      new Worker('function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 7) % 13; return s; }' +
        'let t = 0; for (let k = 0; k < 3000; k++) t += hot(1000);', { eval: true });`;
    const run = spawnSync(process.execPath, ['--trace-opt', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    return [...run.stdout.matchAll(/compiling method .*<JSFunction hot .*mode: ConcurrencyMode::(\w+)/g)].map(
      (match) => match[1]!,
    );
  };

  it('makes workers started afterwards optimize on their own thread, with no background compile job left at their end', () => {
    const inline = compileModes(true);
    expect(inline.length).toBeGreaterThan(0);
    expect(new Set(inline)).toEqual(new Set(['kSynchronous']));
    // Without it, the same worker compiles in the background (what the function is for).
    expect(compileModes(false)).toContain('kConcurrent');
  });
});
