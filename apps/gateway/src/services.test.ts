/**
 * The gateway on PostgreSQL (DATABASE_URL) and with Redis (REDIS_URL): real servers, started by
 * scripts/ci-services.sh. Skipped visibly only when a server is unreachable and CI is not set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startTestGateway,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  type TestGateway,
} from './test-support/harness.ts';
import { freshPostgresSchema, postgresReachable, redisReachable } from './test-support/services.ts';

const haveRedis = await redisReachable(TEST_REDIS_URL);
const havePostgres = await postgresReachable(TEST_DATABASE_URL);
for (const [name, ok] of [
  ['Redis (TRACEMARK_TEST_REDIS_URL)', haveRedis],
  ['PostgreSQL (TRACEMARK_TEST_DATABASE_URL)', havePostgres],
] as const) {
  if (!ok && process.env.CI)
    throw new Error(`${name} is not reachable; CI=true requires it (scripts/ci-services.sh starts it)`);
  if (!ok) console.warn(`skipping gateway tests on ${name}: server unreachable`);
}

describe.skipIf(!havePostgres)('on PostgreSQL', () => {
  let gateway: TestGateway;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const schema = await freshPostgresSchema(TEST_DATABASE_URL);
    drop = schema.drop;
    gateway = await startTestGateway({ config: { databaseUrl: schema.url } });
  });
  afterAll(async () => {
    await gateway?.close();
    await drop?.();
  });

  it('creates the dev key, serves and records completions in PostgreSQL', async () => {
    expect(gateway.services.storage.kind).toBe('postgres');
    const response = await gateway.call('POST', '/v1/chat/completions', {
      model: 'tracemark-ngram',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 12,
      n: 2,
    });
    expect(response.status).toBe(200);
    const records = await gateway.services.storage.listIssuance({ limit: 10 });
    expect(records.map((record) => record.id).sort()).toEqual(
      [...response.json.tracemark.issuance_ids].sort(),
    );
    expect(records.map((record) => record.seq)).toEqual([0, 1]);
    const health = await gateway.call('GET', '/healthz', undefined, null);
    expect(health.json.storage).toBe('postgres');
  });
});

describe.skipIf(!haveRedis)('with Redis', () => {
  const gateways: TestGateway[] = [];
  afterAll(async () => {
    for (const gateway of gateways) await gateway.close();
  });

  it('two instances share one rate limit and one quota', async () => {
    const first = await startTestGateway({
      config: { redisUrl: TEST_REDIS_URL, rateLimitPerMinute: 4, dailyTokenQuota: 30 },
    });
    gateways.push(first);
    const second = await startTestGateway({
      config: {
        redisUrl: TEST_REDIS_URL,
        rateLimitPerMinute: 4,
        dailyTokenQuota: 30,
        dataDir: first.dataDir,
      },
    });
    gateways.push(second);
    const key = first.devKey;
    const statuses: number[] = [];
    for (const gateway of [first, second, first, second, first]) {
      statuses.push((await gateway.call('GET', '/v1/models', undefined, key)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429]);

    const created = await first
      .call('POST', '/v1/admin/keys', { scopes: ['generate'], rateLimitPerMinute: 100 })
      .catch(() => null);
    expect(created?.status).toBe(429); // the dev key is still over its rate
    const { createApiKey } = await import('./key-management.ts');
    const fresh = await createApiKey(first.services.storage, first.services.serverSecret, {
      scopes: ['generate'],
      rateLimitPerMinute: 100,
    });
    const body = { model: 'tracemark-ngram', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 20 };
    expect((await first.call('POST', '/v1/chat/completions', body, fresh.key)).status).toBe(200);
    const refused = await second.call('POST', '/v1/chat/completions', body, fresh.key);
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('TM_ERR_QUOTA_EXCEEDED');
  });
});
