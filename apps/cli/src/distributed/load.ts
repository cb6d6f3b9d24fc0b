/**
 * Distributed scans need BullMQ and ioredis, optional peer dependencies of the CLI (installed beside it),
 * so that `tracemark detect` and the single-machine scan install without a Redis client.
 */
import { CliError, EXIT } from '../io.ts';

const QUEUE_PACKAGES = ['bullmq', 'ioredis'];

/** Imports a module of the distributed scan; a missing queue package is a clear error naming it. */
export async function loadDistributed<T>(command: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = (error as Error).message ?? '';
    const missing = QUEUE_PACKAGES.find((name) => message.includes(`'${name}'`));
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && missing !== undefined) {
      throw new CliError(
        'TM_ERR_DEPENDENCY_MISSING',
        `${command} needs the package ${missing}, which is not installed: install bullmq and ioredis beside the CLI (npm install --global bullmq ioredis)`,
        EXIT.io,
      );
    }
    throw error;
  }
}
