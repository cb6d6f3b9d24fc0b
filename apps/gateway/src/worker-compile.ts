/**
 * Worker threads that cannot take the gateway down when they end. Node 20 unregisters a worker's
 * isolate from its platform before disposing of it; an optimizing compile of that isolate still running
 * on one of V8's background threads then asks the platform for the isolate's task runner and aborts the
 * whole process (`Assertion failed: (data.first) != nullptr` in `NodePlatform::ForIsolate`). The
 * gateway ends threads while it runs: the work pool terminates a thread whose task passed its budget (a
 * hostile input), and the generation and SQLite threads end at shutdown. (`tracemark scan` met the
 * abort once in about 60 runs; apps/cli/src/worker-threads.ts does the same for its threads.)
 */
import v8 from 'node:v8';

/**
 * Makes the worker threads started from now on optimize their code on their own thread instead of on
 * V8's background threads (the main thread, whose isolate exists already, keeps compiling in the
 * background): no compile job can outlive its worker. Call before creating a Worker.
 */
export function compileWorkersInline(): void {
  v8.setFlagsFromString('--no-concurrent-recompilation');
}
