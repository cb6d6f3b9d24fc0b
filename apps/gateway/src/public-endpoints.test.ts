/**
 * The public endpoints cost an anonymous caller nothing it can multiply: consistency and inclusion proofs
 * are served against signed checkpoints, so no request signs or stores a checkpoint of a size of its
 * choosing (a checkpoint is signed only when the log has grown), and every public route is limited per
 * client address (429 with Retry-After). Through the real HTTP server.
 */
import { fromHex, verifyCheckpoint, verifyConsistency } from '@tracemark/provenance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayStorage } from './storage/types.ts';
import { startTestGateway, type TestGateway } from './test-support/harness.ts';

describe('consistency and inclusion proofs', () => {
  let gateway: TestGateway;
  let checkpointsSaved = 0;
  const complete = (seed: number) =>
    gateway.call('POST', '/v1/completions', {
      model: 'tracemark-ngram',
      prompt: `Entry ${seed} of the log.`,
      max_tokens: 6,
      seed,
    });

  beforeAll(async () => {
    gateway = await startTestGateway({
      wrapStorage: (storage: GatewayStorage) =>
        Object.assign(Object.create(storage) as GatewayStorage, {
          saveCheckpoint: (...args: Parameters<GatewayStorage['saveCheckpoint']>) => {
            checkpointsSaved++;
            return storage.saveCheckpoint(...args);
          },
        }),
    });
    for (let seed = 0; seed < 12; seed++) expect((await complete(seed)).status).toBe(200);
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it('a loop of GETs over every size writes no checkpoint; the proofs verify against the signed one', async () => {
    const keys = (await gateway.call('GET', '/.well-known/tracemark/keys.json', undefined, null)).json;
    const latest = (await gateway.call('GET', '/v1/log/checkpoint', undefined, null)).json;
    expect(latest.treeSize).toBe(12);
    const signed = verifyCheckpoint(latest.checkpoint, keys.keys[0].verifierKey, { origin: keys.logOrigin });
    const saved = checkpointsSaved;
    for (let round = 0; round < 3; round++) {
      for (let from = 0; from <= latest.treeSize; from++) {
        for (const query of [`from=${from}`, `from=${from}&to=${latest.treeSize}`]) {
          const response = await gateway.call('GET', `/v1/log/consistency?${query}`, undefined, null);
          expect(response.status, query).toBe(200);
          expect(response.json.treeSize).toBe(latest.treeSize);
          expect(response.json.checkpoint).toBe(latest.checkpoint);
          expect(
            verifyConsistency(
              from,
              latest.treeSize,
              fromHex(response.json.fromRootHash),
              signed.rootHash,
              response.json.consistencyProof.map(fromHex),
            ),
            query,
          ).toBe(true);
        }
        // A size nobody signed is refused, never signed on demand.
        if (from < latest.treeSize) {
          for (const path of [
            `/v1/log/consistency?from=0&to=${from}`,
            `/v1/log/inclusion?leafIndex=0&treeSize=${from}`,
          ]) {
            const refused = await gateway.call('GET', path);
            expect([refused.status, refused.json.error.code], path).toEqual([400, 'TM_ERR_INVALID_REQUEST']);
            expect(refused.json.error.message, path).toContain('signed');
          }
        }
      }
      await gateway.call('GET', '/v1/log/checkpoint', undefined, null);
      await gateway.call('GET', '/v1/log/inclusion?leafIndex=3');
    }
    expect(checkpointsSaved - saved).toBe(0);
    for (let size = 0; size < latest.treeSize; size++) {
      expect(await gateway.services.storage.getCheckpoint(size), `checkpoint of ${size}`).toBeNull();
    }

    // The log grows: the next request signs one checkpoint (one, however many ask at once), and proofs
    // from the earlier signed size verify.
    expect((await complete(100)).status).toBe(200);
    const asked = await Promise.all(
      Array.from({ length: 8 }, () => gateway.call('GET', '/v1/log/consistency?from=12', undefined, null)),
    );
    expect(checkpointsSaved - saved).toBe(1);
    for (const response of asked) expect(response.json.treeSize).toBe(13);
    const later = verifyCheckpoint(asked[0]!.json.checkpoint, keys.keys[0].verifierKey);
    expect(
      verifyConsistency(
        12,
        13,
        signed.rootHash,
        later.rootHash,
        asked[0]!.json.consistencyProof.map(fromHex),
      ),
    ).toBe(true);
    const between = await gateway.call('GET', '/v1/log/consistency?from=5&to=12', undefined, null);
    expect([between.status, between.json.checkpoint]).toEqual([200, latest.checkpoint]);
  });
});

describe('rate limits of the public endpoints', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway({ config: { publicRateLimitPerMinute: 5, trustProxy: true } });
  });
  afterAll(async () => {
    await gateway?.close();
  });

  const get = (path: string, address: string) =>
    fetch(`${gateway.url}${path}`, { headers: { 'x-forwarded-for': address } });

  it('answers 429 with Retry-After past the limit per client address, across the public routes', async () => {
    const paths = [
      '/v1/log/checkpoint',
      '/v1/log/consistency?from=0',
      '/.well-known/tracemark/keys.json',
      '/openapi.json',
      '/favicon.svg',
    ];
    for (const path of paths) {
      const response = await get(path, '198.51.100.7');
      await response.arrayBuffer();
      expect(response.status, path).not.toBe(429);
      expect(response.headers.get('x-ratelimit-limit'), path).toBe('5');
    }
    for (const path of [...paths, '/']) {
      const limited = await get(path, '198.51.100.7');
      expect(limited.status, path).toBe(429);
      expect(Number(limited.headers.get('retry-after')), path).toBeGreaterThan(0);
      const body = (await limited.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('TM_ERR_RATE_LIMITED');
      expect(body.error.message).toContain('public endpoints');
    }
    // Another address has its own allowance; health checks and metrics are never limited.
    expect((await get('/v1/log/checkpoint', '198.51.100.8')).status).toBe(200);
    for (let i = 0; i < 10; i++) {
      expect((await get('/healthz', '198.51.100.7')).status).toBe(200);
      expect((await get('/metrics', '198.51.100.7')).status).toBe(200);
    }
    // Authenticated routes keep their per-key limit, not the address's.
    expect((await gateway.call('GET', '/v1/log/inclusion?leafIndex=0')).status).not.toBe(429);
  });
});
