/** Test harness: a real gateway on 127.0.0.1:0 with its own data directory, and helpers to call it. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createWatermarkKey, serializeKeyFile } from '@tracemark/core';
import type { FastifyInstance } from 'fastify';
import { buildApp, type GatewayServices, loggerOptions } from '../app.ts';
import { type PreparedGateway, prepareGateway } from '../bootstrap.ts';
import { type GatewayConfigInput, resolveConfig } from '../config.ts';
import type { GatewayStorage } from '../storage/types.ts';

/** One model cache for every test process, so the embedded model is trained once. */
export const TEST_CACHE_DIR: string =
  process.env.TRACEMARK_CACHE_DIR || join(tmpdir(), 'tracemark-test-cache');
process.env.TRACEMARK_CACHE_DIR = TEST_CACHE_DIR;

export const TEST_DATABASE_URL: string =
  process.env.TRACEMARK_TEST_DATABASE_URL ?? 'postgres://tracemark:tracemark@127.0.0.1:5432/tracemark_test';
export const TEST_REDIS_URL: string = process.env.TRACEMARK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const temporaryDirectories: string[] = [];

/** A new temporary folder; a test file that makes any calls `afterAll(removeTemporaryDirectories)`. */
export function temporaryDirectory(prefix = 'tracemark-gateway-'): string {
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

/** Collects log lines in memory. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.lines.push(
      ...chunk
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== ''),
    );
    callback();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

// biome-ignore lint/suspicious/noExplicitAny: tests inspect response bodies dynamically.
export type Json = any;

export interface TestGateway {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly devKey: string;
  readonly services: GatewayServices;
  readonly prepared: PreparedGateway;
  readonly dataDir: string;
  readonly logs: LogCapture;
  /** fetch against the gateway with the dev key (or `key`), JSON in and out. */
  call(
    method: string,
    path: string,
    body?: unknown,
    key?: string | null,
  ): Promise<{ status: number; headers: Headers; json: Json; text: string }>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  readonly config?: GatewayConfigInput;
  /** Wraps the storage (to make it fail, for instance). */
  readonly wrapStorage?: (storage: GatewayStorage) => GatewayStorage;
  readonly logLevel?: string;
}

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const dataDir = options.config?.dataDir ?? temporaryDirectory();
  // Generation on the event loop's thread unless a test asks for threads: every gateway of a test file then
  // shares the process's one copy of the model (a thread loads its own, about a second from sources).
  const config = resolveConfig({ port: 0, dataDir, generationThreads: 0, ...options.config }, {});
  const prepared = await prepareGateway(config);
  const services: GatewayServices =
    options.wrapStorage === undefined
      ? prepared.services
      : { ...prepared.services, storage: options.wrapStorage(prepared.services.storage) };
  const logs = new LogCapture();
  const app = await buildApp(services, { logger: loggerOptions(options.logLevel ?? 'info', logs) });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  const devKey = prepared.firstStart.devApiKey!;
  return {
    app,
    url,
    devKey,
    services,
    prepared,
    dataDir,
    logs,
    async call(method, path, body, key = devKey) {
      const headers: Record<string, string> = {};
      if (key !== null) headers.authorization = `Bearer ${key}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await response.text();
      let json: unknown = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: response.status, headers: response.headers, json, text };
    },
    async close() {
      await app.close();
      await prepared.close();
      if (options.config?.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads a server-sent event stream into its `data:` payloads. */
export async function readEvents(response: Response): Promise<string[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .map((event) =>
      event
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n'),
    )
    .filter((data) => data !== '');
}
