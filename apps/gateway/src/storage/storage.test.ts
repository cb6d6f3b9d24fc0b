/**
 * One suite, both databases: SQLite (a temporary file) and PostgreSQL (a fresh schema on the server at
 * TRACEMARK_TEST_DATABASE_URL). PostgreSQL is skipped, visibly, only when it is unreachable and CI is not set.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintApiKey } from '../api-keys.ts';
import { TEST_DATABASE_URL, temporaryDirectory } from '../test-support/harness.ts';
import { freshPostgresSchema, postgresReachable } from '../test-support/services.ts';
import { openPostgresStorage } from './postgres.ts';
import { openSqliteStorage } from './sqlite.ts';
import type { GatewayStorage, IssuanceInput } from './types.ts';

const pgAvailable = await postgresReachable(TEST_DATABASE_URL);
if (!pgAvailable && process.env.CI) {
  throw new Error(
    `PostgreSQL is not reachable at TRACEMARK_TEST_DATABASE_URL (CI=true requires it; scripts/ci-services.sh starts it)`,
  );
}
if (!pgAvailable)
  console.warn(`skipping PostgreSQL storage tests: no server at ${new URL(TEST_DATABASE_URL).host}`);

function record(seq: number, overrides: Partial<IssuanceInput> = {}): IssuanceInput {
  return {
    id: `iss_${randomBytes(8).toString('hex')}`,
    completionId: `chatcmpl-${seq}`,
    choiceIndex: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    apiKeyId: 'ak_0000000000000001',
    account: 'acme',
    endpoint: 'chat.completions',
    model: 'tracemark-ngram',
    backend: 'embedded',
    watermarkKeyId: 'tmk1_000000000000000000000000',
    keyEpoch: null,
    promptSha256: 'a'.repeat(64),
    outputSha256: 'b'.repeat(64),
    normalizedOutputSha256: 'c'.repeat(64),
    minhash: null,
    numPromptTokens: 3,
    numTokens: 4,
    outputTokens: Uint32Array.of(1, 2, 100_000, 4_294_967_295),
    finishReason: 'length',
    ...overrides,
  };
}

function storageSuite(
  name: string,
  open: () => Promise<{
    storage: GatewayStorage;
    reopen: () => Promise<GatewayStorage>;
    reopenReadonly: () => Promise<GatewayStorage>;
    cleanup: () => Promise<void>;
  }>,
) {
  describe(name, () => {
    let storage: GatewayStorage;
    let reopen: () => Promise<GatewayStorage>;
    let reopenReadonly: () => Promise<GatewayStorage>;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ storage, reopen, reopenReadonly, cleanup } = await open());
    });
    afterAll(async () => {
      await storage?.close();
      await cleanup?.();
    });

    it('migrates once: reopening applies nothing new', async () => {
      expect(await storage.migrations()).toEqual([1, 2, 3]);
      const again = await reopen();
      expect(await again.migrations()).toEqual([1, 2, 3]);
      await again.close();
      await storage.ping();
    });

    it('stores API keys without the key, lists, revokes once', async () => {
      const minted = mintApiKey(randomBytes(32));
      const key = {
        id: minted.id,
        hash: minted.hash,
        environment: 'live' as const,
        name: "O'Brien; DROP TABLE api_keys; --",
        account: 'acme',
        scopes: ['generate' as const, 'verify' as const],
        createdAt: new Date().toISOString(),
        expiresAt: null,
        revokedAt: null,
        rateLimitPerMinute: 7,
        dailyTokenQuota: 5_000_000_000,
      };
      await storage.insertApiKey(key);
      expect(await storage.getApiKey(key.id)).toEqual(key);
      expect(await storage.getApiKey("' OR '1'='1")).toBeNull();
      expect((await storage.listApiKeys()).map((k) => k.id)).toContain(key.id);
      expect(await storage.countApiKeys()).toBeGreaterThanOrEqual(1);
      expect(await storage.revokeApiKey(key.id, '2026-01-02T00:00:00.000Z')).toBe(true);
      expect(await storage.revokeApiKey(key.id, '2026-01-03T00:00:00.000Z')).toBe(false);
      expect((await storage.getApiKey(key.id))!.revokedAt).toBe('2026-01-02T00:00:00.000Z');
      await expect(storage.insertApiKey(key)).rejects.toThrow();
    });

    it('appends issuance records with gapless sequential indices, also under concurrency', async () => {
      const first = await storage.appendIssuance([record(0), record(1)]);
      expect(first.map((r) => r.seq)).toEqual([0, 1]);
      const concurrent = await Promise.all(
        Array.from({ length: 20 }, (_, i) => storage.appendIssuance([record(2 + i)])),
      );
      const seqs = concurrent
        .flat()
        .map((r) => r.seq)
        .sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
      expect(await storage.countIssuance()).toBe(22);
    });

    it('a failed append writes nothing (all or nothing)', async () => {
      const duplicate = record(50);
      await expect(storage.appendIssuance([record(51), duplicate, { ...duplicate }])).rejects.toThrow();
      expect(await storage.countIssuance()).toBe(22);
    });

    it('reads records back exactly, pages in order, filters by key', async () => {
      const stored = await storage.appendIssuance([
        record(30, { apiKeyId: 'ak_other', keyEpoch: '2026-11', outputTokens: null }),
      ]);
      const back = await storage.getIssuance(stored[0]!.id);
      expect(back).toEqual(stored[0]);
      const one = (await storage.listIssuance({ limit: 1 }))[0]!;
      expect(one.outputTokens).toEqual(Uint32Array.of(1, 2, 100_000, 4_294_967_295));
      const page = await storage.listIssuance({ afterSeq: 19, limit: 2 });
      expect(page.map((r) => r.seq)).toEqual([20, 21]);
      expect((await storage.listIssuance({ apiKeyId: 'ak_other', limit: 10 })).map((r) => r.seq)).toEqual([
        22,
      ]);
      expect(await storage.getIssuance('iss_missing')).toBeNull();
    });

    it('opens read-only: lists issuance by account and the accounts, and refuses writes', async () => {
      await storage.appendIssuance([
        record(100, { account: 'globex', apiKeyId: 'ak_globex', numTokens: 7 }),
        record(101, { account: 'globex', apiKeyId: 'ak_globex', numTokens: 5 }),
      ]);
      const reader = await reopenReadonly();
      try {
        const all = await storage.listIssuance({ limit: 1000 });
        expect(await reader.listIssuance({ limit: 1000 })).toEqual(all);
        const globex = await reader.listIssuance({ account: 'globex', limit: 1000 });
        expect(globex.map((r) => r.account)).toEqual(['globex', 'globex']);
        expect(await reader.listIssuance({ account: 'globex', afterSeq: globex[0]!.seq, limit: 10 })).toEqual(
          [globex[1]],
        );
        expect(await reader.listIssuance({ account: 'globex', apiKeyId: 'ak_other', limit: 10 })).toEqual([]);
        const accounts = await reader.listIssuanceAccounts();
        expect(accounts.map((a) => a.account)).toEqual(['acme', 'globex']);
        expect(accounts[1]).toEqual({ account: 'globex', numOutputs: 2, numTokens: 12 });
        expect(accounts[0]!.numOutputs).toBe(all.length - 2);
        await expect(reader.appendIssuance([record(102)])).rejects.toThrow();
        await expect(reader.revokeApiKey('ak_missing', '2026-01-01T00:00:00.000Z')).rejects.toThrow(
          /read.?only/i,
        );
      } finally {
        await reader.close();
      }
      expect(await storage.countIssuance()).toBe((await storage.listIssuance({ limit: 1000 })).length);
    });

    it('sums tokens per key since a time, and prunes old output tokens but keeps the record', async () => {
      expect(await storage.sumTokensSince('ak_0000000000000001', '2026-01-01T00:00:10.000Z')).toBe(4 * 12);
      const pruned = await storage.pruneIssuedTokens('2026-01-01T00:00:05.000Z');
      expect(pruned).toBe(5);
      const records = await storage.listIssuance({ limit: 22 });
      const old = records.filter((r) => r.createdAt < '2026-01-01T00:00:05.000Z');
      expect(old).toHaveLength(5);
      expect(old.every((r) => r.outputTokens === null && r.outputSha256 === 'b'.repeat(64))).toBe(true);
      expect(
        records
          .filter((r) => r.createdAt >= '2026-01-01T00:00:05.000Z')
          .every((r) => r.outputTokens !== null),
      ).toBe(true);
    });
  });
}

storageSuite('SQLite storage', async () => {
  const directory = temporaryDirectory();
  const path = join(directory, 'gateway.sqlite');
  return {
    storage: openSqliteStorage(path),
    reopen: async () => openSqliteStorage(path),
    reopenReadonly: async () => openSqliteStorage(path, { readonly: true }),
    cleanup: async () => rmSync(directory, { recursive: true, force: true }),
  };
});

if (pgAvailable) {
  storageSuite('PostgreSQL storage', async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    return {
      storage: await openPostgresStorage({ connectionString: schema.url }),
      reopen: () => openPostgresStorage({ connectionString: schema.url }),
      reopenReadonly: () => openPostgresStorage({ connectionString: schema.url, readonly: true }),
      cleanup: schema.drop,
    };
  });
} else {
  it('refuses to open a missing SQLite database read-only, and an unmigrated one', () => {
    const directory = temporaryDirectory();
    try {
      expect(() => openSqliteStorage(join(directory, 'missing.sqlite'), { readonly: true })).toThrow();
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  describe.skip('PostgreSQL storage (server unreachable and CI not set)', () => {
    it('runs the same suite against PostgreSQL', () => undefined);
  });
}
