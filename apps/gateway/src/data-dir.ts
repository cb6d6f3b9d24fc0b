/**
 * The data directory (mode 0700): the server secret that keys API-key hashes, the gateway's own watermark
 * key, the issuance log's signing key, the development API key, and the SQLite database. Every secret file
 * is written 0600, atomically.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createWatermarkKey, type WatermarkKey } from '@tracemark/core';
import { InputError, readKeyFile, writeKeyFile } from '@tracemark/detection';
import { formatSignerKey, generateSigningKey, parseSignerKey, type SigningKey } from '@tracemark/provenance';
import { SERVER_SECRET_BYTES } from './api-keys.ts';

export const SERVER_SECRET_FILE = 'server-secret';
export const WATERMARK_KEY_FILE = 'watermark-key.json';
export const DEV_API_KEY_FILE = 'dev-api-key';
export const LOG_SIGNING_KEY_FILE = 'log-signing-key';

/** Creates the directory (0700) if needed. */
export async function ensureDataDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    // mkdir says EEXIST of a file where the directory should be, ENOTDIR of a file on the way to it
    if (error.code === 'EEXIST' || error.code === 'ENOTDIR') {
      throw new InputError('TM_ERR_IO', `${dir}: not a directory (a file is there or on the way to it)`);
    }
    throw new InputError('TM_ERR_IO', `${dir}: cannot create the data directory (${error.code ?? 'error'})`);
  });
  const info = await stat(dir);
  if (!info.isDirectory()) throw new InputError('TM_ERR_IO', `${dir}: not a directory`);
}

/** Writes `content` to `path` with mode 0600; refuses to replace an existing file. */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    const existing = await open(path, constants.O_RDONLY).catch(() => null);
    if (existing !== null) {
      await existing.close();
      throw new InputError('TM_ERR_KEY_EXISTS', `${path}: already exists`);
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/** The 32-byte secret under which API keys are hashed; created on first use. */
export async function loadOrCreateServerSecret(
  dir: string,
): Promise<{ secret: Uint8Array; created: boolean }> {
  const path = join(dir, SERVER_SECRET_FILE);
  const existing = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new InputError('TM_ERR_IO', `${path}: cannot read the server secret (${error.code ?? 'error'})`);
  });
  if (existing !== null) {
    const hex = existing.trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) {
      throw new InputError('TM_ERR_KEY_FILE', `${path}: expected 64 lowercase hexadecimal characters`);
    }
    await chmod(path, 0o600).catch(() => undefined);
    return { secret: Uint8Array.from(Buffer.from(hex, 'hex')), created: false };
  }
  const secret = randomBytes(SERVER_SECRET_BYTES);
  try {
    await writeSecretFile(path, `${secret.toString('hex')}\n`);
  } catch (error) {
    // Another process created it first: use theirs.
    if (error instanceof InputError && error.code === 'TM_ERR_KEY_EXISTS')
      return loadOrCreateServerSecret(dir);
    throw error;
  }
  return { secret: Uint8Array.from(secret), created: true };
}

export interface LoadedWatermarkKey {
  readonly key: WatermarkKey;
  readonly path: string;
  readonly created: boolean;
}

/** The key from `keyFile`, else the gateway's own under the data directory (created on first start). */
export async function loadOrCreateWatermarkKey(
  dir: string,
  keyFile: string | null,
): Promise<LoadedWatermarkKey> {
  if (keyFile !== null) return { key: await readKeyFile(keyFile), path: keyFile, created: false };
  const path = join(dir, WATERMARK_KEY_FILE);
  try {
    return { key: await readKeyFile(path), path, created: false };
  } catch (error) {
    if (!(error instanceof InputError && error.code === 'TM_ERR_IO' && /ENOENT/.test(error.message)))
      throw error;
  }
  const key = createWatermarkKey();
  try {
    await writeKeyFile(path, key);
  } catch (error) {
    if (error instanceof InputError && error.code === 'TM_ERR_KEY_EXISTS') {
      return { key: await readKeyFile(path), path, created: false };
    }
    throw error;
  }
  return { key, path, created: true };
}

export interface LoadedSigningKey {
  readonly key: SigningKey;
  readonly path: string;
  readonly created: boolean;
}

/**
 * The Ed25519 key that signs the issuance log's checkpoints and the evidence reports, as a signed-note
 * signer key string (`PRIVATE+KEY+<origin>+<hash>+<base64>`); created on first start with `origin` as its
 * name (default `tracemark-gateway/<random hex>`).
 */
export async function loadOrCreateLogSigningKey(
  dir: string,
  origin: string | null,
): Promise<LoadedSigningKey> {
  const path = join(dir, LOG_SIGNING_KEY_FILE);
  const existing = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw new InputError('TM_ERR_IO', `${path}: cannot read the log signing key (${error.code ?? 'error'})`);
  });
  if (existing !== null) {
    let key: SigningKey;
    try {
      key = parseSignerKey(existing.trim());
    } catch (error) {
      throw new InputError('TM_ERR_KEY_FILE', `${path}: ${(error as Error).message}`);
    }
    await chmod(path, 0o600).catch(() => undefined);
    return { key, path, created: false };
  }
  const key = generateSigningKey(origin ?? `tracemark-gateway/${randomBytes(8).toString('hex')}`);
  try {
    await writeSecretFile(path, `${formatSignerKey(key)}\n`);
  } catch (error) {
    // Another process created it first: use theirs.
    if (error instanceof InputError && error.code === 'TM_ERR_KEY_EXISTS')
      return loadOrCreateLogSigningKey(dir, origin);
    throw error;
  }
  return { key, path, created: true };
}
