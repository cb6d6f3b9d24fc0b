/**
 * The Merkle log, checkpoints and near-duplicate index kept by the storage, on both databases: leaves are
 * appended in the same transaction as their records (gapless, all or nothing, also under concurrency),
 * proofs from the stored nodes verify, and a database from before the log existed is brought up to date.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateSigningKey,
  lshBuckets,
  minhashSignature,
  rootFromLeafHashes,
  toHex,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
} from '@tracemark/provenance';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIssuanceLog } from '../provenance/issuance-log.ts';
import { leafHashOf } from '../provenance/leaf.ts';
import { TEST_DATABASE_URL, temporaryDirectory } from '../test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../test-support/services.ts';
import { MIGRATIONS } from './migrations.ts';
import { openPostgresStorage } from './postgres.ts';
import { openSqliteStorage } from './sqlite.ts';
import type { GatewayStorage, IssuanceInput } from './types.ts';

const pgAvailable = await postgresReachable(TEST_DATABASE_URL);
if (!pgAvailable && process.env.CI) {
  throw new Error('PostgreSQL is not reachable at TRACEMARK_TEST_DATABASE_URL (CI=true requires it)');
}

const hex = (text: string) => Buffer.from(text).toString('hex').padEnd(64, '0').slice(0, 64);

function record(i: number, tokens: number[] | null = null): IssuanceInput {
  return {
    id: `iss_${randomBytes(8).toString('hex')}`,
    completionId: `cmpl-${i}`,
    choiceIndex: 0,
    createdAt: new Date(Date.UTC(2026, 10, 22, 0, 0, i)).toISOString(),
    apiKeyId: 'ak_0000000000000001',
    account: i % 2 === 0 ? 'acme' : 'globex',
    endpoint: 'completions',
    model: 'tracemark-ngram',
    backend: 'embedded',
    watermarkKeyId: 'tmk1_000000000000000000000000',
    keyEpoch: i % 3 === 0 ? null : '2026-11',
    promptSha256: hex(`prompt ${i}`),
    outputSha256: hex(`output ${i}`),
    normalizedOutputSha256: hex(`normalized ${i}`),
    minhash: tokens === null ? null : minhashSignature(tokens),
    numPromptTokens: 3,
    numTokens: tokens?.length ?? 5,
    outputTokens: null,
    finishReason: 'length',
  };
}

const tokensOf = (seed: number, length = 120) =>
  Array.from({ length }, (_, i) => (seed * 7919 + i * 104_729) % 50_000);

/** Applies migration 1 only and writes `count` records the way the gateway did before the log existed. */
type LegacySetup = (count: number) => Promise<void>;

