/** Reading and writing key files (spec §2.5) on disk. */
import { constants } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { KeyFileError, parseKeyFile, serializeKeyFile, type WatermarkKey } from '@tracemark/core';
import { InputError } from './errors.ts';

/** Reads and validates a key file; errors name the file, never the secret. */
export async function readKeyFile(path: string): Promise<WatermarkKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError('TM_ERR_IO', `${path}: cannot read key file (${code ?? 'error'})`);
  }
  try {
    return parseKeyFile(text);
  } catch (error) {
    if (error instanceof KeyFileError) throw new InputError('TM_ERR_KEY_FILE', `${path}: ${error.message}`);
    throw error;
  }
}

/**
 * Writes a key file with mode 0600. Refuses to replace an existing file unless `overwrite` is set,
 * so a key that protects issued text is never lost by accident; the write is atomic either way.
 */
export async function writeKeyFile(path: string, key: WatermarkKey, overwrite = false): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  const handle = await open(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
    0o600,
  ).catch((error: NodeJS.ErrnoException) => {
    throw new InputError('TM_ERR_IO', `${path}: cannot write key file (${error.code ?? 'error'})`);
  });
  try {
    await handle.writeFile(serializeKeyFile(key));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (!overwrite) {
      const existing = await open(path, constants.O_RDONLY).catch(() => null);
      if (existing !== null) {
        await existing.close();
        throw new InputError('TM_ERR_KEY_EXISTS', `${path}: a file exists there; pass --force to replace it`);
      }
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    if (error instanceof InputError) throw error;
    throw new InputError(
      'TM_ERR_IO',
      `${path}: cannot write key file (${(error as NodeJS.ErrnoException).code})`,
    );
  }
}
