/**
 * Group commit on both databases: concurrent appends share transactions yet keep call order = seq order =
 * leaf order; a failure inside a batch fails every caller in it and writes nothing of it; a process killed
 * (SIGKILL) while batches are in flight leaves a log that holds every acknowledged record, whole batches
 * only, and whose Merkle tree matches its records. PostgreSQL is skipped, visibly, only when it is
 * unreachable and CI is not set.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateSigningKey, rootFromLeafHashes, toHex } from '@tracemark/provenance';
import { describe, expect, it } from 'vitest';
import { createIssuanceLog } from '../provenance/issuance-log.ts';
import { leafHashOf } from '../provenance/leaf.ts';
import { TEST_DATABASE_URL, temporaryDirectory } from '../test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../test-support/services.ts';
import { openPostgresStorage } from './postgres.ts';
import { openSqliteStorage } from './sqlite.ts';
import type { GatewayStorage, IssuanceInput, IssuanceRecord } from './types.ts';

const pgAvailable = await postgresReachable(TEST_DATABASE_URL);
if (!pgAvailable && process.env.CI) {
  throw new Error('PostgreSQL is not reachable at TRACEMARK_TEST_DATABASE_URL (CI=true requires it)');
}

function record(n: number, overrides: Partial<IssuanceInput> = {}): IssuanceInput {
  return {
    id: `iss_${randomBytes(8).toString('hex')}`,
    completionId: `chatcmpl-${n}`,
    choiceIndex: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    apiKeyId: 'ak_0000000000000001',
    account: 'acme',
    endpoint: 'chat.completions',
    model: 'tracemark-ngram',
    backend: 'embedded',
    watermarkKeyId: 'tmk1_000000000000000000000000',
    keyEpoch: null,
    promptSha256: randomBytes(32).toString('hex'),
    outputSha256: randomBytes(32).toString('hex'),
    normalizedOutputSha256: randomBytes(32).toString('hex'),
    minhash: n % 2 === 0 ? Uint32Array.from({ length: 128 }, (_, i) => (n * 131 + i) >>> 0) : null,
    numPromptTokens: 3,
    numTokens: 4,
    outputTokens: Uint32Array.of(n, 2, 3, 4),
    finishReason: 'length',
    ...overrides,
  };
}

/** Every record at its seq, gapless, with its leaf, and the stored tree's root equal to one recomputed. */
async function expectConsistentLog(storage: GatewayStorage): Promise<IssuanceRecord[]> {
  const size = await storage.countIssuance();
  const stored = await storage.listIssuance({ limit: size + 1 });
  expect(stored.map((entry) => entry.seq)).toEqual(Array.from({ length: size }, (_, i) => i));
  expect(await storage.logSize()).toBe(size);
  const leaves = stored.map(leafHashOf);
  expect(await storage.logNodeHashes(stored.map((entry) => ({ level: 0, index: entry.seq })))).toEqual(
    leaves,
  );
  if (size > 0) {
    const log = createIssuanceLog(storage, generateSigningKey('tracemark.test/group-commit'));
    expect(await log.rootHash(size)).toBe(toHex(rootFromLeafHashes(leaves)));
  }
  return stored;
}

interface Opened {
  readonly storage: GatewayStorage;
  /** What a child process needs to open the same log: a SQLite path or a PostgreSQL URL. */
  readonly location: string;
  reopen(): Promise<GatewayStorage>;
  cleanup(): Promise<void>;
}

/** Appends records in bursts of 8 concurrent calls until killed, printing each id once it is acknowledged. */
const APPENDER = `
import { randomBytes } from 'node:crypto';
const { openPostgresStorage, openSqliteStorage } = await import(process.argv[2]);
const location = process.argv[3];
const storage = location.startsWith('postgres') ? await openPostgresStorage({ connectionString: location }) : openSqliteStorage(location);
const record = (n) => ({ id: 'iss_' + randomBytes(8).toString('hex'), completionId: 'cmpl-' + n, choiceIndex: 0,
  createdAt: new Date().toISOString(), apiKeyId: 'ak_1', account: 'acme', endpoint: 'completions', model: 'm',
  backend: 'embedded', watermarkKeyId: 'tmk1_0', keyEpoch: null, promptSha256: 'a'.repeat(64),
  outputSha256: randomBytes(32).toString('hex'), normalizedOutputSha256: null, minhash: null,
  numPromptTokens: 1, numTokens: 1, outputTokens: Uint32Array.of(n), finishReason: 'stop' });
for (let n = 0; ; n += 8) {
  await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const stored = await storage.appendIssuance([record(n + i)]);
    process.stdout.write(stored[0].id + '\\n');
  }));
}
`;

