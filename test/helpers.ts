/** Shared helpers for end-to-end tests: spawn the built CLI, temp dirs, a shared model cache. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';

export const repositoryRoot: string = new URL('..', import.meta.url).pathname;
export const cliPath: string = join(repositoryRoot, 'apps/cli/dist/bin.js');
/** One model cache for every test process, so the embedded model is trained once. */
export const cacheDir: string = process.env.TRACEMARK_CACHE_DIR ?? join(tmpdir(), 'tracemark-test-cache');

const temporaryDirectories: string[] = [];

/**
 * A new folder under the system's temporary folder. A test file that makes any calls
 * `afterAll(removeTemporaryDirectories)`: vitest ends its workers without an 'exit' event.
 */
export function temporaryDirectory(prefix = 'tracemark-e2e-'): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirectories.push(directory);
  return directory;
}

/**
 * Writes a watermark key file (0600) whose secret is 32 bytes of `fill`, and returns its path: judging text
 * "not watermarked" under a fresh random key fails whenever that key's false positive comes up.
 */
export function writeFixedKeyFile(path: string, fill: number): string {
  writeFileSync(path, serializeKeyFile(createWatermarkKey({ secret: new Uint8Array(32).fill(fill) })), {
    mode: 0o600,
  });
  return path;
}

/** Removes, with their contents, the folders temporaryDirectory made in this test file. */
export function removeTemporaryDirectories(): void {
  for (const directory of temporaryDirectories.splice(0)) rmSync(directory, { recursive: true, force: true });
}

export interface SpawnResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `tracemark ARGS` as a real process. */
export function tracemark(
  args: readonly string[],
  options: { input?: string; cwd?: string } = {},
): Promise<SpawnResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: options.cwd ?? repositoryRoot,
      env: { ...process.env, TRACEMARK_CACHE_DIR: cacheDir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Runs `tracemark ARGS` in this process (no spawn): stdin is `input`, nothing is a terminal. */
export async function runCli(
  argv: readonly string[],
  input = '',
  env: NodeJS.ProcessEnv = {},
): Promise<SpawnResult> {
  // Loaded on first use: most test files spawn the built CLI and need none of it.
  const { run } = await import('@tracemark/cli');
  let stdout = '';
  let stderr = '';
  const code = await run([...argv], {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    stdin: Readable.from([Buffer.from(input)]),
    stdoutIsTTY: false,
    stderrIsTTY: false,
    env,
  });
  return { code, stdout, stderr };
}
