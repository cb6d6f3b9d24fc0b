import { describe, expect, it } from 'vitest';
import { CliError } from '../io.ts';
import { loadDistributed } from './load.ts';

describe('loadDistributed', () => {
  it('names the missing queue package with an install hint (exit 3)', async () => {
    const missing = Object.assign(new Error("Cannot find package 'bullmq' imported from x.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    const error = await loadDistributed('tracemark scan-worker', () => Promise.reject(missing)).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ code: 'TM_ERR_DEPENDENCY_MISSING', exitCode: 3 });
    expect(error.message).toBe(
      'tracemark scan-worker needs the package bullmq, which is not installed: install bullmq and ioredis beside the CLI (npm install --global bullmq ioredis)',
    );
  });

  it('passes other errors and the module through', async () => {
    const other = new Error('boom');
    await expect(loadDistributed('x', () => Promise.reject(other))).rejects.toBe(other);
    await expect(loadDistributed('x', async () => 42)).resolves.toBe(42);
  });
});
