/** Reading and writing key files (spec §2.5; engines' keys: docs/spec/foreign-*.md, key file §) on disk. */
import { constants } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { KeyFileError, parseKeyFile, serializeKeyFile, type WatermarkKey } from '@tracemark/core';
import { InputError } from './errors.ts';
import { ForeignKeyFileError } from './foreign.ts';
import {
  type ForeignWatermarkKey,
  foreignKeyType,
  foreignKeyTypeForFormat,
  foreignLabel,
  foreignSchemeName,
  isForeignKey,
} from './foreign-registry.ts';
import type { VllmWatermarkKey } from './vllm-keys.ts';

/**
 * A key a key file holds: tracemark's own (no `kind`; `kind: 'tracemark'` is allowed) or a serving
 * engine's (a foreign key: `kind` names its family, `vllm`, `transformers`, …). Narrow with
 * {@link isForeignKey} or a family's guard such as {@link isVllmKey}.
 */
export type AnyWatermarkKey =
  | (WatermarkKey & { readonly kind?: 'tracemark' })
  | VllmWatermarkKey
  | ForeignWatermarkKey;

export function isVllmKey(key: AnyWatermarkKey): key is VllmWatermarkKey {
  return key.kind === 'vllm';
}

/** What a caller of {@link readKeyFile} accepts: `any` for every kind of key. */
export interface ReadKeyFileOptions {
  readonly accept: 'any';
}

/**
 * Parses key file text of any kind. Throws InputError `TM_ERR_KEY_FILE` naming `source` and the
 * field, never the secret.
 */
export function parseAnyKeyFile(text: string, source = 'key file'): AnyWatermarkKey {
  let format: unknown;
  let record: Record<string, unknown> | null = null;
  try {
    const data: unknown = JSON.parse(text);
    if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
      record = data as Record<string, unknown>;
      format = record.format;
    }
  } catch {
    // tracemark's parser words the error
  }
  try {
    const family = record === null ? null : foreignKeyTypeForFormat(format);
    if (family !== null) return family.parse(record!);
    return parseKeyFile(text);
  } catch (error) {
    if (error instanceof KeyFileError || error instanceof ForeignKeyFileError) {
      throw new InputError('TM_ERR_KEY_FILE', `${source}: ${error.message}`);
    }
    throw error;
  }
}

/** The error for an engine's key given where only tracemark keys work. */
export function unsupportedForeignKeyError(source: string, key: ForeignWatermarkKey): InputError {
  return new InputError(
    'TM_ERR_UNSUPPORTED_KEY',
    `${source}: this command does not support ${foreignLabel(key)} keys yet (key ${key.keyId}, ${foreignSchemeName(key)})`,
  );
}

/** @deprecated the same as {@link unsupportedForeignKeyError}. */
export const unsupportedVllmKeyError: (source: string, key: VllmWatermarkKey) => InputError =
  unsupportedForeignKeyError;

/**
 * Reads and validates a key file; errors name the file, never the secret. Without options only a
 * tracemark key is accepted: a vLLM key file gives InputError `TM_ERR_UNSUPPORTED_KEY` ("this command
 * does not support vLLM keys yet", naming the engine). With `{ accept: 'any' }` every kind is returned.
 */
export function readKeyFile(path: string): Promise<WatermarkKey>;
export function readKeyFile(path: string, options: ReadKeyFileOptions): Promise<AnyWatermarkKey>;
export async function readKeyFile(path: string, options?: ReadKeyFileOptions): Promise<AnyWatermarkKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError('TM_ERR_IO', `${path}: cannot read key file (${code ?? 'error'})`);
  }
  const key = parseAnyKeyFile(text, path);
  if (options?.accept !== 'any' && isForeignKey(key)) throw unsupportedForeignKeyError(path, key);
  return key;
}

/**
 * Writes a key file of any kind with mode 0600. Refuses to replace an existing file unless
 * `overwrite` is set, so a key that protects issued text is never lost by accident; the write is
 * atomic either way.
 */
export async function writeKeyFile(path: string, key: AnyWatermarkKey, overwrite = false): Promise<void> {
  const text = isForeignKey(key) ? foreignKeyType(key).serialize(key) : serializeKeyFile(key);
  const temporary = `${path}.${process.pid}.tmp`;
  const handle = await open(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
    0o600,
  ).catch((error: NodeJS.ErrnoException) => {
    throw new InputError('TM_ERR_IO', `${path}: cannot write key file (${error.code ?? 'error'})`);
  });
  try {
    await handle.writeFile(text);
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
