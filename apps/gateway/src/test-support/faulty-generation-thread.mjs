// A generation thread for the fault tests (generation-threads.test.ts): the real one (generation-thread.ts,
// from sources), except that it exits 50 ms after it is asked for a choice of exactly CRASH_TOKENS tokens,
// and fails to start while the file named by TRACEMARK_TEST_FAIL_START exists.
import { existsSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

const CRASH_TOKENS = 4077;

const failStart = process.env.TRACEMARK_TEST_FAIL_START;
if (failStart !== undefined && existsSync(failStart)) {
  throw new Error('this generation thread was told to fail at start');
}
parentPort.on('message', (message) => {
  if (message.type === 'generate' && message.maxTokens === CRASH_TOKENS)
    setTimeout(() => process.exit(1), 50);
});
register();
await import('../backends/generation-thread.ts');