function logSuite(
  name: string,
  open: () => Promise<{
    storage: GatewayStorage;
    legacy: () => Promise<{
      setup: LegacySetup;
      open: () => Promise<GatewayStorage>;
      cleanup: () => Promise<void>;
    }>;
    cleanup: () => Promise<void>;
  }>,
) {
  describe(name, () => {
    let storage: GatewayStorage;
    let legacy: Awaited<ReturnType<typeof open>>['legacy'];
    let cleanup: () => Promise<void>;
    const signer = generateSigningKey('test.tracemark/log');
    beforeAll(async () => {
      ({ storage, legacy, cleanup } = await open());
    });
    afterAll(async () => {
      await storage?.close();
      await cleanup?.();
    });

    it('appends one leaf per record in the same transaction, gapless under concurrency', async () => {
      expect(await storage.logSize()).toBe(0);
      await storage.appendIssuance([record(0, tokensOf(0)), record(1)]);
      await Promise.all(
        Array.from({ length: 24 }, (_, i) => storage.appendIssuance([record(2 + i, tokensOf(2 + i))])),
      );
      expect(await storage.logSize()).toBe(26);
      expect(await storage.countIssuance()).toBe(26);
      const records = await storage.listIssuance({ limit: 100 });
      const leaves = await storage.logNodeHashes(records.map((r) => ({ level: 0, index: r.seq })));
      expect(leaves.map(toHex)).toEqual(records.map((r) => toHex(leafHashOf(r))));
    });

    it('a failed append writes no record, leaf, node or index entry', async () => {
      const duplicate = record(90, tokensOf(90));
      await expect(
        storage.appendIssuance([record(91, tokensOf(91)), duplicate, { ...duplicate }]),
      ).rejects.toThrow();
      expect(await storage.logSize()).toBe(26);
      expect(await storage.countIssuance()).toBe(26);
      expect(
        await storage.findNearDuplicateCandidates(lshBuckets(minhashSignature(tokensOf(91))), 10),
      ).toEqual([]);
      await storage.appendIssuance([record(26)]);
      expect(await storage.logSize()).toBe(27);
    });

    it('serves roots, inclusion and consistency proofs that verify, and signs checkpoints once per size', async () => {
      const log = createIssuanceLog(storage, signer);
      const records = await storage.listIssuance({ limit: 100 });
      const leafHashes = records.map(leafHashOf);
      for (const size of [1, 2, 7, 16, 27]) {
        const checkpoint = await log.checkpoint(size);
        const verified = verifyCheckpoint(checkpoint.note, signer.verifierKey, { origin: signer.name });
        expect(verified.size).toBe(size);
        expect(toHex(verified.rootHash)).toBe(toHex(rootFromLeafHashes(leafHashes.slice(0, size))));
        expect(checkpoint.rootHash).toBe(toHex(verified.rootHash));
        for (const index of [0, Math.floor(size / 2), size - 1]) {
          const proof = await log.inclusionProof(index, size);
          expect(verifyInclusion(leafHashes[index]!, index, size, proof, verified.rootHash)).toBe(true);
        }
      }
      const old = await log.checkpoint(7);
      const latest = await log.checkpoint();
      const proof = await log.consistencyProof(7, latest.treeSize);
      expect(
        verifyConsistency(
          7,
          latest.treeSize,
          Buffer.from(old.rootHash, 'hex'),
          Buffer.from(latest.rootHash, 'hex'),
          proof,
        ),
      ).toBe(true);
      expect((await storage.latestCheckpoint())?.treeSize).toBe(27);
      const again = await storage.saveCheckpoint({
        ...old,
        note: 'other',
        createdAt: '2030-01-01T00:00:00.000Z',
      });
      expect(again).toEqual(old);
    });

    it('finds outputs by exact or normalized hash, and near-duplicates by shared LSH buckets', async () => {
      const records = await storage.listIssuance({ limit: 100 });
      expect((await storage.findIssuanceByOutputHash(records[3]!.outputSha256, 'f'.repeat(64)))?.id).toBe(
        records[3]!.id,
      );
      expect(
        (await storage.findIssuanceByOutputHash('f'.repeat(64), records[4]!.normalizedOutputSha256!))?.id,
      ).toBe(records[4]!.id);
      expect(await storage.findIssuanceByOutputHash('f'.repeat(64), 'e'.repeat(64))).toBeNull();
      const edited = tokensOf(5).map((token, i) => (i % 5 === 0 ? 49_999 - token : token));
      const candidates = await storage.findNearDuplicateCandidates(lshBuckets(minhashSignature(edited)), 5);
      expect(candidates[0]!.seq).toBe(records.find((r) => r.completionId === 'cmpl-5')!.seq);
      expect(candidates[0]!.signature).toEqual(minhashSignature(tokensOf(5)));
      expect(candidates[0]!.sharedBands).toBeGreaterThan(1);
    });

    it('keeps the log keys and watermark epochs it is given, once each', async () => {
      await storage.addLogKey(signer.verifierKey, '2026-11-22T00:00:00.000Z');
      await storage.addLogKey(signer.verifierKey, '2026-11-23T00:00:00.000Z');
      expect(await storage.logKeys()).toEqual([signer.verifierKey]);
      await storage.registerWatermarkEpoch('tmk1_a', null, '2026-11-22T00:00:00.000Z');
      await storage.registerWatermarkEpoch('tmk1_b', '2026-12', '2026-12-01T00:00:00.000Z');
      await storage.registerWatermarkEpoch('tmk1_a', null, '2026-12-02T00:00:00.000Z');
      expect(await storage.listWatermarkEpochs()).toEqual([
        { watermarkKeyId: 'tmk1_a', keyEpoch: null, firstSeenAt: '2026-11-22T00:00:00.000Z' },
        { watermarkKeyId: 'tmk1_b', keyEpoch: '2026-12', firstSeenAt: '2026-12-01T00:00:00.000Z' },
      ]);
    });

    it('gives records written before the log existed their leaves when it opens', async () => {
      const old = await legacy();
      await old.setup(5);
      const upgraded = await old.open();
      try {
        expect(await upgraded.migrations()).toEqual([1, 2, 3]);
        expect(await upgraded.logSize()).toBe(5);
        const records = await upgraded.listIssuance({ limit: 10 });
        expect(records.every((r) => r.normalizedOutputSha256 === null)).toBe(true);
        const leaves = await upgraded.logNodeHashes(records.map((r) => ({ level: 0, index: r.seq })));
        expect(leaves.map(toHex)).toEqual(records.map((r) => toHex(leafHashOf(r))));
        await upgraded.appendIssuance([record(5)]);
        const log = createIssuanceLog(upgraded, signer);
        const all = await upgraded.listIssuance({ limit: 10 });
        expect(toHex(rootFromLeafHashes(all.map(leafHashOf)))).toBe((await log.checkpoint()).rootHash);
      } finally {
        await upgraded.close();
        await old.cleanup();
      }
    });
  });
}

