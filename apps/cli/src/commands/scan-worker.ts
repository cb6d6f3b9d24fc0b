/**
 * `tracemark scan-worker REDIS_URL --key FILE`: a worker of distributed scans (`tracemark scan
 * --distributed REDIS_URL`). It takes jobs of any run from the BullMQ queue until stopped (SIGINT or
 * SIGTERM finish the job at hand); start one per core, on as many machines as there are. The keys
 * stay with the worker: a run names its keys by id only. Exit codes: 0 stopped; 2 usage; 3 I/O.
 */
import type { WatermarkKey } from '@tracemark/core';
import { InputError, isForeignKey, readKeyFile } from '@tracemark/detection';
import { isGumbelKey } from '@tracemark/extraction';
import type { Command } from 'commander';
import { loadDistributed } from '../distributed/load.ts';
import { redactRedisUrl } from '../distributed/protocol.ts';
import type { startScanWorker } from '../distributed/worker.ts';
import { CliError, type CliIo, EXIT } from '../io.ts';
import { collect, parseNumber } from '../options.ts';

interface ScanWorkerCommandOptions {
  key: string[];
  concurrency: number;
  lockDuration: number;
  quiet?: boolean;
}

export function registerScanWorker(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('scan-worker')
    .description('work on distributed scans (`tracemark scan --distributed REDIS_URL`) until stopped')
    .argument('<redis-url>', 'the Redis server the scans queue their jobs on (redis://host:port)')
    .requiredOption(
      '--key <file>',
      'key file of the scans to serve (green-list keys); repeat for several',
      collect,
    )
    .option(
      '--concurrency <n>',
      'jobs at once (a job uses one core)',
      parseNumber('--concurrency', 1, 64, true),
      1,
    )
    .option(
      '--lock-duration <ms>',
      'a worker silent this long is presumed dead and its job given to another (jobs must yield sooner)',
      parseNumber('--lock-duration', 1000, 3_600_000, true),
      60_000,
    )
    .option('--quiet', 'no line per job on stderr')
    .action(async (redisUrl: string, options: ScanWorkerCommandOptions) => {
      if (!/^rediss?:\/\//.test(redisUrl)) {
        throw new CliError('TM_ERR_USAGE', 'redis-url: expected redis://host:port or rediss://…', EXIT.usage);
      }
      const keys: WatermarkKey[] = [];
      for (const path of options.key) {
        try {
          const key = await readKeyFile(path, { accept: 'any' });
          if (isForeignKey(key) || isGumbelKey(key as WatermarkKey)) {
            throw new CliError(
              'TM_ERR_UNSUPPORTED_KEY',
              `${path}: distributed scans take tracemark green-list keys (key ${key.keyId})`,
              EXIT.usage,
            );
          }
          keys.push(key as WatermarkKey);
        } catch (error) {
          if (error instanceof InputError) throw new CliError(error.code, error.message, EXIT.io);
          throw error;
        }
      }
      const log = (line: string) => {
        if (options.quiet !== true) io.stderr.write(`${line}\n`);
      };
      let worker: Awaited<ReturnType<typeof startScanWorker>>;
      try {
        const { startScanWorker } = await loadDistributed(
          'tracemark scan-worker',
          () => import('../distributed/worker.ts'),
        );
        worker = await startScanWorker({
          redisUrl,
          keys,
          concurrency: options.concurrency,
          lockDuration: options.lockDuration,
          log,
        });
      } catch (error) {
        throw new CliError(
          'TM_ERR_REDIS',
          `cannot reach ${redactRedisUrl(redisUrl)} (${(error as Error).message})`,
          EXIT.io,
        );
      }
      log(
        `scan worker ${worker.id} ready on ${redactRedisUrl(redisUrl)} (keys ${keys.map((key) => key.keyId).join(', ')})`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await worker.close();
      log(`scan worker ${worker.id} stopped`);
      setExit(EXIT.ok);
    });
}