/** Starts the appender, kills it with SIGKILL once it has acknowledged `count` records; returns their ids. */
async function killMidBatches(location: string, count: number): Promise<string[]> {
  const directory = temporaryDirectory('tracemark-group-commit-');
  const script = join(directory, 'appender.mjs');
  writeFileSync(script, APPENDER);
  const gatewayRoot = join(import.meta.dirname, '../..');
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      script,
      pathToFileURL(join(import.meta.dirname, 'index.ts')).href,
      location,
    ],
    { cwd: gatewayRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const acknowledged: string[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      let buffer = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        acknowledged.push(...lines);
        if (acknowledged.length >= count) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`the appender exited (${code}): ${stderr}`));
      });
    });
    await new Promise((resolve) =>
      child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve),
    );
    return acknowledged;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function groupCommitSuite(name: string, open: (maxBatchRecords?: number) => Promise<Opened>) {
  describe(name, () => {
    it('keeps call order = seq order = leaf order under concurrent appends', async () => {
      const opened = await open();
      try {
        const calls = Array.from({ length: 40 }, (_, i) =>
          Array.from({ length: 1 + (i % 3) }, (_, j) => record(10 * i + j)),
        );
        const results = await Promise.all(calls.map((records) => opened.storage.appendIssuance(records)));
        let next = 0;
        results.forEach((stored, i) => {
          // Each call's records contiguous, in its order, and after every earlier call's.
          expect(stored.map((entry) => entry.seq)).toEqual(calls[i]!.map((_, j) => next + j));
          expect(stored.map((entry) => entry.id)).toEqual(calls[i]!.map((entry) => entry.id));
          next += stored.length;
        });
        const logged = await expectConsistentLog(opened.storage);
        expect(logged.map((entry) => entry.id)).toEqual(calls.flat().map((entry) => entry.id));
      } finally {
        await opened.cleanup();
      }
    });

    it('fails every caller of a batch that fails midway, and writes nothing of it', async () => {
      const opened = await open();
      try {
        const existing = record(0);
        // The first commits alone; the next three arrive while it is in flight and share one transaction,
        // whose third record repeats an id (UNIQUE), after two records of it were inserted.
        const first = opened.storage.appendIssuance([existing]);
        const batch = [
          opened.storage.appendIssuance([record(1)]),
          opened.storage.appendIssuance([record(2), { ...record(3), id: existing.id }]),
          opened.storage.appendIssuance([record(4)]),
        ];
        const outcomes = await Promise.allSettled(batch);
        expect((await first)[0]!.seq).toBe(0);
        const reasons = outcomes.map((outcome) => (outcome.status === 'rejected' ? outcome.reason : null));
        expect(reasons[0]).toBeInstanceOf(Error);
        expect(String(reasons[0].message)).toMatch(/unique|duplicate/i);
        // One failure, shared: the same error for every caller of the batch.
        expect(reasons.every((reason) => reason === reasons[0])).toBe(true);
        expect(await opened.storage.countIssuance()).toBe(1);
        expect(await opened.storage.logSize()).toBe(1);
        const after = await opened.storage.appendIssuance([record(5)]);
        expect(after[0]!.seq).toBe(1);
        await expectConsistentLog(opened.storage);
      } finally {
        await opened.cleanup();
      }
    });

    it('holds every acknowledged record, whole batches only, after SIGKILL mid-batch', async () => {
      const opened = await open();
      await opened.storage.close();
      try {
        const acknowledged = await killMidBatches(opened.location, 120);
        const reopened = await opened.reopen();
        try {
          const logged = await expectConsistentLog(reopened);
          const ids = new Set(logged.map((entry) => entry.id));
          for (const id of acknowledged) expect(ids.has(id)).toBe(true);
          expect(logged.length).toBeGreaterThanOrEqual(acknowledged.length);
        } finally {
          await reopened.close();
        }
      } finally {
        await opened.cleanup();
      }
    }, 60_000);

    it('with maxBatchRecords 1, concurrent appends still all succeed, in order', async () => {
      const opened = await open(1);
      try {
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) => opened.storage.appendIssuance([record(i)])),
        );
        expect(results.map((stored) => stored[0]!.seq)).toEqual([0, 1, 2, 3, 4, 5]);
        await expectConsistentLog(opened.storage);
      } finally {
        await opened.cleanup();
      }
    });
  });
}

groupCommitSuite('SQLite', async (maxBatchRecords) => {
  const directory = temporaryDirectory();
  const path = join(directory, 'gateway.sqlite');
  const storage = openSqliteStorage(path, maxBatchRecords === undefined ? {} : { maxBatchRecords });
  return {
    storage,
    location: path,
    reopen: async () => openSqliteStorage(path),
    cleanup: async () => {
      await storage.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
});

if (pgAvailable) {
  groupCommitSuite('PostgreSQL', async (maxBatchRecords) => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    const storage = await openPostgresStorage({
      connectionString: schema.url,
      ...(maxBatchRecords === undefined ? {} : { maxBatchRecords }),
    });
    return {
      storage,
      location: schema.url,
      reopen: () => openPostgresStorage({ connectionString: schema.url }),
      cleanup: async () => {
        await storage.close();
        await schema.drop();
      },
    };
  });
} else {
  describe.skip('PostgreSQL (server unreachable and CI not set)', () => undefined);
}