const LEGACY_COLUMNS =
  'seq, id, completion_id, choice_index, created_at, api_key_id, account, endpoint, model, backend, watermark_key_id, key_epoch, prompt_sha256, output_sha256, num_prompt_tokens, num_tokens, output_tokens, finish_reason';
const legacyValues = (i: number) => {
  const r = record(i);
  return [
    i,
    r.id,
    r.completionId,
    0,
    r.createdAt,
    r.apiKeyId,
    r.account,
    r.endpoint,
    r.model,
    r.backend,
    r.watermarkKeyId,
    r.keyEpoch,
    r.promptSha256,
    r.outputSha256,
    3,
    5,
    null,
    'stop',
  ];
};

logSuite('SQLite Merkle log', async () => {
  const directory = temporaryDirectory();
  return {
    storage: openSqliteStorage(join(directory, 'gateway.sqlite')),
    legacy: async () => {
      const path = join(directory, `legacy-${randomBytes(4).toString('hex')}.sqlite`);
      return {
        setup: async (count) => {
          const db = new Database(path);
          db.exec(
            'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
          );
          for (const statement of MIGRATIONS[0]!.sqlite) db.exec(statement);
          db.prepare('INSERT INTO schema_migrations VALUES (1, ?, ?)').run(
            MIGRATIONS[0]!.name,
            new Date().toISOString(),
          );
          const insert = db.prepare(
            `INSERT INTO issuance_log (${LEGACY_COLUMNS}) VALUES (${Array(18).fill('?').join(', ')})`,
          );
          for (let i = 0; i < count; i++) insert.run(...legacyValues(i));
          db.close();
        },
        open: async () => openSqliteStorage(path),
        cleanup: async () => undefined,
      };
    },
    cleanup: async () => rmSync(directory, { recursive: true, force: true }),
  };
});

if (pgAvailable) {
  logSuite('PostgreSQL Merkle log', async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    return {
      storage: await openPostgresStorage({ connectionString: schema.url }),
      legacy: async () => {
        const old = await freshPostgresSchema(TEST_DATABASE_URL);
        return {
          setup: async (count) => {
            const client = new pg.Client({ connectionString: old.url });
            await client.connect();
            await client.query(
              'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
            );
            for (const statement of MIGRATIONS[0]!.postgres) await client.query(statement);
            await client.query('INSERT INTO schema_migrations VALUES (1, $1, $2)', [
              MIGRATIONS[0]!.name,
              new Date().toISOString(),
            ]);
            for (let i = 0; i < count; i++) {
              await client.query(
                `INSERT INTO issuance_log (${LEGACY_COLUMNS}) VALUES (${Array.from({ length: 18 }, (_, j) => `$${j + 1}`).join(', ')})`,
                legacyValues(i),
              );
            }
            await client.end();
          },
          open: () => openPostgresStorage({ connectionString: old.url }),
          cleanup: old.drop,
        };
      },
      cleanup: schema.drop,
    };
  });
} else {
  describe.skip('PostgreSQL Merkle log (server unreachable and CI not set)', () => {
    it('runs the same suite against PostgreSQL', () => undefined);
  });
}
