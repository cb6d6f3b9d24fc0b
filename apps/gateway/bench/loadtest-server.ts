/**
 * The gateway for the load test, in its own process: prints {"url","key","pid"} once listening, exits on
 * SIGTERM. SQLite under a temporary directory, or PostgreSQL (a fresh schema, dropped at exit) when
 * LOADTEST_DATABASE_URL is set.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, loggerOptions } from '../src/app.ts';
import { prepareGateway } from '../src/bootstrap.ts';
import { resolveConfig } from '../src/config.ts';
import { temporaryDirectory } from '../src/test-support/harness.ts';
import { freshPostgresSchema } from '../src/test-support/services.ts';

process.env.TRACEMARK_CACHE_DIR ||= join(tmpdir(), 'tracemark-test-cache');
const dataDir = temporaryDirectory('tracemark-loadtest-');
const databaseUrl = process.env.LOADTEST_DATABASE_URL;
const schema = databaseUrl === undefined ? null : await freshPostgresSchema(databaseUrl);
const config = resolveConfig(
  {
    dataDir,
    port: 0,
    rateLimitPerMinute: 10_000_000,
    dailyTokenQuota: Number.MAX_SAFE_INTEGER,
    logLevel: 'warn',
    // LOADTEST_MONITOR=0: without extraction monitoring (its overhead is the difference).
    monitor: process.env.LOADTEST_MONITOR !== '0',
    // LOADTEST_GENERATION_THREADS=0: the embedded model on the event loop's thread (default: the gateway's, 1).
    ...(process.env.LOADTEST_GENERATION_THREADS
      ? { generationThreads: Number(process.env.LOADTEST_GENERATION_THREADS) }
      : {}),
    ...(schema === null ? {} : { databaseUrl: schema.url }),
  },
  {},
);
const prepared = await prepareGateway(config);
const app = await buildApp(prepared.services, { logger: loggerOptions('warn') });
await app.listen({ port: 0, host: '127.0.0.1' });
const { port } = app.server.address() as { port: number };
process.stdout.write(
  `${JSON.stringify({ url: `http://127.0.0.1:${port}`, key: prepared.firstStart.devApiKey, pid: process.pid, generationThreads: config.generationThreads })}\n`,
);
process.once('SIGTERM', async () => {
  await app.close();
  await prepared.close();
  await schema?.drop();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
});
